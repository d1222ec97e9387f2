"""The training worker: one run, in its own process (``python -m tunedeck.core.runs.worker RUN_DIR``).

It owns the run directory while it lives (flock on run.lock), writes events and a heartbeat,
honours stop/checkpoint/evaluate requests and SIGTERM/SIGINT (a stop within a second in every
phase: StopFlag, StopWatcher), ignores SIGHUP (an SSH session ending must not stop training),
and always leaves an honest final state. The run itself is training_run.TrainingRun.
The foreground ``tunedeck train`` runs the same ``run_worker`` in-process.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from tunedeck.core.engine import distributed as D
from tunedeck.core.engine.state import StopRequested
from tunedeck.core.errors import RunError, UserError
from tunedeck.core.runs.events import Event, EventWriter
from tunedeck.core.runs.gpu_stats import gpu_stats
from tunedeck.core.runs.rundir import HEARTBEAT_S, RunDir, RunLock
from tunedeck.core.runs.training_run import TrainingRun


GPU_SAMPLE_S = 5.0  # NVML readings for the dashboard; each costs a few driver calls


class Heartbeat:
    """Rewrites status.json every few seconds with the newest progress fields, and the GPUs'
    memory/utilisation/temperature (``gpus``) every GPU_SAMPLE_S where there are any."""

    def __init__(self, run: RunDir):
        self.run = run
        self.fields: dict[str, Any] = {}
        self._gpus_sampled = -GPU_SAMPLE_S
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def update(self, **fields: Any) -> None:
        with self._lock:
            self.fields.update(fields)

    def write(self, **fields: Any) -> None:
        with self._lock:
            self.fields.update(fields)
            snapshot = dict(self.fields)
        self.run.write_status(heartbeat=time.time(), **snapshot)

    def sample_gpus(self) -> None:
        now = time.monotonic()
        if now - self._gpus_sampled < GPU_SAMPLE_S:
            return
        self._gpus_sampled = now
        gpus = gpu_stats()  # [] on a CPU machine: status.json gets no `gpus` at all
        if gpus:
            self.update(gpus=gpus)

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.sample_gpus()
                self.write()
            except OSError:
                pass  # disk full or similar: the training thread reports it

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class StopFlag:
    """Set by SIGTERM/SIGINT (and by StopWatcher for a ``control/*-stop`` file). While
    ``interrupting`` (every phase before the loop: data, tokenization, model load, where the
    main thread runs Python between library calls) the handler also raises StopRequested, so
    such a phase ends within a second; in the loop it only sets the flag, seen at the next step
    boundary or evaluation batch."""

    def __init__(self) -> None:
        self.requested = False
        self.signals = 0
        self._interrupting = False

    def __call__(self) -> bool:
        return self.requested

    def interrupting(self, on: bool) -> None:
        self._interrupting = on

    def handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        self.signals += 1
        if self._interrupting:
            # Once: a second signal must not interrupt the clean-up (final status, events).
            self._interrupting = False
            raise StopRequested(f"signal {signum}")


class StopWatcher:
    """Sees a ``control/*-stop`` request within POLL_S in every phase (the loop reads requests
    only at step boundaries) and delivers it as a SIGTERM would, through the flag's handler.
    The request file stays: the loop (or the worker's end) consumes it."""

    POLL_S = 0.2

    def __init__(self, run: RunDir, flag: StopFlag, via_signal: bool):
        self.run, self.flag, self.via_signal = run, flag, via_signal
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stop-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _loop(self) -> None:
        while not self._stop.wait(self.POLL_S):
            if self.flag.requested or not self._stop_filed():
                continue
            if self.via_signal:
                # A real SIGTERM to the main thread (not _thread.interrupt_main, which waits for
                # a blocking call such as a sleep or a read to return): the handler runs there.
                signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
            else:
                self.flag.requested = True

    def _stop_filed(self) -> bool:
        try:
            return any(n.endswith("-stop") for n in os.listdir(self.run.control_dir))
        except OSError:
            return False


_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def install_signals(flag: StopFlag) -> dict[int, Any]:
    """SIGTERM/SIGINT set the stop flag; SIGHUP is ignored. Returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {s: signal.getsignal(s) for s in _HANDLED}
    signal.signal(signal.SIGTERM, flag.handler)
    signal.signal(signal.SIGINT, flag.handler)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return previous


def restore_signals(previous: dict[int, Any]) -> None:
    # The foreground CLI (and tests) run the worker in-process: give the caller its handlers back.
    if threading.current_thread() is not threading.main_thread():
        return
    for s, h in previous.items():
        try:
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        except (TypeError, ValueError):
            pass


def run_worker(run: RunDir, resume: bool = False, prepared: Any = None,
               echo: Callable[[Event], None] | None = None,
               on_eval: Callable[[int, dict[str, Any]], bool] | None = None) -> str:
    """Train ``run`` to an end state; returns it (finished/stopped/failed/diverged, or pruned
    when ``on_eval``, told each validation evaluation, answered True)."""
    # Distributed: the supervisor holds run.lock for all its ranks (runs/distributed_launch.py).
    lock = RunLock(run) if not D.is_distributed() else None
    if lock is not None:
        lock.acquire()  # two workers never write one run directory: the second stops here
    flag = StopFlag()
    previous = install_signals(flag)
    watcher = StopWatcher(run, flag, via_signal=bool(previous))
    try:
        flag.interrupting(bool(previous))  # until the loop starts (TrainingRun.train)
        watcher.start()
        return _run_locked(run, resume, prepared, echo, flag, on_eval)
    finally:
        flag.interrupting(False)
        watcher.stop()
        if lock is not None:
            lock.release()
        restore_signals(previous)


def _run_locked(run: RunDir, resume: bool, prepared: Any, echo: Callable[[Event], None] | None,
                flag: StopFlag, on_eval: Callable[..., bool] | None = None) -> str:
    if not D.is_main():
        from tunedeck.core.runs.rank_worker import run_other_rank

        return run_other_rank(run, resume, flag)
    events = EventWriter(run.events_path, echo=echo)
    hb = Heartbeat(run)
    st0 = run.read_status()
    state, message = "failed", ""
    try:
        hb.write(pid=D.reported_pid(), host=socket.gethostname(), state="running",
                 started=st0.get("started") or time.time(), ended=None, message="")
        hb.start()
        state, message = TrainingRun(run, resume, prepared, events, hb.update, flag,
                                     on_eval=on_eval).execute()
    except UserError as e:
        state, message = "failed", str(e)
        _emit_failed(events, message)
    except (StopRequested, KeyboardInterrupt):
        flag.interrupting(False)
        state, message = "stopped", _stopped_early(run, hb, st0)
        _emit(events, "run_stopped", step=int(hb.fields.get("step") or st0.get("step") or 0),
              message=message)
    except BaseException as e:  # a bug or an environment failure: say so, keep the traceback
        state, message = "failed", _describe(e, run)
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        _emit_failed(events, message + " (traceback in worker.log)")
    finally:
        hb.stop()
        try:
            run.take_requests()  # dropped: a stop both signalled and filed (the signal ended it)
        except OSError:
            pass
        _final_status(hb, state, message)
        try:
            events.close()
        except OSError:
            pass
    return state


def _describe(e: BaseException, run: RunDir) -> str:
    """One line for an unexpected failure, with what to do where we can tell."""
    first = (str(e).strip().splitlines() or [""])[0][:300]
    if type(e).__name__ == "OutOfMemoryError":  # outside a training step (model, optimizer)
        return (f"out of device memory outside a training step (loading the model or creating "
                f"the optimizer state): {first}; pick a smaller model or free the device "
                "('tunedeck profile check --preflight' estimates the memory a profile needs)")
    if isinstance(e, OSError) and e.errno is not None:
        import errno

        where = f" ({e.filename})" if e.filename else ""
        hint = ("free disk space" if e.errno in (errno.ENOSPC, errno.EDQUOT)
                else "check the path and its permissions")
        return f"{e.strerror or first}{where}; {hint}, then 'tunedeck resume {run.id}'"
    return f"{type(e).__name__}: {first}"


def _emit(events: EventWriter, type: str, **data: Any) -> None:
    try:
        events.emit(type, **data)
    except OSError as e:  # disk full: status.json still says what happened, if it can
        print(f"tunedeck worker: cannot write event {type}: {e}", file=sys.stderr, flush=True)


def _emit_failed(events: EventWriter, message: str) -> None:
    """run_failed; in a distributed run a log line instead: rank 0's error is often another
    rank's death seen as a broken connection, and the supervisor writes the one run_failed,
    naming the rank that failed first (runs/distributed_launch.py)."""
    if D.is_distributed():
        _emit(events, "log", level="error", message=f"rank 0: {message}")
    else:
        _emit(events, "run_failed", error=message)


def _final_status(hb: Heartbeat, state: str, message: str) -> None:
    """The end state must reach status.json; on a full disk retry a few times, then say so."""
    for attempt in range(5):
        try:
            hb.write(state=state, message=message, ended=time.time())
            return
        except OSError as e:
            err = e
            time.sleep(0.2 * (attempt + 1))
    print(f"tunedeck worker: cannot write status.json ({err}); the run ends {state}: {message}",
          file=sys.stderr, flush=True)


def _stopped_early(run: RunDir, hb: Heartbeat, st0: dict[str, Any]) -> str:
    """The message of a run stopped before its loop trained a step."""
    from tunedeck.core.engine.checkpoint import list_complete

    phase = hb.fields.get("phase") or "starting"
    last = list_complete(run.checkpoints_dir)
    then = (f"'tunedeck resume {run.id}' continues it from {last[-1].name}" if last
            else f"'tunedeck resume {run.id}' starts it from step 0")
    return f"stopped before training started (while {phase}); {then}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tunedeck.core.runs.worker")
    ap.add_argument("run_dir")
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args(argv)
    D.announce_rank()  # distributed: the supervisor's list of ranks to signal and account for
    try:
        state = run_worker(RunDir(Path(a.run_dir)), resume=a.resume)
    except RunError as e:  # another worker holds the run: it is untouched, say so in one line
        print(f"tunedeck worker {os.getpid()}: {e}; this one exits", file=sys.stderr, flush=True)
        D.record_exit("failed", str(e))
        return 2
    if D.is_main():
        D.record_exit(state, str(RunDir(Path(a.run_dir)).read_status().get("message", "")))
    return 0 if state in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
