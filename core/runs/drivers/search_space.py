"""A search's space, checked against the profile schema before anything is written.

``[search.space]`` (or ``--space FILE``) maps dotted profile keys to a list of values or a range
``{low, high, log, step}``. Every problem is a ProfileError naming ``search.space.<key>`` (exit
2, one line): a key that is not in the schema (with a did-you-mean), a key that is not a
hyperparameter, an empty list, low > high, log with low <= 0, a bound or value the schema
refuses, a grid of more points than trials without ``partial_grid``. Torch-free, Optuna-free.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tunedeck.core.errors import ProfileError

# What a search may vary: what changes how a model learns, not where data or runs live.
HYPERPARAMETERS = (
    "training.epochs", "training.max_steps", "training.learning_rate", "training.batch_size",
    "training.batching", "training.batch_tokens", "training.gradient_accumulation_steps",
    "training.weight_decay", "training.warmup_ratio", "training.dropout", "training.max_length",
    "training.max_grad_norm", "training.early_stopping_patience", "model.name",
)
RANGE_KEYS = ("low", "high", "log", "step")
TASK_METRICS = {"classification": ("eval_loss", "accuracy", "f1_macro"),
                "causal-lm": ("eval_loss", "perplexity"), "seq2seq": ("eval_loss", "perplexity")}


@dataclass(frozen=True)
class Dimension:
    key: str  # "training.learning_rate"
    choices: tuple[Any, ...] | None = None
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    is_int: bool = False

    def grid_values(self) -> list[Any]:
        if self.choices is not None:
            return list(self.choices)
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        vals = [self.low + i * self.step for i in range(n)]
        return [int(v) for v in vals] if self.is_int else [round(v, 12) for v in vals]

    def to_json(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"key": self.key, "choices": list(self.choices)}
        return {"key": self.key, "low": self.low, "high": self.high, "log": self.log,
                "step": self.step, "int": self.is_int}


def read_space_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ProfileError(f"cannot read the space file: {e.strerror}", path=str(p)) from None
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"not valid TOML: {e}", path=str(p)) from None
    # A file with a [search.space] (or [space]) table, or the space itself at the top.
    return data.get("search", {}).get("space") or data.get("space") or data


def flatten_space(space: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested TOML tables ({training = {learning_rate = {...}}}) to dotted keys; a list or a
    table of low/high/log/step is a leaf."""
    out: dict[str, Any] = {}
    for k, v in space.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and not any(r in v for r in RANGE_KEYS):
            out.update(flatten_space(v, key + "."))
        else:
            out[key] = v
    return out


def check_space(prof: Any) -> list[Dimension]:
    """The profile's search space as dimensions, or ProfileError on its first problem."""
    s = prof.search
    space = flatten_space(s.space)
    if not space:
        raise ProfileError("the search space is empty: add e.g. [search.space] "
                           "training.learning_rate = {low = 1e-5, high = 1e-4, log = true}, "
                           "or pass --space FILE", path="search.space")
    dims = [_dimension(prof, key, spec, s.strategy) for key, spec in space.items()]
    _check_metric(prof)
    _check_trials(prof, dims)
    return dims


def _where(key: str) -> str:
    return f"search.space.{key}"


def _dimension(prof: Any, key: str, spec: Any, strategy: str) -> Dimension:
    _check_key(key)
    is_int = _is_int_field(key)
    if isinstance(spec, list):
        if not spec:
            raise ProfileError("the list of values is empty; give at least one", path=_where(key))
        for v in spec:
            apply_params(prof, {key: v}, where=_where(key))
        return Dimension(key, choices=tuple(spec), is_int=is_int)
    if not isinstance(spec, dict):
        raise ProfileError(f"{spec!r}: give a list of values ([16, 32]) or a range "
                           "({low = 1e-5, high = 1e-4})", path=_where(key))
    return _range(prof, key, spec, strategy, is_int)


