"""Comparing runs: what differs in their profiles, their metrics side by side, their curves.

Torch-free (the TUI imports it): everything comes from the run directories' files, read
as the protocol documents them (docs/events.md):

- ``profile.toml`` (the frozen profile) flattened to dotted keys; only the keys whose values
  differ are listed, the equal ones are counted;
- ``metrics.json`` (the final evaluation) and the best validation evaluation from the event
  log (the ``eval`` event whose main metric is best, baseline step 0 excluded, as the worker's
  own ``best`` is chosen);
- ``evals/<name>/metrics.json`` written by ``tunedeck eval``, for the names all runs have;
- the validation curves: step -> eval loss and the main metric, from the ``eval`` events.

Which run is better is decided per metric: losses and perplexity lower, everything else higher.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tunedeck.core.errors import RunError
from tunedeck.core.fsutil import read_json
from tunedeck.core.runs.events import read_all
from tunedeck.core.runs.rundir import RunDir

# Keys of a metrics file that describe the evaluation rather than measure the model.
NOT_METRICS = frozenset({"split", "steps", "step", "tokens_seen", "train_time_s", "weights_step",
                         "rows", "created", "task", "checkpoint", "data", "label_names"})
LOWER_IS_BETTER = ("loss", "perplexity")
# The main metric when status.json does not name one (the tasks' metric_for_best).
MAIN_METRIC_BY_TASK = {"classification": "f1_macro"}


def lower_is_better(metric: str) -> bool:
    return any(word in metric for word in LOWER_IS_BETTER)


@dataclass
class RunInfo:
    id: str
    path: str
    name: str
    task: str
    state: str
    main_metric: str


@dataclass
class ProfileDiff:
    key: str
    values: list[Any]  # one per run; None where a run's profile does not set the key


@dataclass
class MetricRow:
    metric: str
    values: list[float | None]
    lower_is_better: bool
    best: list[int]  # indices of the best run(s); empty when fewer than two runs have a value


@dataclass
class MetricTable:
    """One block of metrics side by side: final, best validation, or a named evaluation."""

    title: str
    rows: list[MetricRow]
    # Per run: where the numbers come from (e.g. "step 40"), or why there are none.
    notes: list[str] = field(default_factory=list)


@dataclass
class Curve:
    metric: str
    points: list[list[tuple[int, float]]]  # per run: (step, value), steps increasing


@dataclass
class Comparison:
    runs: list[RunInfo]
    profile_diffs: list[ProfileDiff]
    equal_keys: int
    tables: list[MetricTable]
    curves: list[Curve]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for curve in out["curves"]:
            curve["points"] = [[list(p) for p in pts] for pts in curve["points"]]
        return out


def compare_runs(runs: Sequence[RunDir]) -> Comparison:
    """The comparison of two or more runs (a RunError for fewer, or one run given twice)."""
    _check_distinct(runs)
    infos = [_run_info(r) for r in runs]
    evals = [_validation_evals(r) for r in runs]
    diffs, equal = profile_differences([_flat_profile(r) for r in runs])
    tables = [_final_table(runs), _best_table(infos, evals)]
    tables += [_named_eval_table(runs, name) for name in common_eval_names(runs)]
    return Comparison(infos, diffs, equal, tables, _curves(infos, evals))


def _check_distinct(runs: Sequence[RunDir]) -> None:
    if len(runs) < 2:
        raise RunError("compare needs at least two runs (e.g. 'tunedeck compare RUN_A RUN_B'); "
                       "'tunedeck runs' lists them")
    seen: dict[Path, str] = {}
    for r in runs:
        key = r.path.resolve()
        if key in seen:
            raise RunError(f"{r.id} is given twice; name each run once")
        seen[key] = r.id


def _run_info(run: RunDir) -> RunInfo:
    st = run.read_status()
    task = str(st.get("task") or "?")
    best = st.get("best") if isinstance(st.get("best"), dict) else {}
    main = best.get("metric") or MAIN_METRIC_BY_TASK.get(task, "eval_loss")
    state, _ = run.effective_state(status=st)
    return RunInfo(run.id, str(run.path), str(st.get("name") or run.id), task, state, str(main))


# --- profiles ----------------------------------------------------------------------------------


def _flat_profile(run: RunDir) -> dict[str, Any]:
    try:
        doc = tomllib.loads(run.profile_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise RunError(f"{run.profile_path}: cannot read the run's profile ({e}); "
                       "it is the frozen copy written at start: restore it or leave the run "
                       "out of the comparison") from None
    return flatten(doc)


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"training": {"epochs": 3}}`` -> ``{"training.epochs": 3}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def profile_differences(flat: Sequence[dict[str, Any]]) -> tuple[list[ProfileDiff], int]:
    """The keys whose values differ between the profiles (sorted), and how many are equal."""
    keys = sorted(set().union(*flat))
    diffs = []
    for key in keys:
        values = [p.get(key) for p in flat]
        if any(v != values[0] or (key in p) != (key in flat[0]) for v, p in zip(values, flat)):
            diffs.append(ProfileDiff(key, values))
    return diffs, len(keys) - len(diffs)


# --- metrics -----------------------------------------------------------------------------------


def metric_values(metrics: Any) -> dict[str, float]:
    """The scalar metrics of a metrics file or eval event (meta keys and tables left out)."""
    if not isinstance(metrics, dict):
        return {}
    return {k: float(v) for k, v in metrics.items()
            if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)}


def metric_rows(per_run: Sequence[dict[str, float]]) -> list[MetricRow]:
    """One row per metric any run has, in a stable order (main metrics first)."""
    names = sorted(set().union(*per_run), key=_metric_order)
    rows = []
    for name in names:
        values = [m.get(name) for m in per_run]
        lower = lower_is_better(name)
        rows.append(MetricRow(name, values, lower, best_indices(values, lower)))
    return rows


def _metric_order(name: str) -> tuple[int, str]:
    first = ("accuracy", "f1_macro", "eval_loss", "perplexity")
    return (first.index(name) if name in first else len(first), name)


def best_indices(values: Sequence[float | None], lower: bool) -> list[int]:
    """The runs holding the best value (all of them on a tie); none when < 2 runs can compete."""
    have = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(have) < 2:
        return []
    target = min(v for _, v in have) if lower else max(v for _, v in have)
    return [i for i, v in have if math.isclose(v, target, rel_tol=1e-12, abs_tol=1e-15)]


def _final_table(runs: Sequence[RunDir]) -> MetricTable:
    per_run, notes = [], []
    for r in runs:
        m = read_json(r.metrics_path)
        if not isinstance(m, dict):
            per_run.append({})
            notes.append("no metrics.json (the run has not finished)")
            continue
        per_run.append(metric_values(m))
        step = m.get("weights_step", m.get("steps"))
        notes.append(f"{m.get('split', '?')} split" + (f", weights of step {step}" if step else ""))
    return MetricTable("final", metric_rows(per_run), notes)


def _best_table(infos: Sequence[RunInfo], evals: Sequence[list[tuple[int, dict[str, float]]]]
                ) -> MetricTable:
    per_run, notes = [], []
    for info, run_evals in zip(infos, evals):
        best = best_evaluation(run_evals, info.main_metric)
        if best is None:
            per_run.append({})
            notes.append("no validation evaluation after step 0")
            continue
        step, metrics = best
        per_run.append(metrics)
        notes.append(f"step {step}, best {info.main_metric}")
    return MetricTable("best validation", metric_rows(per_run), notes)


def best_evaluation(evals: Sequence[tuple[int, dict[str, float]]], metric: str
                    ) -> tuple[int, dict[str, float]] | None:
    """The validation evaluation with the best ``metric``; the untrained baseline (step 0) is
    not a result, and on a tie the earliest step wins (as the worker keeps its first best)."""
    lower = lower_is_better(metric)
    best: tuple[int, dict[str, float]] | None = None
    for step, metrics in evals:
        value = metrics.get(metric)
        if step <= 0 or value is None or not math.isfinite(value):
            continue
        if best is None or (value < best[1][metric] if lower else value > best[1][metric]):
            best = (step, metrics)
    return best


def _validation_evals(run: RunDir) -> list[tuple[int, dict[str, float]]]:
    """(step, metrics) of each validation evaluation, steps increasing. A resumed run redoes the
    steps after its checkpoint: a later evaluation at an earlier step replaces the rest."""
    out: list[tuple[int, dict[str, float]]] = []
    for ev in read_all(run.events_path):
        if ev.type != "eval" or ev.data.get("split", "validation") != "validation":
            continue
        try:
            step = int(ev.data.get("step"))
        except (TypeError, ValueError):
            continue
        while out and out[-1][0] >= step:
            out.pop()
        out.append((step, metric_values(ev.data.get("metrics"))))
    return out


# --- named evaluations (tunedeck eval) ----------------------------------------------------------


def _eval_metrics(run: RunDir, name: str) -> dict[str, Any] | None:
    m = read_json(run.path / "evals" / name / "metrics.json")
    return m if isinstance(m, dict) else None


def _eval_names(run: RunDir) -> set[str]:
    root = run.path / "evals"
    try:
        return {d.name for d in root.iterdir()
                if not d.name.startswith(".") and (d / "metrics.json").is_file()}
    except OSError:
        return set()


def common_eval_names(runs: Sequence[RunDir]) -> list[str]:
    """The ``tunedeck eval`` results every run has (same name: same data and checkpoint)."""
    return sorted(set.intersection(*(_eval_names(r) for r in runs)))


def _named_eval_table(runs: Sequence[RunDir], name: str) -> MetricTable:
    per_run, notes = [], []
    for r in runs:
        m = _eval_metrics(r, name) or {}
        per_run.append(metric_values(m))
        where = m.get("split") or (Path(str(m["data"])).name if m.get("data") else "?")
        notes.append(f"{where}, {m.get('checkpoint', '?')}, {m.get('rows', '?')} rows")
    return MetricTable(f"eval {name}", metric_rows(per_run), notes)


# --- curves ------------------------------------------------------------------------------------


def _curves(infos: Sequence[RunInfo], evals: Sequence[list[tuple[int, dict[str, float]]]]
            ) -> list[Curve]:
    """Validation loss, then each run's main metric (once per distinct metric)."""
    names = ["eval_loss"] + [i.main_metric for i in infos]
    curves = []
    for name in dict.fromkeys(names):
        points = [[(step, m[name]) for step, m in run_evals if name in m] for run_evals in evals]
        if any(points):
            curves.append(Curve(name, points))
    return curves
