"""The editor's form, built from the profile schema (``field_specs()``): one line per field
(label | input, then its help and error), section heads, and where each field's value lives in
the profile's TOML data."""

from __future__ import annotations

from typing import Any, Iterator

from rich.text import Text
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch

from tunedeck.core.profile.fields import FieldSpec, section_descriptions
from tunedeck.tui.screens.editor_values import MISSING


def wid(spec: FieldSpec) -> str:
    return "f-" + (spec.section or "top") + "--" + spec.key


def get_in(data: dict[str, Any], spec: FieldSpec) -> Any:
    node: Any = data.get(spec.section, MISSING) if spec.section else data
    if not isinstance(node, dict):
        return MISSING
    return node.get(spec.key, MISSING)


def unknown_keys(data: dict[str, Any], specs: list[FieldSpec]) -> list[str]:
    known_sections = {s.section for s in specs if s.section}
    known = {s.path for s in specs}
    out = []
    for k, v in data.items():
        if k in known_sections and isinstance(v, dict):
            out += [f"{k}.{kk}" for kk in v if f"{k}.{kk}" not in known]
        elif k not in known and k not in known_sections:
            out.append(k)
    return out


def _bound(x: float) -> str:
    """16777216 as 16,777,216 (not 1.67772e+07); fractions as written."""
    return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def field_help(s: FieldSpec) -> str:
    bits = [s.description]
    rng = []
    if s.minimum is not None:
        rng.append(f"{'>' if s.exclusive_min else '≥'} {_bound(s.minimum)}")
    if s.maximum is not None:
        rng.append(f"{'<' if s.exclusive_max else '≤'} {_bound(s.maximum)}")
    if rng:
        bits.append(f"[{', '.join(rng)}]")
    if s.choices:
        bits.append("One of: " + ", ".join(s.choices) + ".")
    return " ".join(b for b in bits if b)


def field_widgets(s: FieldSpec) -> list[Any]:
    """label | input on one line, then the help (and the error, when there is one).

    Few widgets per field on purpose: the form has ~40 fields and every widget costs styling
    and layout time on each change."""
    key = wid(s)[2:]
    label = Label(s.key + (" (opt.)" if s.optional else ""), classes="field-label", id="lab-" + key)
    w: Any
    if s.kind == "bool":
        w = Switch(False, id=wid(s), animate=False)
    elif s.kind == "choice":
        w = Select([(c, c) for c in s.choices], allow_blank=s.optional, id=wid(s), compact=True,
                   prompt="(default)" if s.optional else "Select")
    else:
        ph = {"list": "e.g. [0.8, 0.1, 0.1]",
              "table": '(empty: use model.name) e.g. {model_type = "bert", hidden_size = 32}'}.get(s.kind, "")
        if s.optional and not ph:
            ph = "(empty: default)"
        w = Input(id=wid(s), compact=True, placeholder=ph, select_on_focus=False)
    info = Static(Text(field_help(s), style="dim"), classes="field-info", id="info-" + key)
    return [Horizontal(label, w, classes="field-line"), info]


def form_widgets(specs: list[FieldSpec]) -> Iterator[Widget]:
    """The whole form: each section's head, then its fields, in the schema's order."""
    secdesc = section_descriptions()
    for section in dict.fromkeys(s.section for s in specs):
        head = Text(f"[{section}]" if section else "General", style="bold")
        if secdesc.get(section):
            head.append(f"  {secdesc[section]}", style="dim")
        yield Static(head, classes="section-head")
        for s in specs:
            if s.section == section:
                yield from field_widgets(s)
