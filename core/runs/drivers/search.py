"""Hyperparameter search: ``tunedeck search PROFILE`` and ``tunedeck search --resume STUDY``.

`start_search` checks the space against the schema (search_space), writes the study directory
(base profile, the original profile text, group.json) under a temp name and renames it into
place, then starts the driver detached (``python -m tunedeck.core.runs.drivers.search STUDY``)
or runs it here. The driver asks Optuna for trials (ask/tell) while the study has fewer than
``trials`` (every driver sharing its storage counted), and trains each as a normal run directory
``STUDY/trial-N``: with ``search.parallel`` 1 in the driver's own process by
``worker.run_worker``, with more in one child worker process per trial (search_pool,
search_child). Either way the trial's worker tells the study each validation evaluation
(trial.report) and ends ``pruned`` when the pruner says so. A killed driver leaves its trials
RUNNING in the study: the resumed driver continues each from its newest checkpoint and tells
the same trial, so no trial is counted twice.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from tunedeck.core.errors import ProfileError, RunError
from tunedeck.core.fsutil import atomic_write_json, atomic_write_text
from tunedeck.core.runs.drivers.base import (GroupStart, DriverContext, GroupDir, launch, prepare_resume,
                                             driver_main, run_driver)
from tunedeck.core.runs.drivers.search_space import (apply_params, check_space, direction_of,
                                                     planned_trials, read_space_file)
from tunedeck.core.runs.rundir import RunDir, new_run_id

DRIVER_MODULE = "tunedeck.core.runs.drivers.search"


def with_space_file(prof: Any, space_file: str | None) -> Any:
    """The profile with ``--space FILE`` as its search.space (validated by the schema)."""
    if not space_file:
        return prof
    from tunedeck.core.profile.schema import Profile

    data = prof.model_dump()
    data["search"]["space"] = read_space_file(space_file)
    try:
        return Profile.model_validate(data)
    except Exception as e:  # pydantic's ValidationError: the space is not a table
        raise ProfileError(f"not a search space: {e}", path=str(space_file)) from None


def create_study_group(prof: Any, original_text: str) -> GroupDir:
    """The study directory, written aside and renamed into place (never half a study in a
    listing). Nothing is written when the space is bad (ProfileError, exit 2)."""
    from tunedeck.core.profile import dumps

    dims = check_space(prof)
    s = prof.search
    runs_dir = Path(prof.output.runs_dir).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    gid = new_run_id(f"{prof.name}-search")
    storage = s.storage
    if storage and "://" not in storage:
        storage = str(Path(storage).expanduser().resolve())  # a journal file shared by drivers
    info = {"kind": "search", "name": prof.name, "task": prof.task.type,
            "trials": planned_trials(prof, dims), "strategy": s.strategy, "metric": s.metric,
            "parallel": s.parallel,
            "direction": direction_of(prof), "pruner": s.pruner, "storage": storage,
            "study_name": s.study_name or f"{prof.name}-search",
            "seed": prof.training.seed if s.seed is None else s.seed,
            "space": [d.to_json() for d in dims], "created": time.time()}
    tmp = runs_dir / f".{gid}.creating"
    try:
        tmp.mkdir()
        atomic_write_text(tmp / "base_profile.toml", dumps(prof))
        atomic_write_text(tmp / "original_profile.toml", original_text)
        atomic_write_json(tmp / "group.json", info)
        GroupDir(tmp).write_status(state="starting", heartbeat=time.time(), created=time.time(),
                                   kind="search", name=prof.name, task=prof.task.type, step=0,
                                   total_steps=info["trials"])
        os.rename(tmp, runs_dir / gid)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return GroupDir(runs_dir / gid)


def start_search(prof: Any, original_text: str, detach: bool = True) -> GroupStart:
    """Check the profile like `start` and the space against the schema, write the study
    directory, start its driver (detached)."""
    from tunedeck.core.runs.lifecycle import check_start

    from tunedeck.core.runs.drivers.search_pool import trial_slots, visible_gpus

    check_space(prof)  # a bad space is exit 2 before the data is read
    trial_slots(prof.search.parallel, visible_gpus())  # more trials at once than GPUs: exit 2
    check_start(prof)
    group = create_study_group(prof, original_text)
    _create_study(group)
    pid = launch(group, DRIVER_MODULE) if detach else None
    return GroupStart(group.path, group.id, "trials", int(group.info()["trials"]), pid)


def _create_study(group: GroupDir) -> Any:
    """The study in its storage (joined when drivers share one). Under the budget lock: two
    drivers starting at once never race to create the same study or SQLite schema."""
    from tunedeck.core.runs.drivers.search_study import budget_lock, open_study

    with budget_lock(group.path, group.info()):
        return open_study(group.path, group.info(), create=True)


def resume_search(group: GroupDir, detach: bool = True) -> GroupStart:
    """Continue a stopped or killed study: done trials kept, an interrupted one resumed."""
    info = group.info()
    if info.get("kind") != "search":
        raise RunError(f"{group.path}: not a search study (group.json kind is "
                       f"{info.get('kind')!r})")
    prepare_resume(group)
    pid = launch(group, DRIVER_MODULE, resume=True) if detach else None
    return GroupStart(group.path, group.id, "trials", int(info["trials"]), pid)


# --- the driver --------------------------------------------------------------------------

def run_search(group: GroupDir, echo: Callable[[Any], None] | None = None) -> str:
    """The driver: trials until the study has its count; returns the study's end state."""
    return run_driver(group, lambda ctx: _run_trials(ctx, echo))


