"""The training worker: one run, in its own process (``python -m tunedeck.core.runs.worker RUN_DIR``).

It owns the run directory while it lives (flock on run.lock), writes events and a heartbeat,
honours stop/checkpoint/evaluate requests and SIGTERM/SIGINT at step boundaries, ignores SIGHUP
(an SSH session ending must not stop training), and always leaves an honest final state.
The foreground ``tunedeck train`` runs the same ``run_worker`` in-process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from tunedeck.core.errors import DataError, RunError, UserError
from tunedeck.core.runs.events import Event, EventWriter
from tunedeck.core.runs.rundir import HEARTBEAT_S, RunDir, RunLock


class Heartbeat:
    """Rewrites status.json every few seconds with the newest progress fields."""

    def __init__(self, run: RunDir):
        self.run = run
        self.fields: dict[str, Any] = {}
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

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.write()
            except OSError:
                pass  # disk full or similar: the training thread reports it

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class StopFlag:
    def __init__(self) -> None:
        self.requested = False
        self.signals = 0

    def __call__(self) -> bool:
        return self.requested

    def handler(self, signum: int, frame: Any) -> None:
        # Only set a flag: the loop checkpoints at the next step boundary. A second signal must not
        # interrupt a checkpoint being written, so it does nothing more.
        self.requested = True
        self.signals += 1


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


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def run_worker(run: RunDir, resume: bool = False, prepared: Any = None,
               echo: Callable[[Event], None] | None = None) -> str:
    """Train ``run`` to an end state; returns it (finished/stopped/failed/diverged)."""
    lock = RunLock(run)
    lock.acquire()  # two workers never write one run directory: the second stops here
    flag = StopFlag()
    previous = install_signals(flag)
    try:
        return _run_locked(run, resume, prepared, echo, flag)
    finally:
        lock.release()
        restore_signals(previous)


def _run_locked(run: RunDir, resume: bool, prepared: Any, echo: Callable[[Event], None] | None,
                flag: StopFlag) -> str:
    events = EventWriter(run.events_path, echo=echo)
    hb = Heartbeat(run)
    st0 = run.read_status()
    state, message = "failed", ""
    try:
        hb.write(pid=os.getpid(), host=socket.gethostname(), state="running",
                 started=st0.get("started") or time.time(), ended=None, message="")
        hb.start()
        state, message = _train(run, resume, prepared, events, hb, flag)
    except UserError as e:
        state, message = "failed", str(e)
        _emit(events, "run_failed", error=message)
    except KeyboardInterrupt:
        step = int(hb.fields.get("step") or st0.get("step") or 0)
        state, message = "stopped", "stopped before training started"
        _emit(events, "run_stopped", step=step, message=message)
    except BaseException as e:  # a bug or an environment failure: say so, keep the traceback
        state, message = "failed", _describe(e, run)
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        _emit(events, "run_failed", error=message + " (traceback in worker.log)")
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


def check_same_data(run: RunDir, fingerprint: str) -> None:
    """A resumed run must see the rows it started with: changed data would re-draw the split
    (rows it trained on could land in test) and break the exact-resume promise."""
    recorded = run.read_status().get("data_fingerprint")
    if recorded and fingerprint and recorded != fingerprint:
        raise DataError(
            f"the data changed since run {run.id} started (a data file, or the split/cleaning "
            "settings, differ): resuming would re-split it and could put rows it trained on "
            "into the test split. Restore the original data, or start a new run with "
            "'tunedeck start'")


def _train(run: RunDir, resume: bool, prepared: Any, events: EventWriter, hb: Heartbeat,
           flag: StopFlag) -> tuple[str, str]:
    from tunedeck.core.engine import checkpoint as C
    from tunedeck.core.engine.loop import Diverged, FaultHooks, StopTraining, Trainer
    from tunedeck.core.engine.setup import build_model, prepare
    from tunedeck.core.fsutil import atomic_write_json
    from tunedeck.core.profile import load

    hooks = FaultHooks.from_env()
    reached = int(run.read_status().get("step") or 0)  # where the previous worker got to
    profile = load(run.profile_path)
    hb.update(name=profile.name, task=profile.task.type)
    seed_everything(profile.training.seed)
    tok_dir = run.path / "tokenizer"
    if prepared is None:
        events.emit("log", level="info", message="preparing data")
        hooks.fire("prepare")
        prepared = prepare(profile, log=lambda m: events.emit("log", level="info", message=m),
                           tokenizer_dir=tok_dir if resume else None, stop_requested=flag)
    if flag():  # a stop during data preparation: nothing trained yet, nothing to checkpoint
        raise KeyboardInterrupt
    if resume:
        check_same_data(run, prepared.data_fingerprint)
    hb.update(data_fingerprint=prepared.data_fingerprint)
    if not tok_dir.is_dir():
        tmp = run.path / ".tokenizer.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        prepared.tokenizer.save_pretrained(str(tmp))
        os.replace(tmp, tok_dir)
    # Seed again right before the weights are initialised: a fresh start, a start whose data was
    # prepared by the CLI and a resume without a checkpoint all build the same initial model.
    seed_everything(profile.training.seed)
    model = build_model(prepared)
    trainer = Trainer(prepared, run, events, should_stop=flag, status=hb.update, hooks=hooks)
    trainer.build(model)
    if not resume:
        _preflight(profile, model, events)

    removed = C.clean_leftovers(run.checkpoints_dir)
    if removed:
        events.emit("log", level="warning",
                    message=f"checkpoint leftovers of an earlier crash cleaned up: {', '.join(removed)}")
    ckpts = C.list_complete(run.checkpoints_dir) if resume else []
    device = str(trainer.device) + (f" ({_gpu_name()})" if trainer.device.type == "cuda" else "")
    resumed_from = None
    while ckpts:
        try:
            trainer.resume_from(ckpts[-1])
            resumed_from = ckpts[-1]
            break
        except C.UnsafeCheckpoint:
            raise  # tampering is reported, never worked around
        except C.CheckpointError as e:  # corrupt after it was completed (disk fault): fall back
            events.emit("log", level="warning", message=f"skipping checkpoint: {e}")
            ckpts.pop()
            if not ckpts:
                raise
    if resumed_from is not None:
        if resume and reached > trainer.state.step:
            events.emit("log", level="warning", message=(
                f"the previous worker got to step {reached} and ended without a checkpoint "
                f"there; resuming from {resumed_from.name}: {reached - trainer.state.step} "
                "steps are trained again (same data order, same results)"))
        events.emit("run_resumed", step=trainer.state.step, checkpoint=str(resumed_from),
                    total_steps=trainer.state.total_steps)
    else:
        if resume:
            events.emit("log", level="warning", message="no complete checkpoint: starting from step 0")
        events.emit("run_started", profile=profile.name, task=profile.task.type,
                    model=profile.model.name if profile.model.config is None else "config",
                    model_params=trainer.n_params, dataset_sizes=prepared.sizes(),
                    label_names=prepared.label_names, device=device,
                    precision=trainer.precision, total_steps=trainer.state.total_steps,
                    data_stats=prepared.data_stats, tokenize_cache_hit=prepared.cache_hit,
                    trust_remote_code=profile.model.trust_remote_code)
    hb.update(step=trainer.state.step, total_steps=trainer.state.total_steps,
              device=device, model_params=trainer.n_params)
    try:
        trainer.train()
    except StopTraining:
        hb.update(step=trainer.state.step)
        events.emit("run_stopped", step=trainer.state.step,
                    message="stopped on request; 'tunedeck resume' continues it")
        return "stopped", f"stopped at step {trainer.state.step}"
    except Diverged as e:
        events.emit("run_diverged", step=trainer.state.step, message=str(e))
        return "diverged", str(e)

    weights_step = trainer.state.step
    if profile.training.load_best_model_at_end:
        weights_step = trainer.load_best_weights() or weights_step
    # Final model: written aside, then renamed into place (never a half-written model/).
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    tmp = run.path / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    unwrapped.save_pretrained(str(tmp))
    prepared.tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(run.model_dir, ignore_errors=True)
    os.replace(tmp, run.model_dir)

    split = "test" if prepared.test is not None else "validation"
    metrics = trainer.evaluate(split) or {}
    report = {"split": split, **metrics, "steps": trainer.state.step, "weights_step": weights_step,
              "tokens_seen": trainer.state.tokens_seen, "train_time_s": trainer.state.train_time_s,
              "best": {"metric": prepared.task.metric_for_best, "value": trainer.state.best_metric,
                       "step": trainer.state.best_step}}
    atomic_write_json(run.metrics_path, report)
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    # The step whose weights were evaluated (the best evaluation's with load_best_model_at_end).
    events.emit("eval", split=split, step=weights_step, metrics=scalars)
    events.emit("run_finished", metrics=scalars, model_dir=str(run.model_dir), step=trainer.state.step)
    hb.update(final_metrics=scalars)
    return "finished", ""


def _preflight(profile: Any, model: Any, events: EventWriter) -> None:
    """Log the memory estimate; warn (do not refuse: an OOM backs off) when it will not fit."""
    try:
        from tunedeck.core.preflight import _fmt, preflight_report

        rep = preflight_report(profile, model=model)
    except Exception as e:  # an estimate must never stop a run
        events.emit("log", level="info", message=f"memory estimate unavailable: {e}")
        return
    if rep.get("error") or rep.get("fits") is None:
        return
    est = rep["estimate"]
    msg = (f"memory estimate {_fmt(est['total'])} of {_fmt(rep['free_bytes'])} free on "
           f"{rep['device']}")
    if not rep["fits"]:
        msg += "; it will likely not fit: " + "; ".join(rep["suggestions"])
    events.emit("log", level="info" if rep["fits"] else "warning", message=msg, kind="preflight",
                estimate=est, free_bytes=rep["free_bytes"], fits=rep["fits"])


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tunedeck.core.runs.worker")
    ap.add_argument("run_dir")
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args(argv)
    try:
        state = run_worker(RunDir(Path(a.run_dir)), resume=a.resume)
    except RunError as e:  # another worker holds the run: it is untouched, say so in one line
        print(f"tunedeck worker {os.getpid()}: {e}; this one exits", file=sys.stderr, flush=True)
        return 2
    return 0 if state in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
