"""Labelling rows by keyboard: the current row's text, large, the labels numbered, a progress
line. The session (``tunedeck.core.prepare.annotation``) writes ``NAME.labels.csv`` and its
state beside the file every few labels and on leaving; the file itself is never written.

Keys: 1-9 label (l: pick from the list when there are more), n/→ next, p/← previous, s skip,
u undo, f unlabelled rows only, w save now, q/escape back (saving).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Header, OptionList, Static

from tunedeck.core.errors import UserError
from tunedeck.tui.screens.base import BaseScreen
from tunedeck.tui.screens.dialogs import PromptDialog

_NUMBER_KEYS = [Binding(str(k), f"label({k})", f"label {k}", show=False) for k in range(1, 10)]


class LabelPicker(ModalScreen["str | None"]):
    """All labels in a list, for sessions with more than the nine number keys."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, labels: list[str]) -> None:
        super().__init__(classes="dialog")
        self.labels = labels

    def compose(self) -> ComposeResult:
        yield OptionList(*self.labels, id="label-picker", classes="dialog-box")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.labels[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)


class AnnotateScreen(BaseScreen):
    DEFAULT_CSS = """
    #an-progress { height: auto; padding: 0 1; background: $panel; }
    #an-text-box { height: 1fr; padding: 1 2; border: round $accent; }
    #an-text { text-style: bold; }
    #an-row { height: auto; max-height: 3; padding: 0 1; }
    #an-labels { height: auto; max-height: 5; padding: 0 1; }
    """
    BINDINGS = [
        *_NUMBER_KEYS,
        Binding("n", "move(1)", "Next"),
        Binding("right", "move(1)", "Next", show=False),
        Binding("p", "move(-1)", "Prev"),
        Binding("left", "move(-1)", "Prev", show=False),
        Binding("s", "skip", "Skip"),
        Binding("u", "undo", "Undo"),
        Binding("f", "filter", "Unlabelled", tooltip="Show only rows without a label (again: all rows)"),
        Binding("l", "pick", "Labels", tooltip="Choose the label from the list"),
        Binding("w", "save", "Save"),
        Binding("q", "back", "Back"),
        Binding("escape", "back", "Back", show=False),
    ]

    def __init__(self, path: Path, *, text_column: str | None = None, label_column: str | None = None,
                 labels: list[str] | None = None, sample: int | None = None, at_record: int | None = None,
                 encoding: str | None = None) -> None:
        super().__init__(id="annotate-screen")
        self.path = Path(path)
        self.options = {"text_column": text_column, "label_column": label_column, "labels": labels,
                        "sample": sample, "encoding": encoding}
        self.at_record = at_record
        self.session: Any = None  # tunedeck.core.prepare.annotation.Annotation
        self.message = ""

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        yield Static(id="an-progress")
        with VerticalScroll(id="an-text-box"):
            yield Static(id="an-text")
        yield Static(id="an-row")
        yield Static(id="an-labels")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"label · {self.path.name}"
        self.query_one("#an-progress", Static).update(Text(f"opening {self.path} …", style="dim"))
        self._open(self.options)

    # --- opening (a thread: a big file takes a moment to read) ------------------------------

    @work(thread=True, exclusive=True, group="annotate-open", exit_on_error=False)
    def _open(self, options: dict[str, Any]) -> None:
        from tunedeck.core.prepare.annotation import NoLabelsError, open_annotation

        try:
            session = open_annotation(self.path, **options)
            if self.at_record is not None:
                session.goto_record(self.at_record)
            self.app.call_from_thread(self._opened, session)
        except NoLabelsError as e:
            self.app.call_from_thread(self._ask_labels, str(e))
        except UserError as e:
            self.app.call_from_thread(self._failed, str(e))
        except Exception as e:  # a bug: said, logged, the app stays up
            import traceback

            self.tapp.log_bug(e, traceback.format_exc())
            self.app.call_from_thread(self._failed, f"{type(e).__name__}: {e} (a bug in tunedeck)")

    def _ask_labels(self, why: str) -> None:
        def done(text: str | None) -> None:
            labels = [t.strip() for t in (text or "").split(",") if t.strip()]
            if not labels:
                self._failed(why)
                return
            self._open({**self.options, "labels": labels})

        self.app.push_screen(PromptDialog("Labels to choose from, comma-separated (e.g. spam,ham)",
                                          placeholder="positive,negative"), done)

    def _failed(self, message: str) -> None:
        if self.is_mounted:
            self.query_one("#an-progress", Static).update(Text(message, style="bold red"))
            self.show_error(message, "Cannot label this file")
            self.ready = True

    def _opened(self, session: Any) -> None:
        if not self.is_mounted:
            return
        self.session = session
        self.message = "resumed where you stopped" if session.resumed else ""
        self.refresh_view()
        self.ready = True

    # --- drawing ---------------------------------------------------------------------------

    def refresh_view(self) -> None:
        s = self.session
        if s is None:
            return
        cur = s.current()
        self.query_one("#an-progress", Static).update(self._progress_text(s, cur))
        self.query_one("#an-text-box").border_title = s.text_column
        text = cur["text"]
        self.query_one("#an-text", Static).update(
            Text("(empty)", style="dim italic") if text in (None, "") else Text(str(text)))
        self.query_one("#an-text-box").scroll_home(animate=False)
        self.query_one("#an-row", Static).update(self._row_text(cur))
        self.query_one("#an-labels", Static).update(self._labels_text(s.labels, cur["label"]))

    def _progress_text(self, s: Any, cur: dict[str, Any]) -> Text:
        p = s.progress()
        t = Text()
        t.append(f"row {cur['position'] + 1:,}/{p['total']:,}", style="bold")
        t.append(f" ({cur['unit']} {cur['record']:,})", style="dim")
        t.append(f" · labelled {p['labelled']:,}/{p['total']:,}", style="bold green")
        t.append(f" · this session {p['this_session']:,}")
        if p["skipped"]:
            t.append(f" · {p['skipped']:,} skipped", style="dim")
        if s.unlabeled_only:
            t.append(" · unlabelled only", style="bold yellow")
        if s.unsaved:
            t.append(f" · {s.unsaved} unsaved", style="yellow")
        if self.message:
            t.append(f"\n{self.message}", style="italic cyan")
        return t

    def _row_text(self, cur: dict[str, Any]) -> Text:
        t = Text()
        t.append("label: ", style="bold")
        t.append(cur["label"] or "none", style="bold green" if cur["label"] else "dim")
        if cur["original"] is not None and cur["original"] != cur["label"]:
            t.append(f" (the file says {cur['original']})", style="yellow")
        if cur["skipped"]:
            t.append("  skipped", style="dim")
        for k, v in list(cur["others"].items())[:4]:
            t.append(f"   {k}: ", style="dim cyan")
            t.append(" ".join(str(v).split())[:30], style="dim")
        return t

    def _labels_text(self, labels: list[str], current: str | None) -> Text:
        t = Text()
        for i, lab in enumerate(labels, 1):
            key = str(i) if i <= 9 else "l"
            style = "bold reverse green" if lab == current else "bold"
            t.append(f" {key} ", style="reverse")
            t.append(f" {lab} ", style=style)
            t.append("  ")
        return t

    # --- keys ------------------------------------------------------------------------------

    def _act(self, fn: Any, what: str) -> Any:
        """Run a session change; errors are shown, the view redrawn either way."""
        if self.session is None:
            return None
        self.message = ""
        result = self.safely(fn, what)
        self.refresh_view()
        return result

    def action_label(self, k: int) -> None:
        s = self.session
        if s is None:
            return
        if not 1 <= k <= len(s.labels):
            self.notify(f"No label {k}: there are {len(s.labels)} (l: the list).", severity="warning")
            return
        self._label(lambda: s.label_number(k))

    def _label(self, fn: Any) -> None:
        """Label the current row; say so when there was no row after it to move on to."""
        before = self.session.position
        self._act(fn, "Label")
        if self.session.position == before:
            self.message = "that was the last row" + (" without a label" if self.session.unlabeled_only else "")
            self.refresh_view()

    def action_pick(self) -> None:
        if self.session is None:
            return

        def done(label: str | None) -> None:
            if label:
                self._label(lambda: self.session.set_label(label))

        self.app.push_screen(LabelPicker(self.session.labels), done)

    def action_move(self, direction: int) -> None:
        moved = self._act(lambda: self.session.next() if direction > 0 else self.session.prev(), "Move")
        if moved is False:
            self.message = "no more rows this way" + (" (unlabelled only: f for all)"
                                                      if self.session.unlabeled_only else "")
            self.refresh_view()

    def action_skip(self) -> None:
        if self._act(lambda: self.session.skip(), "Skip") is False:
            self.message = "that was the last row"
            self.refresh_view()

    def action_undo(self) -> None:
        if self._act(lambda: self.session.undo(), "Undo") is False:
            self.notify("Nothing to undo.", severity="warning")

    def action_filter(self) -> None:
        if self._act(lambda: self.session.toggle_unlabeled_only(), "Filter") is False:
            self.message = "every row has a label"
            self.refresh_view()

    def action_save(self) -> None:
        path = self._act(lambda: self.session.save(), "Save")
        if path is not None:
            self.message = f"saved to {path}"
            self.refresh_view()

    def save_if_needed(self) -> Path | None:
        """Save when something changed (or a saved session moved on); None when not saved."""
        s = self.session
        if s is None or not (s.unsaved or s.state_path.exists()):
            return None
        return self.safely(s.save, "Save")

    def action_back(self) -> None:
        path = self.save_if_needed()
        if path is not None:
            self.notify(f"Labels saved to {path}")
        self.app.pop_screen()

    def on_unmount(self) -> None:
        # Quitting the app from here (ctrl+q) loses no labels either.
        if self.session is not None and self.session.unsaved:
            try:
                self.session.save()
            except (OSError, UserError):
                pass


