"""The profile editor: a form generated from the profile schema, a raw TOML view, a diff
before every write, and launch.

The form is built from ``tunedeck.core.profile.fields.field_specs()`` (one schema: no second list of
fields here). Each field is checked as it is typed (type and bounds, inline under the field),
and the whole profile is validated by the schema a moment later (cross-field rules show inline
where they name a field, or in the panel at the top).
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import (ContentSwitcher, Footer, Header, Input, Label, Select, Static,
                             Switch, TextArea)

from tunedeck.core.errors import ProfileError
from tunedeck.core.fsutil import atomic_write_text
from tunedeck.core.profile.fields import FieldSpec, field_specs, section_descriptions
from tunedeck.core.profile.edit import update_text
from tunedeck.core.profile.io import dumps, loads, validate
from tunedeck.tui.screens.base import BaseScreen
from tunedeck.tui.screens.dialogs import ConfirmDialog, DiffDialog, PromptDialog

MISSING = object()
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


# --- values <-> text ----------------------------------------------------------------------

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


class EditorScreen(BaseScreen):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True, tooltip="Write the profile (shows the diff first)"),
        Binding("f3", "save_as", "Save as", priority=True, tooltip="Write the profile to another file"),
        Binding("f4", "diff", "Diff", priority=True, tooltip="Show the changes against the file on disk"),
        Binding("f5", "launch", "Launch", priority=True, tooltip="Start a detached run from this profile and open its dashboard"),
        Binding("ctrl+t", "toggle_raw", "Raw/Form", priority=True, tooltip="Switch between the form and the raw TOML"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, path: Path | None = None, text: str | None = None, suggested: str | None = None):
        super().__init__(id="editor-screen")
        self.specs = field_specs()
        self.by_id = {wid(s): s for s in self.specs}
        self.path = Path(path) if path else None
        self.suggested = suggested
        self.initial_text = text
        self.disk_text: str | None = None
        self.mode = "form"
        self._populated: dict[str, Any] = {}
        self._raw_populated = ""
        self._opened_text = ""
        self.field_errors: dict[str, str] = {}  # typed-value errors, by field path
        self.schema_errors: dict[str, str] = {}  # errors the schema reports, by field path
        self.general_errors: list[str] = []
        # values in the file a widget cannot show (a bool that is not, an unknown choice)
        self.load_errors: dict[str, str] = {}
        self.valid_profile: Any = None
        self._timer: Any = None
        self._shown_errors: dict[str, str] = {}
        self._shown_general = ""
        self._shown_status: Text | None = None

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        yield Static(id="ed-status")
        yield Static(id="ed-errors")
        with ContentSwitcher(initial="ed-form", id="ed-switcher"):
            with VerticalScroll(id="ed-form"):
                secdesc = section_descriptions()
                current = None
                for section in dict.fromkeys(s.section for s in self.specs):
                    head = Text(f"[{section}]" if section else "General", style="bold")
                    if secdesc.get(section):
                        head.append(f"  {secdesc[section]}", style="dim")
                    yield Static(head, classes="section-head")
                    for s in self.specs:
                        if s.section == section:
                            yield from field_widgets(s)
            yield TextArea("", id="ed-raw", show_line_numbers=True, soft_wrap=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#ed-errors").display = False
        text = self.initial_text
        if self.path is not None:
            try:
                raw = self.path.read_bytes()
                text = raw.decode("utf-8-sig")
                self.disk_text = text
            except FileNotFoundError:
                self.notify(f"{self.path} does not exist yet; it is written on save.", severity="warning")
                text = None
            except (OSError, UnicodeDecodeError) as e:
                self.show_error(f"{self.path}: cannot be read ({e})", "Open profile")
                text = None
        if text is None:
            from tunedeck.core.profile.templates import new_profile

            text = dumps(new_profile("classification"))
        self._opened_text = text
        self.load_text(text)
        self._update_status()
        self.query(Input).first().focus()
        self.ready = True

    def load_text(self, text: str) -> None:
        """Show ``text``: the raw view holds it as is; the form shows its values."""
        raw = self.query_one("#ed-raw", TextArea)
        raw.load_text(text)
        self._raw_populated = text
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            self.general_errors = [f"not valid TOML: {e}; fix it in the raw view (ctrl+t)"]
            self._show_errors()
            self._switch("raw")
            return
        self.populate(data)
        extra = unknown_keys(data, self.specs)
        if extra:
            # The form cannot show them, and saving it would drop them (a typo'd key's value
            # lost): the file opens in the raw view with the loader's line and did-you-mean.
            self._switch("raw")
            self.validate_all()
            self.notify(f"Keys not in the schema: {', '.join(extra)}. Fix them here; ctrl+t opens "
                        "the form once the file is valid.", severity="warning", timeout=8)
            return
        self.validate_all()

    def populate(self, data: dict[str, Any]) -> None:
        self._populated = {}
        self.field_errors = {}
        self.load_errors = {}
        for s in self.specs:
            w = self.query_one("#" + wid(s))
            v = get_in(data, s)
            if v is MISSING:
                v = s.default
            if isinstance(w, Switch):
                w.value = bool(v) if isinstance(v, bool) else False
                if not isinstance(v, bool):
                    self.load_errors[s.path] = f"must be true or false (the file has {v!r})"
                self._populated[s.path] = w.value
            elif isinstance(w, Select):
                if v is not None and v not in s.choices:
                    # Keep a valid choice in the widget; say what the file had.
                    self.load_errors[s.path] = f"the file has {v!r}, not one of {', '.join(s.choices)}"
                    v = s.default
                if v is None or v not in s.choices:
                    if s.optional:
                        w.value = Select.NULL
                else:
                    w.value = v
                self._populated[s.path] = w.value
            elif isinstance(w, Input):
                text = v if isinstance(v, str) else value_text(s, v)
                w.value = text
                self._populated[s.path] = text
                _, err = parse_field(s, text)
                if err:
                    self.field_errors[s.path] = err

    # --- reading the form ------------------------------------------------------------------

    def widget_value(self, s: FieldSpec) -> Any:
        w = self.query_one("#" + wid(s))
        return w.value

    def form_changed(self) -> bool:
        return any(self.widget_value(s) != self._populated.get(s.path) for s in self.specs)

    def collect(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        self.field_errors = {}
        for s in self.specs:
            w = self.query_one("#" + wid(s))
            if isinstance(w, Switch):
                v: Any = w.value
            elif isinstance(w, Select):
                v = None if w.value is Select.NULL or w.value == Select.BLANK else w.value
                if v is None and not s.optional:
                    self.field_errors[s.path] = "choose one"
                    continue
            else:
                v, err = parse_field(s, w.value)
                if err:
                    self.field_errors[s.path] = err
                if v is MISSING:
                    continue
            if v is None:
                continue
            if s.section:
                data.setdefault(s.section, {})[s.key] = v
            else:
                data[s.key] = v
        return data

    def validate_all(self) -> Any:
        """Check every field, then the whole profile; show the errors; the Profile or None."""
        if self.mode == "raw":
            return self._validate_raw()
        data = self.collect()
        self.schema_errors, self.general_errors = {}, []
        self.valid_profile = None
        try:
            prof = validate(data, source="profile")
            if not self.field_errors and not self.load_errors:
                self.valid_profile = prof
        except ProfileError as e:
            for p in e.problems:
                key = p.where.split(" ", 1)[1] if " " in p.where else ""
                if key in {s.path for s in self.specs}:
                    self.schema_errors.setdefault(key, p.message)
                elif key:
                    self.general_errors.append(f"{key}: {p.message}")
                else:
                    self.general_errors.append(p.message)
        self._show_errors()
        self._update_status()
        if self.valid_profile is not None:
            self.tapp.set_profile_hint(self.valid_profile)
        return self.valid_profile

    def _validate_raw(self) -> Any:
        text = self.query_one("#ed-raw", TextArea).text
        self.field_errors, self.schema_errors, self.general_errors = {}, {}, []
        self.load_errors = {}
        self.valid_profile = None
        try:
            self.valid_profile = loads(text, source=str(self.path or "profile"))
        except ProfileError as e:
            self.general_errors = [str(p) for p in e.problems]
        self._show_errors()
        self._update_status()
        return self.valid_profile

    def _show_errors(self) -> None:
        # Touch only the messages that changed: re-laying out the whole form per key is slow.
        for s in self.specs:
            msg = (self.field_errors.get(s.path) or self.load_errors.get(s.path)
                   or self.schema_errors.get(s.path) or "")
            if self._shown_errors.get(s.path, "") == msg:
                continue
            self._shown_errors[s.path] = msg
            info = self.query_one("#info-" + wid(s)[2:], Static)
            text = Text(f"✗ {msg}\n", style="bold red") if msg else Text()
            text.append(field_help(s), style="dim")
            info.update(text)
            self.query_one("#lab-" + wid(s)[2:]).set_class(bool(msg), "invalid")
        general = "\n".join(f"✗ {m}" for m in self.general_errors)
        if general != self._shown_general:
            self._shown_general = general
            panel = self.query_one("#ed-errors", Static)
            panel.update(Text(general, style="bold red"))
            panel.display = bool(general)

    def problem_count(self) -> int:
        return len(set(self.field_errors) | set(self.schema_errors) | set(self.load_errors)) + len(self.general_errors)

    def current_text(self) -> str | None:
        """The text a save would write (None while the form has errors)."""
        if self.mode == "raw" or not self.form_changed():
            return self.query_one("#ed-raw", TextArea).text
        prof = self.valid_profile
        if prof is None:
            return None
        # Only the changed values' lines change: the file's comments and layout stay.
        return update_text(self._raw_populated or "", prof)

    def dirty(self) -> bool:
        text = self.current_text()
        if text is None:
            return True
        if self.disk_text is None:
            # Not on disk yet (a new or cloned profile): unsaved work only once it was edited.
            return text != self._opened_text
        return text != self.disk_text

    def _update_status(self) -> None:
        t = Text()
        t.append(str(self.path) if self.path else "(new profile: f3 saves it)", style="bold")
        if self.dirty():
            t.append(" · modified", style="yellow")
        n = self.problem_count()
        if n:
            t.append(f" · ✗ {n} problem{'s' if n != 1 else ''}", style="bold red")
        else:
            t.append(" · ✓ valid", style="green")
        t.append(f" · {'raw TOML' if self.mode == 'raw' else 'form'} view (ctrl+t)", style="dim")
        if t != self._shown_status:
            self._shown_status = t
            self.query_one("#ed-status", Static).update(t)
        self.sub_title = f"profile {self.path.name if self.path else '(new)'}"

    # --- events ----------------------------------------------------------------------------

    def _field_changed(self, widget_id: str | None) -> None:
        s = self.by_id.get(widget_id or "")
        if s is None:
            return
        w = self.query_one("#" + wid(s))
        if w.value != self._populated.get(s.path):
            self.load_errors.pop(s.path, None)  # the user chose a value
        if isinstance(w, Input):
            _, err = parse_field(s, w.value)
            if err:
                self.field_errors[s.path] = err
            else:
                self.field_errors.pop(s.path, None)
            self.schema_errors.pop(s.path, None)
            self._show_errors()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0.15, self.validate_all)

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        self._field_changed(event.input.id)

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        self._field_changed(event.select.id)

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        self._field_changed(event.switch.id)

    @on(TextArea.Changed)
    def _raw_changed(self) -> None:
        if self.mode == "raw":
            if self._timer is not None:
                self._timer.stop()
            self._timer = self.set_timer(0.3, self.validate_all)

    # --- actions ---------------------------------------------------------------------------

    def _switch(self, mode: str) -> None:
        self.mode = mode
        sw = self.query_one(ContentSwitcher)
        sw.current = "ed-raw" if mode == "raw" else "ed-form"
        if mode == "raw":
            self.query_one("#ed-raw", TextArea).focus()
        else:
            self.query(Input).first().focus()
        self._update_status()

    def action_toggle_raw(self) -> None:
        if self.mode == "form":
            if self.form_changed():
                prof = self.validate_all()
                if prof is None:
                    self.notify("Fix the problems in the form first (or undo them): the raw view shows "
                                "the profile the form makes.", severity="error")
                    return
                text = update_text(self._raw_populated or "", prof)  # comments kept
                self.query_one("#ed-raw", TextArea).load_text(text)
                self._raw_populated = text
                self.populate(tomllib.loads(text))
            self._switch("raw")
            self.validate_all()
        else:
            text = self.query_one("#ed-raw", TextArea).text
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                self.notify(f"Not valid TOML: {e}", severity="error")
                return
            extra = unknown_keys(data, self.specs)
            if extra:
                self.notify(f"Fix these first: {', '.join(extra)} are not profile keys, and the "
                            "form would drop them.", severity="error")
                return
            self._raw_populated = text
            self.mode = "form"
            self.populate(data)
            self._switch("form")
            self.validate_all()

    def _text_or_complain(self, doing: str = "Not saved") -> str | None:
        self.validate_all()
        text = self.current_text()
        if text is None or self.problem_count():
            self.notify(f"{doing}: {self.problem_count()} problem(s); see the red messages.", severity="error")
            return None
        try:
            loads(text, source=str(self.path or "profile"))
        except ProfileError as e:
            self.general_errors = [str(p) for p in e.problems]
            self._show_errors()
            self.notify(f"{doing}: the profile is invalid.", severity="error")
            return None
        return text

    def action_save(self) -> None:
        if self.path is None:
            self.action_save_as()
            return
        self.save_to(self.path)

    def action_save_as(self, then: Any = None) -> None:
        default = str(self.path) if self.path else (self.suggested or "profile.toml")

        def done(value: str | None) -> None:
            if value:
                self.save_to(Path(value).expanduser(), then)

        self.app.push_screen(PromptDialog("Save profile as", value=default, placeholder="path/to/profile.toml"), done)

    def _diff(self, path: Path, text: str) -> tuple[str | None, list[str]]:
        try:
            disk = path.read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            disk = None
        except (OSError, UnicodeDecodeError):
            disk = ""
        lines = list(difflib.unified_diff(
            (disk or "").splitlines(keepends=True), text.splitlines(keepends=True),
            fromfile=f"{path} (on disk)" if disk is not None else "(new file)",
            tofile=f"{path} (editor)"))
        return disk, lines

    def _rebased(self, text: str, path: Path) -> str:
        """Relative data and local model paths re-expressed for ``path``'s folder, so that a
        profile saved elsewhere still names the same files (they resolve against its folder)."""
        import os

        from tunedeck.core.profile.io import resolve_paths

        old_base = (self.path.parent if self.path else Path.cwd()).resolve()
        new_base = path.expanduser().parent.resolve()
        if old_base == new_base:
            return text
        try:
            prof = loads(text)
            where = resolve_paths(prof, old_base)  # the loader's own rule: profile folder, then cwd
        except ProfileError:
            return text
        changed = {}
        for section, keys in (("data", ("train", "validation", "test")), ("model", ("name", "tokenizer"))):
            upd = {}
            for key in keys:
                val, found = getattr(getattr(prof, section), key), getattr(getattr(where, section), key)
                if val and found != val and not Path(val).expanduser().is_absolute():
                    upd[key] = os.path.relpath(found, new_base)
            if upd:
                changed[section] = getattr(prof, section).model_copy(update=upd)
        if not changed:
            return text
        # The diff dialog shows the rewritten lines (a toast would sit over its buttons).
        return update_text(text, prof.model_copy(update=changed))

    def save_to(self, path: Path, then: Any = None, note: str = "") -> None:
        text = self._text_or_complain()
        if text is None:
            return
        text = self._rebased(text, path)
        disk, diff = self._diff(path, text)
        if disk == text:
            self.path, self.disk_text = path, disk
            self._after_save(text)
            self.notify(f"No changes: {path} already holds this profile.")
            if then:
                then()
            return

        def confirmed(yes: bool | None) -> None:
            if not yes:
                self.notify("Not saved.")
                return

            def write() -> bool:
                atomic_write_text(path, text)
                return True

            if self.safely(write, "Save profile"):
                self.path, self.disk_text = path, text
                self._after_save(text)
                self.notify(f"Saved {path}.")
                if then:
                    then()

        self.app.push_screen(DiffDialog(f"Write {path}?{note}", diff), confirmed)

    def _after_save(self, text: str) -> None:
        raw = self.query_one("#ed-raw", TextArea)
        if raw.text != text:
            raw.load_text(text)
        self._raw_populated = text
        if self.mode == "form":
            self.populate(tomllib.loads(text))
        self.validate_all()

    def action_diff(self) -> None:
        text = self.current_text()
        if text is None:
            self.notify("The form has problems; fix them to see the diff.", severity="error")
            return
        if self.path is None:
            self.app.push_screen(DiffDialog("Not saved yet: the whole file is new",
                                            self._diff(Path("profile.toml"), text)[1], confirm=False))
            return
        self.app.push_screen(DiffDialog(f"{self.path}: editor vs disk", self._diff(self.path, text)[1], confirm=False))

    def action_launch(self) -> None:
        text = self._text_or_complain("Not launched")
        if text is None:
            return
        if self.path is None or self.disk_text != text:
            # The save dialog says why (a toast would sit over its buttons).
            if self.path is None:
                self.action_save_as(then=self._launch)
            else:
                self.save_to(self.path, then=self._launch,
                             note=" (a launch runs the file on disk: save first)")
            return
        self._launch()

    def _launch(self) -> None:
        if self.path is not None:
            self.tapp.launch(self.path)

    def action_back(self) -> None:
        if not self.dirty():
            self.tapp.go_back()
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.tapp.go_back()

        self.app.push_screen(ConfirmDialog("Discard unsaved changes?", "The file on disk stays as it is.",
                                           yes="Discard", danger=True), done)
