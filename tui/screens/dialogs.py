"""Modal dialogs: confirm, ask for a path (with a file picker), show an error, show a diff."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, Static


class ConfirmDialog(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, detail: str = "", yes: str = "Yes", danger: bool = False):
        super().__init__(classes="dialog")
        self.question, self.detail, self.yes, self.danger = question, detail, yes, danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(Text(self.question, style="bold"), classes="dialog-title")
            if self.detail:
                yield Static(Text(self.detail), classes="dialog-detail")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error" if self.danger else "primary")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class _Picker(DirectoryTree):
    SUFFIXES: tuple[str, ...] = ()

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        out = []
        for p in paths:
            if p.name.startswith(".") or p.name == "__pycache__":
                continue
            if self.SUFFIXES and p.is_file() and p.suffix.lower() not in self.SUFFIXES and p.suffix:
                continue
            out.append(p)
        return out


class PromptDialog(ModalScreen["str | None"]):
    """Ask for a text (usually a path). With ``picker``, a directory tree helps choose it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = "", picker: bool = False,
                 suffixes: tuple[str, ...] = (), root: Path | None = None, dirs_ok: bool = False):
        super().__init__(classes="dialog")
        self.title_text, self.value, self.placeholder = title, value, placeholder
        self.picker, self.suffixes, self.root, self.dirs_ok = picker, suffixes, root, dirs_ok

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box wide" if self.picker else "dialog-box"):
            yield Label(Text(self.title_text, style="bold"), classes="dialog-title")
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")
            if self.picker:
                tree = _Picker(self.root or Path.cwd(), id="picker")
                tree.SUFFIXES = self.suffixes
                yield tree
            yield Static(Text("enter: OK · esc: cancel" + (" · tab: browse files" if self.picker else ""),
                              style="dim"), classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        inp = self.query_one(Input)
        inp.value = str(event.path)
        inp.focus()

    def on_directory_tree_directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        if self.dirs_ok:
            self.query_one(Input).value = str(event.path)

    def action_cancel(self) -> None:
        self.dismiss(None)


class MessageDialog(ModalScreen[None]):
    """An error (or information) panel: the message, never a traceback."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, title: str, message: "str | Text", error: bool = True):
        super().__init__(classes="dialog")
        self.title_text, self.message, self.error = title, message, error

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box wide error" if self.error else "dialog-box wide"):
            yield Label(Text(self.title_text, style="bold red" if self.error else "bold"),
                        classes="dialog-title")
            with VerticalScroll(classes="dialog-scroll"):
                yield Static(self.message if isinstance(self.message, Text) else Text(self.message),
                             id="message")
            yield Button("OK (enter)", id="ok", variant="primary")

    def on_mount(self) -> None:
        for b in self.query(Button):
            b.focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)


def diff_text(diff_lines: list[str]) -> Text:
    t = Text()
    for ln in diff_lines:
        style = ""
        if ln.startswith("+++") or ln.startswith("---"):
            style = "bold"
        elif ln.startswith("@@"):
            style = "cyan"
        elif ln.startswith("+"):
            style = "green"
        elif ln.startswith("-"):
            style = "red"
        t.append(ln.rstrip("\n") + "\n", style=style)
    return t


class DiffDialog(ModalScreen[bool]):
    """The change about to be written, as a unified diff against the file on disk."""

    BINDINGS = [
        Binding("y,ctrl+s", "answer(True)", "Write"),
        Binding("n,escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, title: str, diff_lines: list[str], confirm: bool = True):
        super().__init__(classes="dialog")
        self.title_text, self.diff_lines, self.confirm = title, diff_lines, confirm

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box wide tall"):
            yield Label(Text(self.title_text, style="bold"), classes="dialog-title")
            with VerticalScroll(classes="dialog-scroll", id="diff-scroll"):
                yield Static(diff_text(self.diff_lines) if self.diff_lines else Text("(no changes)"),
                             id="diff")
            with Horizontal(classes="dialog-buttons"):
                if self.confirm:
                    yield Button("Write (y)", id="yes", variant="primary")
                yield Button("Cancel (n)" if self.confirm else "Close (esc)", id="no")

    def on_mount(self) -> None:
        self.query_one("#diff-scroll").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes and self.confirm)
