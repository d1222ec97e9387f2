"""A run's lifecycle: check, start, resume, stop, delete. The CLI, the TUI (directly for stop
and delete, through ``tunedeck start/resume --json`` for the rest), k-fold and the search driver
all call these, so a run is started and stopped the same way from everywhere.

Torch-free at import: the data and model checks (launch_checks) import torch inside. User
errors are UserError subclasses (one message; exit 2 on the CLI).

    start_run(profile)            -> StartResult(run_dir, run_id, pid)
    resume_run(run)               -> ResumeResult(run_dir, run_id, pid, from_checkpoint)
    stop_run(run, wait_s=0)       -> StopResult(run_id, state, step, total_steps, ...)
    delete_run(run, runs_dir)     -> DeleteResult(run_id, run_dir)
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunedeck.core.errors import RunError
from tunedeck.core.runs.launch import start_detached
from tunedeck.core.runs.launch_checks import DataCheck, check_data_before_launch
from tunedeck.core.runs.protocol import COMPLETED_STATES, is_active
from tunedeck.core.runs.rundir import RunDir, create_run

DEFAULT_RUNS_DIR = os.environ.get("TUNEDECK_RUNS_DIR", "runs")
# How long `resume` waits for its new worker to hold run.lock: it imports torch and the model
# code first (seconds; a minute on a cold, slow disk).
WORKER_LOCK_TIMEOUT_S = 120.0


class WorkerStartError(RunError):
    """The launched worker exited before taking the run's lock, or never took it. Not the
    user's input: exit code 1 (as a crashed run), with the worker.log to read."""

    exit_code = 1


@dataclass(frozen=True)
class StartResult:
    run_dir: Path
    run_id: str
    pid: int

    def to_json(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "run_id": self.run_id, "pid": self.pid}


@dataclass(frozen=True)
class ResumeResult:
    run_dir: Path
    run_id: str
    pid: int | None  # None: not launched (the caller trains in the foreground)
    from_checkpoint: str | None  # e.g. "step-40"; None: no complete checkpoint, from step 0
    prepared: Any = field(default=None, repr=False, compare=False)  # for a foreground worker

    def to_json(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "run_id": self.run_id, "pid": self.pid,
                "from_checkpoint": self.from_checkpoint}


@dataclass(frozen=True)
class StopResult:
    run_id: str
    state: str  # the effective state after the request (and the wait, if any)
    step: int
    total_steps: int | None
    reason: str
    requested: bool  # False: the run was not running, nothing was asked
    signalled: bool  # the worker was sent SIGTERM (it lives on this host)
    still_active: bool  # it had not stopped when stop_run returned

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class DeleteResult:
    run_id: str
    run_dir: Path


# --- profiles for new runs ---------------------------------------------------------------

def load_profile(path: str | Path, sets: list[str] | None = None) -> Any:
    """A profile file with ``--set`` overrides applied, its relative paths made absolute."""
    from tunedeck.core.profile import load, resolve_paths

    prof = load(str(path), sets)
    return resolve_paths(prof, Path(path).resolve().parent)


def profile_for_new_run(path: str | Path, sets: list[str] | None = None,
                        runs_dir: str | Path | None = None) -> Any:
    """The profile a new run trains with. Where its run directory goes: ``runs_dir`` (the
    command line) or ``--set output.runs_dir=...``, else ``$TUNEDECK_RUNS_DIR`` (where the TUI
    and ``tunedeck runs`` look), else the profile's ``output.runs_dir``."""
    prof = load_profile(path, sets)
    on_command_line = any(s.split("=", 1)[0].strip() == "output.runs_dir" for s in sets or [])
    target = runs_dir or (None if on_command_line else os.environ.get("TUNEDECK_RUNS_DIR"))
    if target:
        target = str(Path(target).expanduser().resolve())
        prof = prof.model_copy(update={"output": prof.output.model_copy(update={"runs_dir": target})})
    return prof


def new_run_dir(prof: Any) -> RunDir:
    """A fresh run directory under the profile's runs_dir, holding the frozen profile."""
    from tunedeck.core.profile import dumps

    return create_run(Path(prof.output.runs_dir), prof.name, dumps(prof), prof.task.type)


