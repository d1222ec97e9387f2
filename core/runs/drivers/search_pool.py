"""Several search trials at once (``search.parallel`` > 1): the driver keeps one trial in flight
per slot, each in its own worker process (``python -m tunedeck.core.runs.drivers.search_child``)
that reports its evaluations to the study's storage and asks the pruner itself. A slot is a GPU
(``CUDA_VISIBLE_DEVICES`` set to that one index: a trial never shares a GPU) or, on a CPU, just a
process. The driver only schedules: it asks for trials, launches them, and tells the study how
each run ended. Each slot keeps a warm spare child (the training stack imported, waiting on
stdin for its run directory) while trials are left, so its next trial starts at once.

Stop: the driver's stop (a request file or SIGTERM) is passed to every trial in flight, which
checkpoints and ends ``stopped``; its Optuna trial stays RUNNING for ``search --resume``. A
driver killed outright: each child sees its parent gone (search_child) and stops the same way,
so the resumed driver continues every interrupted trial from its checkpoint, told to the same
Optuna trial.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Mapping

from tunedeck.core.errors import ProfileError
from tunedeck.core.fsutil import atomic_write_json
from tunedeck.core.runs.drivers.base import DriverContext
from tunedeck.core.runs.rundir import RunDir

CHILD_MODULE = "tunedeck.core.runs.drivers.search_child"
TRIAL_FILE = "trial.json"  # in a trial's run directory: where its child reports to
POLL_S = 0.25
ORPHAN_WAIT_S = 120.0  # a killed driver's children checkpointing before they end


def visible_gpus(env: Mapping[str, str] | None = None) -> list[str]:
    """The GPU indices this process may use, as CUDA_VISIBLE_DEVICES names them (or 0..n-1)."""
    env = os.environ if env is None else env
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        out = []
        for item in (x.strip() for x in listed.split(",")):
            if not item or item.startswith("-"):
                break  # CUDA ignores everything from the first invalid entry on
            out.append(item)
        return out
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def trial_slots(parallel: int, gpus: list[str]) -> list[str | None]:
    """One entry per trial that may run at once: the GPU it gets, or None on a CPU.
    ``parallel`` 0 is 'auto': one per GPU, 1 on a CPU."""
    if not gpus:
        return [None] * max(1, parallel)
    wanted = parallel or len(gpus)
    if wanted > len(gpus):
        raise ProfileError(
            f"search.parallel = {parallel} but {len(gpus)} GPU(s) are visible "
            f"({','.join(gpus)}); a trial never shares a GPU: set search.parallel to at most "
            f"{len(gpus)}, or \"auto\" (one trial per GPU)")
    return list(gpus[:wanted])


def child_env(gpu: str | None, slots: int, base: Mapping[str, str] | None = None,
              cpus: int | None = None) -> dict[str, str]:
    """A trial child's environment: its one GPU; on a CPU, the cores split between the trials
    (torch would otherwise start a thread per core in every process and they would fight)."""
    env = dict(os.environ if base is None else base)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    elif slots > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (cpus or os.cpu_count() or 1) // slots))
    return env


@dataclass
class InFlight:
    trial: Any  # optuna.trial.Trial
    run: RunDir
    proc: subprocess.Popen


def start_spare(env: dict[str, str], log_path: Any) -> Any:
    """A child that imports torch and the training stack now and waits on stdin for its trial:
    the next trial of a slot starts warm (the imports take seconds, many on a busy CPU). Its
    output goes to driver.log until it is given a run (then to that run's worker.log)."""
    log = open(log_path, "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", CHILD_MODULE, "--spare"],
                                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, env=env)
    finally:
        log.close()


def start_child(run: RunDir, spec: dict[str, Any], resume: bool, spare: Any) -> Any:
    """The trial's worker: the spare, told which run is its own (one JSON line on its stdin)."""
    atomic_write_json(run.path / TRIAL_FILE, spec)
    line = json.dumps({"run_dir": str(run.path), "resume": resume}) + "\n"
    spare.stdin.write(line.encode())
    spare.stdin.close()  # EOF after the one line: a spare reads one trial, never two
    return spare


