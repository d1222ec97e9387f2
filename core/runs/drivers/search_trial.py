"""One search trial as a normal run: created, or resumed from its newest checkpoint when a
killed driver left it half-trained, and trained in this process with a hook that reports each
validation evaluation to the study (trial.report) and asks the pruner whether to stop."""

from __future__ import annotations

import time
from typing import Any, Callable

from tunedeck.core.fsutil import atomic_write_text
from tunedeck.core.runs.rundir import RunDir


class Reporter:
    """``on_eval`` for the training loop: the trial's metric at each evaluation after the
    baseline (step 0 is the untrained model: it says nothing about the trial's values)."""

    def __init__(self, trial: Any, metric: str):
        self.trial, self.metric = trial, metric

    def __call__(self, step: int, metrics: dict[str, Any]) -> bool:
        value = metrics.get(self.metric)
        if step <= 0 or not isinstance(value, (int, float)):
            return False
        self.trial.report(float(value), step)
        return bool(self.trial.should_prune())


def train_trial(run: RunDir, prof: Any, trial: Any, metric: str,
                echo: Callable[[Any], None] | None) -> str:
    """The trial's run to an end state: started when new, kept when it already ended, else
    resumed from its newest complete checkpoint exactly as `tunedeck resume` does."""
    from tunedeck.core.runs.lifecycle import resume_run
    from tunedeck.core.runs.protocol import is_final
    from tunedeck.core.runs.worker import run_worker

    on_eval = Reporter(trial, metric)
    if not run.status_path.is_file():
        create_trial_run(run, prof, trial.number)
        return run_worker(run, echo=echo, on_eval=on_eval)
    state, _ = run.effective_state()
    if is_final(state) and state != "stopped" and state != "failed":
        return state  # ended before the driver could tell the study: tell it now
    resumed = resume_run(run, detach=False)
    print(f"trial {trial.number}: resuming from {resumed.from_checkpoint or 'step 0'}",
          flush=True)
    return run_worker(run, resume=True, prepared=resumed.prepared, echo=echo, on_eval=on_eval)


def create_trial_run(run: RunDir, prof: Any, number: int) -> None:
    from tunedeck.core.profile import dumps

    run.path.mkdir(exist_ok=True)  # exists: a driver killed between mkdir and status.json
    atomic_write_text(run.profile_path, dumps(prof))
    run.write_status(state="starting", heartbeat=time.time(), created=time.time(), step=0,
                     name=prof.name, task=prof.task.type, trial=number)
