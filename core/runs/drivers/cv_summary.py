"""A k-fold group's result: per metric the mean, the sample standard deviation (ddof=1) and
each fold's value, over the folds that finished; the folds' run ids and states. Written to
``GROUP/summary.json`` after every fold. Torch-free (listings read it)."""

from __future__ import annotations

import math
import time
from typing import Any

from tunedeck.core.fsutil import atomic_write_json, read_json
from tunedeck.core.runs.rundir import RunDir

# Numbers in a run's metrics.json that describe the run, not the model's quality.
NOT_METRICS = frozenset({"steps", "weights_step", "tokens_seen", "train_time_s"})
# The metric a one-line view shows (the first one present).
MAIN_METRICS = ("accuracy", "perplexity", "eval_loss")
STD_NOTE = "sample standard deviation over the finished folds (ddof=1); null with fewer than 2"


def fold_run(group_path: Any, i: int) -> RunDir:
    return RunDir(group_path / f"fold-{i}")


def fold_entry(group_path: Any, i: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the fold's run id, path and state; its metrics.json when it finished)."""
    run = fold_run(group_path, i)
    if not run.status_path.is_file():
        return {"fold": i, "run_id": run.id, "path": str(run.path), "state": "pending"}, None
    state, reason = run.effective_state()
    entry = {"fold": i, "run_id": run.id, "path": str(run.path), "state": state,
             "step": int(run.read_status().get("step", 0) or 0)}
    if reason:
        entry["reason"] = reason
    metrics = read_json(run.metrics_path) if state == "finished" else None
    return entry, metrics if isinstance(metrics, dict) else None


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def build_summary(group_path: Any, folds: int) -> dict[str, Any]:
    runs, per_fold = [], []
    for i in range(1, folds + 1):
        entry, metrics = fold_entry(group_path, i)
        runs.append(entry)
        per_fold.append(metrics)
    keys = sorted({k for m in per_fold if m for k, v in m.items()
                   if k not in NOT_METRICS and isinstance(v, (int, float))
                   and not isinstance(v, bool)})
    table: dict[str, Any] = {}
    for key in keys:
        values = [m.get(key) if m else None for m in per_fold]
        mean, std = mean_std([float(v) for v in values if isinstance(v, (int, float))])
        table[key] = {"mean": mean, "std": std, "values": values}
    splits = {m.get("split") for m in per_fold if m}
    done = sum(1 for m in per_fold if m)
    return {"kind": "cv", "folds": folds, "folds_done": done,
            "main_metric": next((k for k in MAIN_METRICS if k in table), None),
            "evaluated_on": splits.pop() if len(splits) == 1 else None,
            "std": STD_NOTE, "std_ddof": 1, "metrics": table, "runs": runs,
            "updated": time.time()}


def write_summary(group_path: Any, folds: int) -> dict[str, Any]:
    summary = build_summary(group_path, folds)
    atomic_write_json(group_path / "summary.json", summary)
    return summary


def format_mean_std(entry: dict[str, Any] | None, digits: int = 4) -> str:
    """'0.9123 ± 0.0101' (or just the mean with one fold done; '-' with none)."""
    if not entry or entry.get("mean") is None:
        return "-"
    if entry.get("std") is None:
        return f"{entry['mean']:.{digits}f}"
    return f"{entry['mean']:.{digits}f} ± {entry['std']:.{digits}f}"
