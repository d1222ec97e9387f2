"""A flat, UI-agnostic description of every profile field, read off the schema.

The TUI editor builds its form from this, ``tunedeck profile docs`` writes docs/profile.md from
it: one schema, no second list to keep in sync.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from tunedeck.core.profile.schema import Profile


@dataclass(frozen=True)
class FieldSpec:
    section: str  # "" for top-level keys
    key: str
    kind: str  # "str" | "int" | "float" | "bool" | "choice" | "list" | "table"
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    optional: bool = False  # may be left empty (None)
    minimum: float | None = None
    maximum: float | None = None
    exclusive_min: bool = False
    exclusive_max: bool = False

    @property
    def path(self) -> str:
        return f"{self.section}.{self.key}" if self.section else self.key


def _kind(ann: Any) -> tuple[str, tuple[str, ...], bool]:
    optional = False
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        optional = len(args) != len(typing.get_args(ann))
        ann = args[0]
        origin = typing.get_origin(ann)
    if origin is Literal:
        return "choice", tuple(typing.get_args(ann)), optional
    if origin in (list,):
        return "list", (), optional
    if origin in (dict,):
        return "table", (), optional
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(ann, "str"), (), optional


def _bounds(meta: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in meta:
        for attr, key, excl in (("ge", "minimum", False), ("gt", "minimum", True),
                                ("le", "maximum", False), ("lt", "maximum", True)):
            v = getattr(m, attr, None)
            if v is not None:
                out[key] = v
                out["exclusive_min" if key == "minimum" else "exclusive_max"] = excl
    return out


def field_specs() -> list[FieldSpec]:
    specs: list[FieldSpec] = []
    for name, f in Profile.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            for key, sf in ann.model_fields.items():
                kind, choices, optional = _kind(sf.annotation)
                default = sf.default if sf.default is not PydanticUndefined else None
                specs.append(FieldSpec(name, key, kind, default, sf.description or "", choices,
                                       optional, **_bounds(sf.metadata)))
        else:
            kind, choices, optional = _kind(ann)
            specs.append(FieldSpec("", name, kind, f.default, f.description or "", choices,
                                   optional, **_bounds(f.metadata)))
    return specs


def section_descriptions() -> dict[str, str]:
    return {
        name: f.description or ""
        for name, f in Profile.model_fields.items()
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
    }


def markdown() -> str:
    """docs/profile.md, generated from the schema."""
    lines = [
        "# Profile reference",
        "",
        "Generated from `core/profile/schema.py` by `tunedeck profile docs`; do not edit by hand.",
        "",
        "A profile is a TOML file. Unknown keys are errors (with a did-you-mean). Override any key",
        "on the command line with `--set section.key=value` (the value is parsed as TOML).",
        "`tunedeck profile new` writes a complete profile whose starting values suit its task",
        "(e.g. `batch_size` 32 for classification); the defaults below apply to keys a profile",
        "leaves out.",
        "",
    ]
    current = None
    secdesc = section_descriptions()
    for s in field_specs():
        if s.section != current:
            current = s.section
            title = f"`[{s.section}]`" if s.section else "Top level"
            lines += ["", f"## {title}", ""]
            if s.section in secdesc:
                lines += [secdesc[s.section], ""]
            lines += ["| key | type | default | description |", "|---|---|---|---|"]
        typ = "one of " + ", ".join(f"`{c}`" for c in s.choices) if s.choices else s.kind
        if s.optional:
            typ += " (optional)"
        rng = ""
        if s.minimum is not None or s.maximum is not None:
            lo = "" if s.minimum is None else f"{'>' if s.exclusive_min else '≥'} {s.minimum:g}"
            hi = "" if s.maximum is None else f"{'<' if s.exclusive_max else '≤'} {s.maximum:g}"
            rng = " (" + ", ".join(x for x in (lo, hi) if x) + ")"
        default = "" if s.default is None else f"`{s.default!r}`".replace("'", '"')
        desc = s.description.replace("|", "\\|")
        lines.append(f"| `{s.key}` | {typ}{rng} | {default} | {desc} |")
    return "\n".join(lines) + "\n"
