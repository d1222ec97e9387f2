"""The profile editor: a form generated from the profile schema, a raw TOML view, a diff
before every write, and launch.

The form is built from ``tunedeck.core.profile.fields.field_specs()`` (one schema: no second list of
fields here). Each field is checked as it is typed (type and bounds, inline under the field),
and the whole profile is validated by the schema a moment later (cross-field rules show inline
where they name a field, or in the panel at the top).

The parts: ``editor_values`` (values <-> text), ``editor_fields`` (the form's widgets, built
from the schema), ``editor_save`` (diff, path rebasing, save and launch); this module holds the
screen: loading, the form and raw views and their validation.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import ContentSwitcher, Footer, Header, Input, Select, Static, Switch, TextArea

from tunedeck.core.errors import ProfileError
from tunedeck.core.profile.edit import update_text
from tunedeck.core.profile.fields import FieldSpec, field_specs
from tunedeck.core.profile.io import dumps, loads, validate
from tunedeck.tui.screens.base import BaseScreen
from tunedeck.tui.screens.dialogs import ConfirmDialog
from tunedeck.tui.screens.editor_fields import field_help, form_widgets, get_in, unknown_keys, wid
from tunedeck.tui.screens.editor_save import SavingMixin
from tunedeck.tui.screens.editor_values import MISSING, parse_field, value_text

__all__ = ["EditorScreen", "wid"]


class EditorScreen(SavingMixin, BaseScreen):
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
                yield from form_widgets(self.specs)
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

    def action_back(self) -> None:
        if not self.dirty():
            self.tapp.go_back()
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.tapp.go_back()

        self.app.push_screen(ConfirmDialog("Discard unsaved changes?", "The file on disk stays as it is.",
                                           yes="Discard", danger=True), done)