def _run_trials(ctx: DriverContext, echo: Callable[[Any], None] | None) -> tuple[str, str]:
    from tunedeck.core.profile import load
    from tunedeck.core.runs.drivers.search_pool import TrialPool, trial_slots, visible_gpus

    group, info = ctx.group, ctx.group.info()
    base = load(group.profile_path)
    dims = check_space(base)
    study = _create_study(group)
    slots = trial_slots(base.search.parallel, visible_gpus())
    if len(slots) > 1:  # each trial in its own worker process
        return TrialPool(ctx, study, base, dims, slots).run(_interrupted_trials(study, group))
    hint = f"'tunedeck search --resume {group.id}' continues it"
    for trial in _interrupted_trials(study, group):
        if _run_trial(ctx, study, trial, base, dims, echo) == "stopped":
            return "stopped", f"stopped in trial {trial.number}; {hint}"
    while True:
        ctx.status(step=done_here(group), total_steps=info["trials"])
        if ctx.stop_asked():
            return "stopped", f"stopped between trials; {hint}"
        trial = ask_next(group, study, dims)
        if trial is None:
            break
        if _run_trial(ctx, study, trial, base, dims, echo) == "stopped":
            return "stopped", f"stopped in trial {trial.number}; {hint}"
    ctx.status(step=done_here(group), current=None)
    return "finished", ""


def ask_next(group: GroupDir, study: Any, dims: list[Any]) -> Any:
    """The study's next trial, or None when it has its count (every driver's trials counted)."""
    from tunedeck.core.runs.drivers.search_study import (ask_within_budget, budget_lock,
                                                         make_sampler)

    info = group.info()
    with budget_lock(group.path, info):
        # A fresh sampler seeded by the trial count: the same study draws the same values
        # in the same order whether or not its driver was killed and resumed on the way.
        n = len(study.get_trials(deepcopy=False))
        study.sampler = make_sampler(info["strategy"], int(info["seed"]), dims, n)
        trial = ask_within_budget(study, int(info["trials"]), group.id)
    if trial is not None and trial.number != n and info["strategy"] != "grid":
        # Another driver asked in between: seed by this trial's own number (the values are
        # drawn at suggest time), so two drivers never draw the same values.
        study.sampler = make_sampler(info["strategy"], int(info["seed"]), dims, trial.number)
    return trial


def _interrupted_trials(study: Any, group: GroupDir) -> list[Any]:
    """This study directory's trials a killed or stopped driver left RUNNING."""
    import optuna

    return [optuna.trial.Trial(study, t._trial_id) for t in study.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.RUNNING
            and t.user_attrs.get("group") == group.id]


def done_here(group: GroupDir) -> int:
    from tunedeck.core.runs.protocol import is_final

    return sum(1 for m in group.members() if is_final(m.read_status().get("state")))


def suggest(trial: Any, dims: list[Any], strategy: str) -> dict[str, Any]:
    out = {}
    for d in dims:
        if d.choices is not None or strategy == "grid":
            out[d.key] = trial.suggest_categorical(d.key, d.grid_values() if d.choices is None
                                                   else list(d.choices))
        elif d.is_int:
            out[d.key] = trial.suggest_int(d.key, int(d.low), int(d.high),
                                           step=int(d.step or 1), log=d.log)
        else:
            out[d.key] = trial.suggest_float(d.key, float(d.low), float(d.high), step=d.step,
                                             log=d.log)
    return out


