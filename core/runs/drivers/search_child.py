"""One search trial in its own process, started by the parallel driver (search_pool):
``python -m tunedeck.core.runs.drivers.search_child TRIAL_RUN_DIR [--resume]``.

It is a normal worker (``worker.run_worker``: lock, heartbeat, events, stop, checkpoints) whose
``on_eval`` reports each validation evaluation to the study's storage and asks the pruner, so
pruning works with several trials in flight. ``trial.json`` in the run directory says where:
storage (journal file or RDB URL), study name, trial id and number, metric, pruner, and the
driver's pid. When the driver is gone (killed), the trial stops as on ``tunedeck stop``: a
checkpoint, state ``stopped``, its Optuna trial left RUNNING for ``search --resume``.
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tunedeck.core.runs.drivers.search_child")
    ap.add_argument("run_dir")
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args(argv)
    try:
        state = run_child(RunDir(Path(a.run_dir).resolve()), a.resume)
    except RunError as e:  # another worker holds the run, or trial.json is gone
        print(f"tunedeck search trial {os.getpid()}: {e}; this one exits", file=sys.stderr,
              flush=True)
        return 2
    return 0 if state in ("finished", "stopped", "pruned") else 1


if __name__ == "__main__":
    sys.exit(main())
