"""The editor's values <-> text: what a field shows for a profile value, and what the typed
text means (type and bounds checked as it is typed, before the schema sees the profile)."""

from __future__ import annotations

import json
import math
import re
import tomllib
from typing import Any

from tunedeck.core.profile.fields import FieldSpec

MISSING = object()
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_inline(v: Any) -> str:
    """A TOML inline value (for list and table fields edited in one line)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return float_text(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_inline(x) for x in v) + "]"
    if isinstance(v, dict):
        items = [(k if _BARE_KEY.match(k) else json.dumps(k, ensure_ascii=False)) + " = " + toml_inline(x)
                 for k, x in v.items() if x is not None]
        return "{" + ", ".join(items) + "}"
    return json.dumps(str(v))


def float_text(v: float) -> str:
    return repr(float(v))


def value_text(spec: FieldSpec, v: Any) -> str:
    if v is None:
        return ""
    if spec.kind in ("list", "table"):
        return toml_inline(v)
    if spec.kind == "float" and isinstance(v, (int, float)) and not isinstance(v, bool):
        return float_text(v)
    return str(v)


def bound_error(spec: FieldSpec, x: float) -> str | None:
    if spec.minimum is not None:
        if (x <= spec.minimum) if spec.exclusive_min else (x < spec.minimum):
            return f"must be {'>' if spec.exclusive_min else '≥'} {spec.minimum:g}"
    if spec.maximum is not None:
        if (x >= spec.maximum) if spec.exclusive_max else (x > spec.maximum):
            return f"must be {'<' if spec.exclusive_max else '≤'} {spec.maximum:g}"
    return None


def parse_field(spec: FieldSpec, text: str) -> tuple[Any, str | None]:
    """(value, error) for what is typed in a field. Empty optional fields are None."""
    s = text.strip()
    if s == "":
        if spec.optional:
            return None, None
        if spec.kind == "str":
            return text, None
        return MISSING, "required"
    if spec.kind == "int":
        if s == "auto" and spec.default == "auto":  # distributed.processes: "auto" or a number
            return "auto", None
        try:
            x = int(s.replace("_", ""))
        except ValueError:
            return MISSING, "must be a whole number"
        return x, bound_error(spec, x)
    if spec.kind == "float":
        try:
            f = float(s.replace("_", ""))
        except ValueError:
            return MISSING, "must be a number, e.g. 0.1 or 5e-5"
        if not math.isfinite(f):
            return MISSING, "must be a finite number"
        return f, bound_error(spec, f)
    if spec.kind in ("list", "table"):
        try:
            v = tomllib.loads(f"v = {s}")["v"]
        except tomllib.TOMLDecodeError as e:
            example = "[0.8, 0.1, 0.1]" if spec.kind == "list" else '{model_type = "bert", hidden_size = 32}'
            return MISSING, f"not a TOML {'array' if spec.kind == 'list' else 'inline table'} ({e}); e.g. {example}"
        if spec.kind == "list" and not isinstance(v, list):
            return MISSING, "must be a list, e.g. [0.8, 0.1, 0.1]"
        if spec.kind == "table" and not isinstance(v, dict):
            return MISSING, 'must be an inline table, e.g. {model_type = "bert"}'
        return v, None
    return text, None
