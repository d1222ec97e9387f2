"""The training worker: one run, in its own process (``python -m core.worker RUN_DIR``).

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

from core.errors import UserError
from core.events import Event, EventWriter
from core.runs import HEARTBEAT_S, RunDir, RunLock


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


def install_signals(flag: StopFlag) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, flag.handler)
    signal.signal(signal.SIGINT, flag.handler)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


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
    lock.acquire()
    events = EventWriter(run.events_path, echo=echo)
    hb = Heartbeat(run)
    flag = StopFlag()
    install_signals(flag)
    st0 = run.read_status()
    hb.write(pid=os.getpid(), host=socket.gethostname(), state="running",
             started=st0.get("started") or time.time(), ended=None, message="")
    hb.start()
    state, message = "failed", ""
    try:
        state, message = _train(run, resume, prepared, events, hb, flag)
    except UserError as e:
        state, message = "failed", str(e)
        events.emit("run_failed", error=message)
    except KeyboardInterrupt:
        state, message = "stopped", "stopped before training started"
        events.emit("run_stopped", step=0, message=message)
    except BaseException as e:  # a bug or an environment failure: say so, keep the traceback
        state, message = "failed", f"{type(e).__name__}: {e}"
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        events.emit("run_failed", error=message + " (traceback in worker.log)")
    finally:
        hb.stop()
        try:
            hb.write(state=state, message=message, ended=time.time())
        finally:
            events.close()
            lock.release()
    return state


def _train(run: RunDir, resume: bool, prepared: Any, events: EventWriter, hb: Heartbeat,
           flag: StopFlag) -> tuple[str, str]:
    from core.engine import checkpoint as C
    from core.engine.loop import Diverged, StopTraining, Trainer
    from core.engine.setup import build_model, prepare
    from core.fsutil import atomic_write_json
    from core.profile import load

    profile = load(run.profile_path)
    hb.update(name=profile.name, task=profile.task.type)
    seed_everything(profile.training.seed)
    tok_dir = run.path / "tokenizer"
    if prepared is None:
        events.emit("log", level="info", message="preparing data")
        prepared = prepare(profile, log=lambda m: events.emit("log", level="info", message=m),
                           tokenizer_dir=tok_dir if resume else None, stop_requested=flag)
    if not tok_dir.is_dir():
        tmp = run.path / ".tokenizer.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        prepared.tokenizer.save_pretrained(str(tmp))
        os.replace(tmp, tok_dir)
    model = build_model(prepared)
    trainer = Trainer(prepared, run, events, should_stop=flag, status=hb.update)
    trainer.build(model)

    removed = C.clean_leftovers(run.checkpoints_dir)
    if removed:
        events.emit("log", level="warning", message=f"removed incomplete checkpoints: {', '.join(removed)}")
    ckpts = C.list_complete(run.checkpoints_dir) if resume else []
    device = str(trainer.device) + (f" ({_gpu_name()})" if trainer.device.type == "cuda" else "")
    if ckpts:
        trainer.resume_from(ckpts[-1])
        events.emit("run_resumed", step=trainer.state.step, checkpoint=str(ckpts[-1]),
                    total_steps=trainer.state.total_steps)
    else:
        if resume:
            events.emit("log", level="warning", message="no complete checkpoint: starting from step 0")
        events.emit("run_started", profile=profile.name, task=profile.task.type,
                    model=profile.model.name if profile.model.config is None else "config",
                    model_params=trainer.n_params, dataset_sizes=prepared.sizes(),
                    label_names=prepared.label_names, device=device,
                    precision=trainer.precision, total_steps=trainer.state.total_steps,
                    data_stats=prepared.data_stats, tokenize_cache_hit=prepared.cache_hit)
    hb.update(step=trainer.state.step, total_steps=trainer.state.total_steps,
              device=device, model_params=trainer.n_params)
    try:
        trainer.train()
    except StopTraining:
        events.emit("run_stopped", step=trainer.state.step,
                    message="stopped on request; 'tunedeck resume' continues it")
        return "stopped", f"stopped at step {trainer.state.step}"
    except Diverged as e:
        events.emit("run_diverged", step=trainer.state.step, message=str(e))
        return "diverged", str(e)

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
    report = {"split": split, **metrics, "steps": trainer.state.step,
              "tokens_seen": trainer.state.tokens_seen, "train_time_s": trainer.state.train_time_s,
              "best": {"metric": prepared.task.metric_for_best, "value": trainer.state.best_metric,
                       "step": trainer.state.best_step}}
    atomic_write_json(run.metrics_path, report)
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    events.emit("eval", split=split, step=trainer.state.step, metrics=scalars)
    events.emit("run_finished", metrics=scalars, model_dir=str(run.model_dir), step=trainer.state.step)
    hb.update(final_metrics=scalars)
    return "finished", ""


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.worker")
    ap.add_argument("run_dir")
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args(argv)
    state = run_worker(RunDir(Path(a.run_dir)), resume=a.resume)
    return 0 if state in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
