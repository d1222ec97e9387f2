"""The editor's save side: every write shows its diff first, relative data and model paths are
rebased when a profile is saved to another folder, and launch saves first (a run starts from the
file on disk).

``disk_diff`` and ``rebase_paths`` are plain functions; ``SavingMixin`` holds the editor
screen's save, save-as, diff and launch actions.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any

from textual.widgets import TextArea

from tunedeck.core.errors import ProfileError
from tunedeck.core.fsutil import atomic_write_text
from tunedeck.core.profile.edit import update_text
from tunedeck.core.profile.io import loads
from tunedeck.tui.screens.dialogs import DiffDialog, PromptDialog

# Relative paths a profile names, by section: they resolve against the profile's folder.
PATH_KEYS = (("data", ("train", "validation", "test")), ("model", ("name", "tokenizer")))


def disk_diff(path: Path, text: str) -> tuple[str | None, list[str]]:
    """(the file's text or None when there is no file, a unified diff from it to ``text``)."""
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


def rebase_paths(text: str, old_base: Path, new_base: Path) -> str:
    """Relative data and local model paths re-expressed for ``new_base`` (the folder the
    profile is saved to), so that a profile saved elsewhere still names the same files."""
    from tunedeck.core.profile.io import resolve_paths

    if old_base == new_base:
        return text
    try:
        prof = loads(text)
        where = resolve_paths(prof, old_base)  # the loader's own rule: profile folder, then cwd
    except ProfileError:
        return text
    changed = {}
    for section, keys in PATH_KEYS:
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


class SavingMixin:
    """Save, save as, diff and launch, for ``EditorScreen``: it provides ``path``, ``suggested``,
    ``disk_text``, ``mode``, ``general_errors``, ``_raw_populated``, ``populate``,
    ``validate_all``, ``current_text``, ``problem_count``, ``_show_errors`` and the screen's
    ``app``, ``tapp``, ``notify``, ``query_one`` and ``safely``."""

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
        return disk_diff(path, text)

    def _rebased(self, text: str, path: Path) -> str:
        old_base = (self.path.parent if self.path else Path.cwd()).resolve()
        return rebase_paths(text, old_base, path.expanduser().parent.resolve())

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