# --- start -------------------------------------------------------------------------------

def check_start(prof: Any) -> DataCheck:
    """Everything `start` checks before a run directory exists (data, tokenizer, model; as
    deep as the data's size allows). Raises a UserError on the first problem."""
    from tunedeck.core.runs.distributed_launch import check_distributed

    check_distributed(prof)
    return check_data_before_launch(prof)


def start_run(prof: Any) -> StartResult:
    """Check, make the run directory, start a detached worker (its own session) and return."""
    check_start(prof)
    run = new_run_dir(prof)
    pid = start_detached(run)
    return StartResult(run.path, run.id, pid)


# --- resume ------------------------------------------------------------------------------

def check_resumable(run: RunDir) -> None:
    """A RunError unless the run ended without completing (stopped, failed, diverged, killed)."""
    state, _ = run.effective_state()
    flag = runs_dir_flag(run)
    if is_active(state):
        stopping = run.control_dir.is_dir() and any(run.control_dir.iterdir())
        hint = (f" (a stop was asked: 'tunedeck stop {run.id} --wait 60{flag}' waits for it)"
                if stopping else "")
        raise RunError(f"run {run.id} is {state}; stop it first ('tunedeck stop {run.id}{flag}')"
                       f"{hint}")
    if state in COMPLETED_STATES:
        raise RunError(f"run {run.id} already {state}; start a new run to train more")


def check_resume_data(run: RunDir) -> DataCheck:
    """The run's own (frozen) profile: its data files must still exist; small data is prepared
    here with the run's own tokenizer, and must be the data the run started with."""
    from tunedeck.core.errors import DataError
    from tunedeck.core.profile import load
    from tunedeck.core.runs.training_run import check_same_data

    prof = load(run.profile_path)
    try:
        checked = check_data_before_launch(prof, tokenizer_dir=run.path / "tokenizer")
    except DataError as e:
        raise DataError(f"{e} (run {run.id} trains on the files its frozen profile names, "
                        f"{run.profile_path}: restore them there)") from None
    if checked.fingerprint:
        check_same_data(run, checked.fingerprint)
    return checked


def newest_checkpoint(run: RunDir) -> str | None:
    from tunedeck.core.engine.checkpoint import list_complete

    done = list_complete(run.checkpoints_dir)
    return done[-1].name if done else None


def resume_run(run: RunDir, *, detach: bool = True,
               worker_timeout_s: float = WORKER_LOCK_TIMEOUT_S) -> ResumeResult:
    """Continue a run from its newest complete checkpoint (from step 0 without one). Detached:
    returns once the new worker holds run.lock (WorkerStartError when it never does). With
    ``detach=False`` nothing is launched: the caller runs the worker with ``result.prepared``."""
    check_resumable(run)  # fail fast, before the data is loaded
    checked = check_resume_data(run)
    # The lock covers only check -> "starting" -> launch -> the worker holding run.lock: a second
    # resume at once waits seconds here, then is told the run is running.
    pid = None
    with run.launch_lock():
        wait_for_exit(run)
        check_resumable(run)
        from_checkpoint = newest_checkpoint(run)
        run.take_requests()  # dropped: e.g. the stop that ended it, if its signal won the race
        run.write_status(state="starting", heartbeat=time.time())
        if detach:
            pid = start_detached(run, resume=True)
            wait_for_worker(run, pid, worker_timeout_s)
    return ResumeResult(run.path, run.id, pid, from_checkpoint, prepared=checked.prepared)


def wait_for_exit(run: RunDir, timeout: float = 60.0, poll_s: float = 0.1) -> None:
    """An ended run whose worker still holds run.lock is finishing (a distributed run's
    supervisor records the ranks' outcome after rank 0's end state): wait for it to let go."""
    deadline = time.monotonic() + timeout
    while run.worker_alive() is True and not is_active(run.effective_state()[0]):
        if time.monotonic() >= deadline:
            raise RunError(f"run {run.id} ended but its worker (pid "
                           f"{run.read_status().get('pid')}) still holds it; try again shortly")
        time.sleep(poll_s)


