"""What every driver shares: the group directory, its lock and heartbeat, the detached launch,
stop and resume. A driver is a worker too: its own session, an flock held for its lifetime, a
heartbeat in status.json, an honest final state, killable and resumable like a run.

Layout of ``<runs_dir>/<group id>/`` (docs/events.md)::

    group.json         {"kind": "cv", "name", "task", "members": K, "created", ...}
    base_profile.toml  the profile the group was started with (absolute data paths)
    status.json        the driver's pid, host, state, heartbeat, current member, members done
    driver.log         the driver's stdout/stderr
    driver.lock        flock held by the live driver
    control/           stop requests for the driver
    summary.json       the group's result so far (written after every member)
    <member>/          normal run directories (fold-1, fold-2 ...)

Torch-free at import: ``tunedeck runs`` and the TUI list groups through this module.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tunedeck.core.errors import RunError, UserError
from tunedeck.core.fsutil import read_json
from tunedeck.core.runs.protocol import COMPLETED_STATES, is_active
from tunedeck.core.runs.rundir import RunDir

GROUP_FILE = "group.json"


class GroupDir(RunDir):
    """A group directory. RunDir's status, control requests and liveness (lock + heartbeat)
    apply unchanged; only the lock and log files have the driver's names."""

    log_path = property(lambda self: self.path / "driver.log")
    lock_path = property(lambda self: self.path / "driver.lock")
    profile_path = property(lambda self: self.path / "base_profile.toml")
    group_path = property(lambda self: self.path / GROUP_FILE)
    summary_path = property(lambda self: self.path / "summary.json")

    def info(self) -> dict[str, Any]:
        got = read_json(self.group_path)
        return got if isinstance(got, dict) else {}

    def summary(self) -> dict[str, Any]:
        got = read_json(self.summary_path)
        return got if isinstance(got, dict) else {}

    def members(self) -> list[RunDir]:
        """The run directories inside the group, in their natural order (fold-2 before fold-10)."""
        found = [d for d in self.path.iterdir() if _is_member(d)] if self.path.is_dir() else []
        return [RunDir(d) for d in sorted(found, key=lambda d: _natural_key(d.name))]

    def current_member(self) -> RunDir | None:
        name = self.read_status().get("current")
        if not isinstance(name, str) or "/" in name or not name:
            return None
        d = self.path / name
        return RunDir(d) if _is_member(d) else None


def _is_member(d: Path) -> bool:
    return (not d.name.startswith(".") and d.is_dir() and not d.is_symlink()
            and (d / "profile.toml").is_file())


def _natural_key(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def is_group_dir(d: Path) -> bool:
    """A real group directory directly in a runs directory (hidden names: being deleted)."""
    return (not d.name.startswith(".") and d.is_dir() and not d.is_symlink()
            and (d / GROUP_FILE).is_file())


def find_group(runs_dir: Path, ref: str) -> GroupDir:
    """A group by id, unique id prefix, or the path of its directory (as rundir.find_run)."""
    p = Path(ref)
    if os.sep in ref or ref.startswith("."):
        if is_group_dir(p.resolve()) and not p.is_symlink():
            return GroupDir(p.resolve())
        raise RunError(f"{ref}: not a group directory (no {GROUP_FILE})")
    names = ([d.name for d in runs_dir.iterdir() if is_group_dir(d)]
             if runs_dir.is_dir() else [])
    hits = [n for n in names if n == ref] or [n for n in names if n.startswith(ref)]
    if len(hits) == 1:
        return GroupDir((runs_dir / hits[0]).resolve())
    if not hits:
        raise RunError(f"no group {ref!r} in {runs_dir}; 'tunedeck runs' lists them")
    raise RunError(f"{ref!r} matches {len(hits)} groups ({', '.join(sorted(hits)[:5])}); "
                   "be more specific")


def looks_like_group(runs_dir: Path, ref: str) -> bool:
    """Whether ``ref`` is a group's exact id or directory (so `stop`/`resume` act on the group;
    a prefix keeps meaning a run, as it always did)."""
    if os.sep in ref or ref.startswith("."):
        return is_group_dir(Path(ref).resolve()) and not Path(ref).is_symlink()
    return is_group_dir(runs_dir / ref)


# --- launch ------------------------------------------------------------------------------

def start_driver(group: GroupDir, module: str, resume: bool = False) -> int:
    """``python -m MODULE GROUP_DIR [--resume]`` in a new session (it survives the terminal
    hanging up), stdin from /dev/null, output to driver.log. Returns its pid."""
    cmd = [sys.executable, "-m", module, str(group.path)] + (["--resume"] if resume else [])
    log = open(group.log_path, "ab")
    try:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, env=env)
    finally:
        log.close()
    return proc.pid



@dataclass(frozen=True)
class GroupStart:
    """A started or resumed group: its directory, how many runs it holds (``count``: folds or
    trials, named ``unit`` in JSON) and the driver's pid (None: the caller runs the driver)."""

    group_dir: Path
    group_id: str
    unit: str
    count: int
    pid: int | None

    def to_json(self) -> dict[str, Any]:
        # run_dir too: callers of `tunedeck resume --json` (the TUI) read that key.
        return {"group_dir": str(self.group_dir), "run_dir": str(self.group_dir),
                "group_id": self.group_id, self.unit: self.count, "pid": self.pid}


