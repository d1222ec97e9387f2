"""The Optuna side of a search: the study's storage, sampler and pruner, the trial budget shared
by every driver of one study, and reading results back (``search show`` / ``search best``).

The study in Optuna's storage is the source of truth: which trials exist, their parameters,
state, value and reported intermediate values. group.json only says where that storage is.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tunedeck.core.errors import RunError

JOURNAL = "study.journal"


def storage_spec(group_path: Path, info: dict[str, Any]) -> str:
    """The storage as group.json records it: an RDB URL, or a journal file path."""
    return info.get("storage") or str(group_path / JOURNAL)


def open_storage(spec: str) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if "://" in spec:
        return optuna.storages.RDBStorage(spec)
    Path(spec).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(spec))


def make_sampler(strategy: str, seed: int, space: list[Any], n_trials: int = 0) -> Any:
    """The sampler for the next ask. Random and TPE are seeded with seed + the number of trials
    so far; the grid keeps its seed (it orders the grid points by it) and picks among the
    points not yet tried."""
    import optuna

    if strategy == "grid":
        grid = {d.key: d.grid_values() for d in space}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed + n_trials)
    return optuna.samplers.TPESampler(seed=seed + n_trials)


def make_pruner(name: str) -> Any:
    import optuna

    if name == "median":
        # Two trials must finish before any is compared with the median, and the baseline
        # evaluation (step 0) is never reported: an untrained model says nothing about a trial.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def open_study(group_path: Path, info: dict[str, Any], sampler: Any = None,
               create: bool = False) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(storage_spec(group_path, info))
    if create:
        return optuna.create_study(storage=storage, study_name=info["study_name"],
                                   direction=info["direction"], sampler=sampler,
                                   pruner=make_pruner(info.get("pruner", "none")),
                                   load_if_exists=True)
    try:
        return optuna.load_study(study_name=info["study_name"], storage=storage, sampler=sampler,
                                 pruner=make_pruner(info.get("pruner", "none")))
    except KeyError:
        raise RunError(f"no study {info['study_name']!r} in {storage_spec(group_path, info)}"
                       ) from None


@contextmanager
def budget_lock(group_path: Path, info: dict[str, Any]) -> Iterator[None]:
    """Held while a driver on this machine counts the study's trials and asks for a new one:
    drivers sharing a journal or SQLite file here do not race for the same grid point. The
    trial budget does not depend on it (drivers on other machines cannot see it): see
    ask_within_budget."""
    spec = storage_spec(group_path, info)
    path = spec.split("sqlite:///", 1)[1] if spec.startswith("sqlite:///") else spec
    lock_path = Path(path + ".budget.lock") if "://" not in path else group_path / "budget.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


OVER_BUDGET = "over_budget"


def ask_within_budget(study: Any, planned: int, group_id: str) -> Any:
    """A new trial, or None when the study has its ``planned`` trials (all drivers' counted)
    or the grid is used up.

    The storage numbers a study's trials 0, 1, 2 ... in the order they were created, atomically
    (one RDB transaction, one journal record), whichever machine asked. So a trial numbered
    ``planned`` or above is one too many even when two drivers counted ``planned - 1`` at once:
    it is told FAIL at once, marked over_budget (listings leave it out), and never trained."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    if len(trials) >= planned:
        return None
    sampler = study.sampler
    if isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study):
        return None
    trial = study.ask()
    trial.set_user_attr("group", group_id)
    if trial.number >= planned:
        trial.set_user_attr(OVER_BUDGET, True)
        trial.set_user_attr("message", f"over budget: the study already has its {planned} "
                                       "trials (another driver asked at the same time)")
        study.sampler = optuna.samplers.RandomSampler()  # GridSampler's after_trial would stop()
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return None
    return trial


def counted_trials(study: Any) -> list[Any]:
    """The study's trials without the over-budget extras (asked and dropped at once)."""
    return [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(OVER_BUDGET)]


# --- results -----------------------------------------------------------------------------

STATE_ORDER = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "FAIL": 3, "WAITING": 4}


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """Every trial: number, state, params, value, duration, run dir; best first (complete by
    value, then pruned, running, failed)."""
    sign = 1 if study.direction.name == "MINIMIZE" else -1
    rows = []
    for t in counted_trials(study):
        end = t.datetime_complete.timestamp() if t.datetime_complete else time.time()
        start = t.datetime_start.timestamp() if t.datetime_start else None
        last = max(t.intermediate_values) if t.intermediate_values else None
        rows.append({"number": t.number, "state": t.state.name.lower(), "params": t.params,
                     "value": t.value, "duration_s": (end - start) if start else None,
                     "last_step": last, "run_dir": t.user_attrs.get("run_dir"),
                     "group": t.user_attrs.get("group"), "message": t.user_attrs.get("message")})
    rows.sort(key=lambda r: (STATE_ORDER.get(r["state"].upper(), 9),
                             sign * r["value"] if r["value"] is not None else 0, r["number"]))
    return rows


def importances(study: Any) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA) once two trials are complete; {} before, or when
    they cannot be computed (one value tried per parameter)."""
    import optuna

    done = [t for t in study.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < 2:
        return {}
    try:
        got = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}
    return {k: float(v) for k, v in got.items()}


def best_profile_text(group: Any) -> tuple[int, dict[str, Any], str]:
    """(trial number, its params, the original profile's text with them set): comments and
    layout kept by the format-keeping editor."""
    import optuna

    from tunedeck.core.profile.edit import update_text
    from tunedeck.core.profile.io import loads
    from tunedeck.core.runs.drivers.search_space import apply_params

    study = open_study(group.path, group.info())
    done = [t for t in study.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise RunError(f"study {group.id} has no complete trial yet; 'tunedeck search show "
                       f"{group.id}' lists its trials")
    best = study.best_trial
    text = (group.path / "original_profile.toml").read_text(encoding="utf-8")
    return best.number, best.params, update_text(text, apply_params(loads(text), best.params))