def wait_for_worker(run: RunDir, pid: int, timeout: float = WORKER_LOCK_TIMEOUT_S,
                    poll_s: float = 0.1) -> None:
    """Return once the new worker holds run.lock. A worker that exits first, or never takes it
    within ``timeout``, is a WorkerStartError naming worker.log."""
    deadline = time.monotonic() + timeout
    while True:
        if run.worker_alive() is True:
            return
        exited, code = _child_exit(pid)
        if exited:
            if run.worker_alive() is True or run.read_status().get("state") != "starting":
                return  # it took the lock and already ended (a very short run): it ran
            how = f" with code {code}" if code is not None else ""
            raise WorkerStartError(f"the worker (pid {pid}) exited at once{how} before taking "
                                   f"the run's lock; see {run.log_path}")
        if time.monotonic() >= deadline:
            raise WorkerStartError(
                f"the worker (pid {pid}) did not take the run's lock within {timeout:g} s; see "
                f"{run.log_path} ('tunedeck runs' shows whether it started since)")
        time.sleep(poll_s)


def _child_exit(pid: int) -> tuple[bool, int | None]:
    """(exited, exit code if known). A pid that is not our child (reaped elsewhere, or launched
    by another process) is looked up instead: gone means exited, code unknown."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True, None
        except PermissionError:
            return False, None
        return False, None
    if done:
        return True, os.waitstatus_to_exitcode(status)
    return False, None


# --- stop and delete ---------------------------------------------------------------------

def stop_run(run: RunDir, wait_s: float = 0.0, poll_s: float = 0.2) -> StopResult:
    """Ask a live run to checkpoint and stop: a control file (seen at the next step boundary,
    from any host) and SIGTERM to the worker (seen at once, in every phase, on this host).
    With ``wait_s``, wait up to that long for it to end. A run that is not running is left
    alone (``requested`` False)."""
    state, reason = run.effective_state()
    if not is_active(state):
        return _stop_result(run, state, reason, requested=False, signalled=False)
    run.request("stop")
    signalled = run.signal_worker()
    deadline = time.monotonic() + wait_s
    while wait_s and time.monotonic() < deadline and is_active(run.effective_state()[0]):
        time.sleep(poll_s)
    state, reason = run.effective_state()
    return _stop_result(run, state, reason, requested=True, signalled=signalled)


def _stop_result(run: RunDir, state: str, reason: str, *, requested: bool,
                 signalled: bool) -> StopResult:
    st = run.read_status()
    total = st.get("total_steps")
    return StopResult(run.id, state, int(st.get("step", 0) or 0),
                      int(total) if isinstance(total, (int, float)) else None, reason or "",
                      requested, signalled, is_active(state))


def delete_run(run: RunDir, runs_dir: Path | None = None) -> DeleteResult:
    """Remove a run that no worker holds. It must be a real directory directly inside
    ``runs_dir`` (default: its parent). It is first renamed to a hidden name, so a removal cut
    short never leaves half a run in listings."""
    root = Path(runs_dir or run.path.parent).resolve()
    if run.path.is_symlink() or run.path.resolve().parent != root:
        raise RunError(f"{run.path} is not directly inside {root}; not deleted")
    target = run.path.resolve()
    # Held across the check and the rename: a resume cannot launch a worker in between.
    with run.launch_lock():
        state, _ = run.effective_state()
        if is_active(state) or run.worker_alive():
            raise RunError(f"run {run.id} is {state}; stop it first, then delete it")
        doomed = root / f".{run.id}.deleting-{secrets.token_hex(2)}"
        try:
            os.rename(target, doomed)
        except OSError as e:
            raise RunError(f"cannot delete {target}: {e.strerror}") from None
    try:
        shutil.rmtree(doomed)
    except OSError as e:
        raise RunError(f"{run.id} is no longer listed, but removing {doomed} failed: "
                       f"{e.strerror}; remove it by hand") from None
    return DeleteResult(run.id, target)


def runs_dir_flag(run: RunDir) -> str:
    """` --runs-dir DIR` for printed follow-up commands when the run is not in the default runs
    directory (a hint copied and pasted must find the run)."""
    d = Path(run.path).resolve().parent
    if d == Path(DEFAULT_RUNS_DIR).resolve():
        return ""
    return f" --runs-dir {shlex.quote(str(d))}"
