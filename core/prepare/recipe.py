"""The recipe written beside every prepared dataset: ``<OUT>.recipe.toml``.

It says how to make the output again from the originals: the operation, its options and seed,
each input's path and sha256 (so a changed original is noticed), the row counts before and
after, what was dropped and why, and the tunedeck version. A profile's ``[[data.prepare]]`` step
takes the same ``op`` and options, so a recipe's ``[options]`` can be pasted into a profile.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import tomli_w

from tunedeck.core.prepare.report import OpReport
from tunedeck.core.prepare.streaming import temp_beside

_CHUNK = 1 << 20


def recipe_path(out: Path) -> Path:
    return out.with_name(out.name + ".recipe.toml")


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, sorted)."""
    h = hashlib.sha256()
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with f.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("tunedeck")
    except Exception:  # noqa: BLE001 - a source checkout without metadata
        return "unknown"


def _toml_safe(value: Any) -> Any:
    """TOML has no null: None values are left out, tuples become lists."""
    if isinstance(value, dict):
        return {str(k): _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_toml_safe(v) for v in value if v is not None]
    return value


def recipe_dict(report: OpReport, options: dict[str, Any], inputs: list[Path],
                seed: int | None = None) -> dict[str, Any]:
    return _toml_safe({
        "tunedeck_version": _version(),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "op": report.op,
        "seed": seed,
        "output": report.output,
        "rows_in": report.rows_in,
        "rows_out": report.rows_out,
        "changed": report.changed,
        "dropped": report.dropped,
        "options": options,
        "inputs": [{"path": str(p), "sha256": sha256_of(p)} for p in inputs],
    })


def write_recipe(out: Path, report: OpReport, options: dict[str, Any], inputs: list[Path],
                 seed: int | None = None) -> Path:
    """Write ``<OUT>.recipe.toml`` (temp name, then rename) and note it in the report."""
    path = recipe_path(out)
    tmp = temp_beside(path)
    tmp.write_text(tomli_w.dumps(recipe_dict(report, options, inputs, seed)), encoding="utf-8")
    os.replace(tmp, path)
    report.recipe = str(path)
    return path


def read_recipe(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)