class TrialPool:
    """The driver's loop with up to ``len(slots)`` trials in flight."""

    def __init__(self, ctx: DriverContext, study: Any, base: Any, dims: list[Any],
                 slots: list[str | None]):
        from tunedeck.core.runs.drivers.search_study import storage_spec

        self.ctx, self.study, self.base, self.dims, self.slots = ctx, study, base, dims, slots
        self.info = ctx.group.info()
        self.spec = {"storage": storage_spec(ctx.group.path, self.info),
                     "study_name": self.info["study_name"], "metric": self.info["metric"],
                     "pruner": self.info.get("pruner", "none"),
                     "direction": self.info["direction"], "driver_pid": os.getpid()}
        self.flying: dict[int, InFlight] = {}
        self.spares: dict[int, Any] = {}  # slot -> a warm child waiting for a trial
        self.stopping = False

    def run(self, resumable: list[Any]) -> tuple[str, str]:
        hint = f"'tunedeck search --resume {self.ctx.group.id}' continues it"
        wait_for_orphans(self.ctx.group)
        self.queue = list(resumable)
        try:
            return self._loop(hint)
        finally:
            for spare in self.spares.values():  # never given a run: nothing of theirs to keep
                spare.kill()
                spare.wait()
            self._status()  # trials done, none in flight any more

    def _loop(self, hint: str) -> tuple[str, str]:
        from tunedeck.core.runs.drivers.search import ask_next

        group, queue, exhausted = self.ctx.group, self.queue, False
        while True:
            self._reap()
            if not self.stopping and self.ctx.stop_asked():
                self._stop_all()
            if self.stopping:
                if not self.flying:
                    return "stopped", f"stopped with trials in flight; {hint}"
            else:
                for slot in [s for s in range(len(self.slots)) if s not in self.flying]:
                    while slot not in self.flying and (queue or not exhausted):
                        trial = queue.pop(0) if queue else ask_next(group, self.study, self.dims)
                        exhausted = exhausted or trial is None
                        if trial is not None:
                            self._launch(slot, trial)
                if exhausted and not queue and not self.flying:
                    return "finished", ""
            self._status()
            time.sleep(POLL_S)

    def _status(self) -> None:
        from tunedeck.core.runs.drivers.search import done_here

        names = [f.run.path.name for _, f in sorted(self.flying.items())]
        self.ctx.status(step=done_here(self.ctx.group), total_steps=self.info["trials"],
                        current=names[0] if names else None, in_flight=names)

    def _launch(self, slot: int, trial: Any) -> None:
        """The trial's run created (or prepared for resume) and its child started; a trial
        whose parameters the schema refuses, or whose run already ended, is told at once."""
        from tunedeck.core.runs.drivers.search import prepare_trial, tell_ended

        prepared = prepare_trial(self.ctx, self.study, trial, self.base, self.dims)
        if prepared is None:
            return
        run, how = prepared
        if how == "ended":
            tell_ended(self.ctx, self.study, trial, run.read_status().get("state"), run)
            return
        spec = {**self.spec, "trial_id": trial._trial_id, "number": trial.number}
        proc = self._spare(slot)
        try:
            start_child(run, spec, how == "resume", proc)
        except OSError:  # the spare died (it says why in driver.log): a fresh one, waited for
            proc = self._spare(slot)
            start_child(run, spec, how == "resume", proc)
        self._top_up_spares()
        where = f" on GPU {self.slots[slot]}" if self.slots[slot] is not None else ""
        print(f"trial {trial.number}: worker pid {proc.pid}{where}", flush=True)
        self.flying[slot] = InFlight(trial, run, proc)

    def _spare(self, slot: int) -> Any:
        """The slot's warm spare (taken), or a new child when it has none or it died."""
        spare = self.spares.pop(slot, None)
        if spare is not None and spare.poll() is None:
            return spare
        return start_spare(child_env(self.slots[slot], len(self.slots)), self.ctx.group.log_path)

    def _top_up_spares(self) -> None:
        """A spare for each idle-to-be slot, as long as trials are left to start."""
        left = int(self.info["trials"]) - len(self.study.get_trials(deepcopy=False)) + len(
            self.queue)
        for slot in range(len(self.slots)):
            if len(self.spares) >= left:
                return
            if slot not in self.spares:
                self.spares[slot] = start_spare(child_env(self.slots[slot], len(self.slots)),
                                                self.ctx.group.log_path)

    def _reap(self) -> None:
        from tunedeck.core.runs.drivers.search import tell_ended
        from tunedeck.core.runs.protocol import is_final

        for slot, job in list(self.flying.items()):
            code = job.proc.poll()
            if code is None:
                continue
            del self.flying[slot]
            state = job.run.read_status().get("state")
            if not is_final(state):  # the child died before its worker could say how it ended
                tail = " | ".join(job.run.last_log_lines(3))
                state = "failed"
                job.run.write_status(state="failed", ended=time.time(), message=(
                    f"the trial's worker exited with code {code} before it ended the run; "
                    f"see {job.run.log_path}" + (f": {tail}" if tail else "")))
            if state == "stopped":
                self._stop_all()  # one trial stopped by hand stops the study, as with parallel 1
                continue
            tell_ended(self.ctx, self.study, job.trial, state, job.run)

    def _stop_all(self) -> None:
        from tunedeck.core.runs.lifecycle import stop_run

        self.stopping = True
        for job in self.flying.values():
            stop_run(job.run)


def wait_for_orphans(group: Any, timeout: float = ORPHAN_WAIT_S) -> None:
    """Trials still running from a driver that was killed: their children saw it and are
    checkpointing; wait for them to end before resuming them (two workers never share a run)."""
    from tunedeck.core.runs.protocol import is_active
    from tunedeck.core.runs.lifecycle import stop_run

    deadline, asked = time.monotonic() + timeout, set()
    while time.monotonic() < deadline:
        live = [m for m in group.members() if is_active(m.effective_state()[0])]
        if not live:
            return
        for m in live:
            if m.path not in asked and m.worker_alive():
                stop_run(m)  # a child that missed its driver's end: stop it here, once
                asked.add(m.path)
        time.sleep(POLL_S)