def launch(group: GroupDir, module: str, resume: bool = False) -> int:
    """Start the detached driver and return once it holds driver.lock (lifecycle's wait)."""
    from tunedeck.core.runs.lifecycle import wait_for_worker

    pid = start_driver(group, module, resume)
    wait_for_worker(group, pid)
    return pid


def check_group_resumable(group: GroupDir) -> None:
    state, _ = group.effective_state()
    if is_active(state):
        raise RunError(f"group {group.id} is {state}; stop it first ('tunedeck stop {group.id}')")
    if state in COMPLETED_STATES:
        raise RunError(f"group {group.id} already {state}; start a new one to train more")


def prepare_resume(group: GroupDir) -> None:
    """Check and mark the group 'starting' under its launch lock: two resumes typed at once
    start one driver (the second is told the group is running)."""
    check_group_resumable(group)
    with group.launch_lock():
        check_group_resumable(group)
        group.take_requests()  # e.g. the stop that ended it
        group.write_status(state="starting", heartbeat=time.time())


# --- stop --------------------------------------------------------------------------------

def stop_group(group: GroupDir, wait_s: float = 0.0, poll_s: float = 0.2) -> Any:
    """Stop the driver and its current member: a stop request for the driver (so it starts no
    further member) and the member's own stop (control file + SIGTERM, which the member's
    worker, running in the driver's process, turns into a checkpoint and a clean end).
    Returns lifecycle.StopResult (step = members done, total_steps = members)."""
    from tunedeck.core.runs.lifecycle import _stop_result, stop_run

    state, reason = group.effective_state()
    if not is_active(state):
        return _stop_result(group, state, reason, requested=False, signalled=False)
    group.request("stop")
    member = group.current_member()
    signalled = False
    if member is not None and is_active(member.effective_state()[0]):
        signalled = stop_run(member).signalled
    if not signalled:
        signalled = group.signal_worker()
    deadline = time.monotonic() + wait_s
    while wait_s and time.monotonic() < deadline and is_active(group.effective_state()[0]):
        time.sleep(poll_s)
    state, reason = group.effective_state()
    return _stop_result(group, state, reason, requested=True, signalled=signalled)


# --- the driver process ------------------------------------------------------------------

@dataclass
class DriverContext:
    group: GroupDir
    flag: Any  # worker.StopFlag: set by SIGTERM/SIGINT while no member runs
    status: Callable[..., None]  # merges fields into the next heartbeat

    def stop_asked(self) -> bool:
        """A signal, or a stop request filed for the driver (it stays until the driver ends)."""
        if self.flag.requested:
            return True
        try:
            return any(n.endswith("-stop") for n in os.listdir(self.group.control_dir))
        except OSError:
            return False


def run_driver(group: GroupDir, body: Callable[[DriverContext], tuple[str, str]]) -> str:
    """Hold the group's lock, heartbeat, run ``body`` (which runs the members) and leave an
    honest final state in status.json. Returns it."""
    from tunedeck.core.runs.rundir import RunLock
    from tunedeck.core.runs.worker import (Heartbeat, StopFlag, _final_status, install_signals,
                                           restore_signals)

    lock = RunLock(group)
    lock.acquire()  # two drivers never run one group
    flag = StopFlag()  # never "interrupting": the driver only ever looks at it between members
    previous = install_signals(flag)
    hb = Heartbeat(group)
    state, message = "failed", ""
    try:
        hb.write(pid=os.getpid(), host=socket.gethostname(), state="running", ended=None,
                 message="", started=group.read_status().get("started") or time.time())
        hb.start()
        state, message = body(DriverContext(group, flag, hb.update))
    except UserError as e:
        state, message = "failed", str(e)
    except KeyboardInterrupt:
        state, message = "stopped", "interrupted"
    except BaseException as e:  # a bug: say so in status.json, traceback in driver.log
        state, message = "failed", f"{type(e).__name__}: {e} (traceback in driver.log)"
        traceback.print_exc(file=sys.stderr)
    finally:
        hb.stop()
        group.take_requests()
        _final_status(hb, state, message)
        lock.release()
        restore_signals(previous)
    return state


def driver_main(what: str, module: str, run: Callable[[GroupDir], str],
                argv: list[str] | None = None) -> int:
    """A driver process's entry (``python -m MODULE GROUP_DIR``): run the group to its end; exit
    2 when another driver holds it, 1 when it did not finish (or stop) cleanly."""
    import argparse

    ap = argparse.ArgumentParser(prog=f"python -m {module}")
    ap.add_argument("group_dir")
    ap.add_argument("--resume", action="store_true", help="(the driver always continues)")
    a = ap.parse_args(argv)
    try:
        state = run(GroupDir(Path(a.group_dir).resolve()))
    except RunError as e:  # another driver holds the group
        print(f"tunedeck {what} driver {os.getpid()}: {e}; this one exits", file=sys.stderr,
              flush=True)
        return 2
    return 0 if state in ("finished", "stopped") else 1