SAMPLE_ABOVE = 5000  # rows: above this the browser offers to label a sample


def annotate_from_browser(browser: Any) -> None:
    """The dataset browser's ``a``: label the open file (resuming a saved session), asking for a
    sample size first when the file is big and no session is saved."""
    from tunedeck.core.prepare.annotation import work_paths

    opened = browser.opened
    if opened is None or browser.path is None:
        browser.notify("Wait for the file to finish loading.", severity="warning")
        return
    if opened.split is not None and len(opened.splits) > 1:
        browser.notify("Label a data file, not a split of a saved dataset folder.", severity="warning")
        return
    options = {"text_column": browser.text_col, "label_column": browser.label_col,
               "encoding": browser.tapp.profile_columns().get("encoding")}
    n = opened.table.num_rows
    if n <= SAMPLE_ABOVE or work_paths(browser.path, opened.format)[1].exists():
        browser.app.push_screen(AnnotateScreen(browser.path, **options))
        return

    def done(text: str | None) -> None:
        if text is None:
            return
        try:
            sample = int(text) if text else None
        except ValueError:
            browser.show_error(f"{text!r} is not a number of rows", "Label a sample")
            return
        browser.app.push_screen(AnnotateScreen(browser.path, sample=sample, **options))

    browser.app.push_screen(PromptDialog(f"{n:,} rows: label a random sample of how many? "
                                         "(empty: all)", value="500"), done)


