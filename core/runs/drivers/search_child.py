"""One search trial in its own process, started by the parallel driver (search_pool):
``python -m tunedeck.core.runs.drivers.search_child TRIAL_RUN_DIR [--resume]``, or ``--spare``:
started ahead of its trial, it imports the training stack and then reads its run directory
from stdin (one JSON line), so a slot's next trial starts warm.

It is a normal worker (``worker.run_worker``: lock, heartbeat, events, stop, checkpoints) whose
``on_eval`` reports each validation evaluation to the study's storage and asks the pruner, so
pruning works with several trials in flight. ``trial.json`` in the run directory says where:
storage (journal file or RDB URL), study name, trial id and number, metric, pruner, and the
driver's pid. When the driver is gone (killed), the trial stops as on ``tunedeck stop``: a
checkpoint, state ``stopped``, its Optuna trial left RUNNING for ``search --resume``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tunedeck.core.errors import RunError
from tunedeck.core.fsutil import read_json
from tunedeck.core.runs.rundir import RunDir

DRIVER_POLL_S = 0.5


def watch_driver(driver_pid: int, poll_s: float = DRIVER_POLL_S) -> threading.Thread:
    """SIGTERM to this process (the worker's clean stop) once its parent is no longer the
    driver: a killed driver's children are re-parented."""

    def watch() -> None:
        while os.getppid() == driver_pid:
            time.sleep(poll_s)
        print(f"tunedeck search trial: the driver (pid {driver_pid}) is gone; stopping",
              file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    t = threading.Thread(target=watch, name="driver-watch", daemon=True)
    t.start()
    return t


def open_trial(spec: dict[str, Any]) -> Any:
    """The Optuna trial this process reports to (already asked by the driver)."""
    import optuna

    from tunedeck.core.runs.drivers.search_study import make_pruner, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A RandomSampler: the child never samples (the driver suggested the parameters), and
    # Trial() asks the sampler for relative parameters, which TPE would compute for nothing.
    study = optuna.load_study(study_name=spec["study_name"], storage=open_storage(spec["storage"]),
                              sampler=optuna.samplers.RandomSampler(),
                              pruner=make_pruner(spec["pruner"]))
    return optuna.trial.Trial(study, int(spec["trial_id"]))


def run_child(run: RunDir, resume: bool) -> str:
    from tunedeck.core.runs.drivers.search_pool import TRIAL_FILE
    from tunedeck.core.runs.drivers.search_trial import Reporter
    from tunedeck.core.runs.worker import run_worker

    spec = read_json(run.path / TRIAL_FILE)
    if not isinstance(spec, dict):
        raise RunError(f"{run.path / TRIAL_FILE} is missing or unreadable")
    watch_driver(int(spec["driver_pid"]))
    trial = open_trial(spec)
    return run_worker(run, resume=resume, on_eval=Reporter(trial, spec["metric"]))


def preload() -> None:
    """What every trial imports before its first step (seconds of work), done by a spare while
    it waits: the torch, transformers, datasets and accelerate stack and the engine."""
    import importlib

    # transformers.modeling_utils is most of a model's first build (seconds): the model class's
    # own module is small next to it.
    for name in ("torch", "transformers", "transformers.modeling_utils",
                 "transformers.optimization", "datasets", "accelerate", "peft", "optuna",
                 "tunedeck.core.runs.worker", "tunedeck.core.engine.inputs",
                 "tunedeck.core.engine.loop", "tunedeck.core.runs.drivers.search_trial"):
        try:
            importlib.import_module(name)
        except Exception:  # the trial's own import says what is wrong, in its worker.log
            return


def wait_for_trial() -> tuple[RunDir, bool] | None:
    """A spare: the one trial the driver gives it (a JSON line on stdin); None at EOF (the
    driver ended, or was killed, without needing it)."""
    preload()
    line = sys.stdin.readline()
    if not line.strip():
        return None
    job = json.loads(line)
    run = RunDir(Path(job["run_dir"]))
    fd = os.open(run.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)  # from here on this process is the trial's worker: its log is worker.log
    os.dup2(fd, 2)
    os.close(fd)
    return run, bool(job.get("resume"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tunedeck.core.runs.drivers.search_child")
    ap.add_argument("run_dir", nargs="?")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--spare", action="store_true", help="import first, then read the run "
                    "directory from stdin")
    a = ap.parse_args(argv)
    if a.spare:
        job = wait_for_trial()
        if job is None:
            return 0
        run, resume = job
    elif a.run_dir:
        run, resume = RunDir(Path(a.run_dir).resolve()), a.resume
    else:
        ap.error("give a RUN_DIR or --spare")
    try:
        state = run_child(run, resume)
    except RunError as e:  # another worker holds the run, or trial.json is gone
        print(f"tunedeck search trial {os.getpid()}: {e}; this one exits", file=sys.stderr,
              flush=True)
        return 2
    return 0 if state in ("finished", "stopped", "pruned") else 1


if __name__ == "__main__":
    sys.exit(main())