def _range(prof: Any, key: str, spec: dict[str, Any], strategy: str, is_int: bool) -> Dimension:
    extra = sorted(set(spec) - set(RANGE_KEYS))
    if extra or "low" not in spec or "high" not in spec:
        raise ProfileError(f"a range is {{low, high}} with optional log, step (got "
                           f"{', '.join(sorted(spec))})", path=_where(key))
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in (low, high)):
        raise ProfileError("low and high must be numbers", path=_where(key))
    if low > high:
        raise ProfileError(f"low ({low}) is above high ({high})", path=_where(key))
    if not isinstance(log, bool):
        raise ProfileError("log must be true or false", path=_where(key))
    if log and low <= 0:
        raise ProfileError(f"log = true needs low > 0 (low is {low})", path=_where(key))
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float))
                             or step <= 0 or (log and step)):
        raise ProfileError("step must be a number > 0 (and not with log)", path=_where(key))
    for bound in (low, high):
        apply_params(prof, {key: bound}, where=_where(key))
    if strategy == "grid" and step is None:
        raise ProfileError("strategy 'grid' needs a list of values, or a range with a step",
                           path=_where(key))
    return Dimension(key, low=low, high=high, log=log, step=step, is_int=is_int)


def _check_key(key: str) -> None:
    if key in HYPERPARAMETERS:
        return
    from tunedeck.core.profile.fields import field_specs

    known = [f"{f.section}.{f.key}" if f.section else f.key for f in field_specs()]
    if key in known:
        raise ProfileError(f"{key} is not a hyperparameter a search may vary (those are: "
                           f"{', '.join(HYPERPARAMETERS)})", path=_where(key))
    near = difflib.get_close_matches(key, list(HYPERPARAMETERS) + known, n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise ProfileError(f"unknown profile key {key!r}{hint}", path=_where(key))


def _is_int_field(key: str) -> bool:
    from tunedeck.core.profile.fields import field_specs

    section, name = key.split(".", 1)
    return any(f.section == section and f.key == name and f.kind == "int"
               for f in field_specs())


def _check_metric(prof: Any) -> None:
    allowed = TASK_METRICS.get(prof.task.type, ("eval_loss",))
    if prof.search.metric not in allowed:
        raise ProfileError(f"{prof.search.metric!r} is not a validation metric of "
                           f"{prof.task.type}: use one of {', '.join(allowed)}",
                           path="search.metric")


def _check_trials(prof: Any, dims: list[Dimension]) -> None:
    s = prof.search
    if s.strategy != "grid":
        if s.trials < 1:
            raise ProfileError(f"strategy {s.strategy!r} needs a number of trials: set "
                               "search.trials = N", path="search.trials")
        return
    points = grid_points(dims)
    if s.trials > points:
        raise ProfileError(f"the grid has {points} points and trials is {s.trials}: set "
                           f"search.trials = {points} (or 0: every point)", path="search.trials")
    if 0 < s.trials < points and not s.partial_grid:
        raise ProfileError(f"the grid has {points} points but trials is {s.trials}: set "
                           "search.trials = 0 to try them all, or search.partial_grid = true "
                           "to try a seeded subset", path="search.trials")


def grid_points(dims: list[Dimension]) -> int:
    return math.prod(len(d.grid_values()) for d in dims)


def planned_trials(prof: Any, dims: list[Dimension]) -> int:
    s = prof.search
    return s.trials or grid_points(dims)


def direction_of(prof: Any) -> str:
    s = prof.search
    if s.direction != "auto":
        return s.direction
    lower = s.metric in ("eval_loss", "perplexity") or s.metric.endswith("loss")
    return "minimize" if lower else "maximize"


def apply_params(prof: Any, params: dict[str, Any], where: str | None = None) -> Any:
    """``prof`` with the dotted keys set, validated by the schema (ProfileError naming
    ``where`` or the key when a value is refused)."""
    from tunedeck.core.profile.schema import Profile

    data = prof.model_dump()
    for key, value in params.items():
        section, name = key.split(".", 1)
        data[section][name] = value
    try:
        return Profile.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        shown = ", ".join(f"{k} = {v!r}" for k, v in params.items())
        raise ProfileError(f"{shown}: {err['msg']}",
                           path=where or _where(next(iter(params)))) from None