def _run_columns(run_path: Path) -> dict[str, Any]:
    """The text and label column names in the run's frozen profile (None where not set)."""
    import tomllib

    try:
        data = tomllib.loads((run_path / "profile.toml").read_text(encoding="utf-8")).get("data", {})
    except (OSError, ValueError):
        data = {}
    return {"text_column": data.get("text_column"), "label_column": data.get("label_column"),
            "encoding": data.get("encoding")}


def fix_label_from_errors(errors: Any) -> None:
    """Error analysis's ``l``: open the selected example's row of its data file for labelling."""
    from textual.widgets import DataTable

    table = errors.focused
    examples = errors.examples_by_table.get(table.id or "") if isinstance(table, DataTable) else None
    if errors.current is None or not examples or not 0 <= table.cursor_row < len(examples):
        errors.notify("Select an example first (the lists under Matrix, Sure but wrong, Unsure but "
                      "right).", severity="warning")
        return
    example = examples[table.cursor_row]
    source, record = example.get("source"), example.get("row")
    if not source or record is None:
        errors.show_error("This evaluation does not say which file and row the example came from; "
                          "evaluate the run again with this tunedeck version.", "Fix label")
        return
    labels = [str(x) for x in errors.current.label_names] or None
    errors.app.push_screen(AnnotateScreen(Path(source), labels=labels, at_record=int(record),
                                          **_run_columns(errors.run_path)))