def _trial_profile(ctx: DriverContext, study: Any, trial: Any, base: Any,
                   dims: list[Any]) -> tuple[RunDir, Any] | None:
    """The trial's run directory and profile; None when the schema refuses the combination
    (told FAIL with the message: the study goes on)."""
    import optuna

    group, info = ctx.group, ctx.group.info()
    run = RunDir(group.path / f"trial-{trial.number}")
    ctx.status(current=run.path.name)
    try:
        params = suggest(trial, dims, info["strategy"])
        prof = apply_params(base, params, where=f"trial {trial.number}")
    except ProfileError as e:
        trial.set_user_attr("message", str(e))
        study.sampler = optuna.samplers.RandomSampler()  # GridSampler's after_trial would stop()
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return None
    trial.set_user_attr("run_dir", str(run.path))
    print(f"trial {trial.number}: {params} -> {run.path}", flush=True)
    return run, prof


def prepare_trial(ctx: DriverContext, study: Any, trial: Any, base: Any,
                  dims: list[Any]) -> tuple[RunDir, str] | None:
    """A trial's run made ready for a child worker: ("new" | "resume" | "ended"); None when the
    trial was already told (a refused combination)."""
    from tunedeck.core.runs.drivers.search_trial import create_trial_run
    from tunedeck.core.runs.lifecycle import check_resumable, newest_checkpoint
    from tunedeck.core.runs.protocol import is_final

    got = _trial_profile(ctx, study, trial, base, dims)
    if got is None:
        return None
    run, prof = got
    if not run.status_path.is_file():
        create_trial_run(run, prof, trial.number)
        return run, "new"
    state, _ = run.effective_state()
    if is_final(state) and state not in ("stopped", "failed"):
        return run, "ended"  # ended before the driver could tell the study: tell it now
    # As resume_run, without preparing the data here: the child does, and checks it is the
    # data the trial started with (a changed file fails that trial, the study goes on).
    check_resumable(run)
    with run.launch_lock():
        check_resumable(run)
        run.take_requests()  # e.g. the stop that ended it
        run.write_status(state="starting", heartbeat=time.time())
    print(f"trial {trial.number}: resuming from {newest_checkpoint(run) or 'step 0'}",
          flush=True)
    return run, "resume"


def _run_trial(ctx: DriverContext, study: Any, trial: Any, base: Any, dims: list[Any],
               echo: Callable[[Any], None] | None) -> str:
    """One trial to an end: its run trained (or resumed) in this process, then told to the
    study. Returns the run's end state ('stopped' leaves the trial RUNNING for --resume)."""
    from tunedeck.core.runs.drivers.search_trial import train_trial

    got = _trial_profile(ctx, study, trial, base, dims)
    if got is None:
        return "failed"
    run, prof = got
    state = train_trial(run, prof, trial, ctx.group.info()["metric"], echo)
    if state != "stopped":
        tell_ended(ctx, study, trial, state, run)
    return state


def tell_ended(ctx: DriverContext, study: Any, trial: Any, state: str, run: RunDir) -> None:
    """An ended trial run told to the study, and the best so far into the driver's status."""
    info = ctx.group.info()
    _tell(study, trial, state, run, info)
    print(f"trial {trial.number}: {state}", flush=True)
    try:
        best = study.best_trial
        ctx.status(best={"metric": info["metric"], "value": best.value, "trial": best.number})
    except ValueError:  # no complete trial yet
        pass


def _tell(study: Any, trial: Any, state: str, run: RunDir, info: dict[str, Any]) -> None:
    import optuna

    values = list(study._storage.get_trial(trial._trial_id).intermediate_values.values())
    # GridSampler's after_trial calls study.stop() on the last grid point, which only works
    # inside study.optimize: tell through a sampler whose after_trial does nothing.
    study.sampler = optuna.samplers.RandomSampler()
    if state == "pruned":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    elif state == "finished" and values:
        best = min(values) if info["direction"] == "minimize" else max(values)
        study.tell(trial, best)
    else:
        message = run.read_status().get("message") or (
            "no validation evaluation to score" if state == "finished" else state)
        trial.set_user_attr("message", f"{state}: {message}")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def main(argv: list[str] | None = None) -> int:
    return driver_main("search", DRIVER_MODULE, run_search, argv)


if __name__ == "__main__":
    sys.exit(main())
