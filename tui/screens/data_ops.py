"""One data operation (clean, split, convert, augment) from the dataset browser: a small form,
a preview (``tunedeck data OP --dry-run --json``: counts and the first changed or dropped rows),
then ``enter`` again writes the new dataset (the same command without ``--dry-run``), with its
progress from the CLI's ``progress DONE TOTAL`` lines. The original file is never written; the
browser then opens the new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Checkbox, DataTable, Footer, Header, Input, Label, ProgressBar, Static

from tunedeck.core.errors import UserError
from tunedeck.tui.screens.base import BaseScreen


@dataclass(frozen=True)
class OpField:
    flag: str  # the CLI option, without its dashes
    label: str
    default: str | bool = ""
    repeat: bool = False  # a comma-separated list becomes the option repeated

    @property
    def check(self) -> bool:
        return isinstance(self.default, bool)


OUT = OpField("out", "write to (empty: beside the input)")
OP_FIELDS: dict[str, list[OpField]] = {
    "clean": [OpField("lowercase", "lowercase the text", False),
              OpField("strip-urls", "remove URLs", False),
              OpField("strip-html", "remove HTML tags", False),
              OpField("strip-emails", "remove e-mail addresses", False),
              OpField("dedup", "duplicates: exact, normalized, none", "exact"),
              OpField("near-dup", "near-duplicates at similarity (e.g. 0.8)")],
    "split": [OpField("fractions", "train/validation/test", "80/10/10"),
              OpField("seed", "seed", "42"),
              OpField("group-by", "keep rows with the same value together")],
    "convert": [OpField("to", "format: csv tsv json jsonl parquet arrow", "jsonl"),
                OpField("rename", "rename: OLD=NEW, comma-separated", repeat=True),
                OpField("map", "build: NEW=A+B, comma-separated", repeat=True)],
    # swap and delete need no word list; synonym and insert need --synonyms (or WordNet's data).
    "augment": [OpField("ops", "operations: synonym insert swap delete", "swap,delete"),
                OpField("synonyms", "synonyms file (for synonym, insert)"),
                OpField("per-row", "new rows per row at most", "2"),
                OpField("seed", "seed", "42")],
}
# Which of the browser's column guesses each operation is told (so it works on what is shown).
COLUMN_FLAGS = {"clean": ("text", "label"), "split": ("text", "label"), "augment": ("text", "label"),
                "convert": ()}


def op_arguments(fields: list[OpField], values: dict[str, Any]) -> list[str]:
    """The form's values as CLI options (checked boxes as flags, empty texts left out)."""
    args: list[str] = []
    for f in fields:
        v = values.get(f.flag)
        if f.check:
            args += [f"--{f.flag}"] if v else []
        elif f.repeat:
            for item in (x.strip() for x in str(v or "").split(",")):
                args += [f"--{f.flag}", item] if item else []
        elif str(v or "").strip():
            args += [f"--{f.flag}", str(v).strip()]
    return args


def report_text(report: dict[str, Any]) -> Text:
    """The counts of a report (dry run or written), on a few lines."""
    t = Text()
    t.append(f"rows {report.get('rows_in', 0):,} → {report.get('rows_out', 0):,}", style="bold")
    dropped = report.get("dropped") or {}
    t.append(f" · dropped {sum(dropped.values()):,}", style="bold red" if dropped else "dim")
    if dropped:
        t.append(" (" + ", ".join(f"{k} {v:,}" for k, v in dropped.items()) + ")")
    t.append(f" · changed {report.get('changed', 0):,}", style="bold yellow" if report.get("changed") else "dim")
    if report.get("splits"):
        t.append("\nsplits: " + " · ".join(f"{k} {v:,}" for k, v in report["splits"].items()))
    leak = report.get("leakage") or {}
    if leak.get("shared_texts"):
        t.append(f"\nleakage: {leak['shared_texts']:,} texts in more than one split", style="bold red")
    conflicts = report.get("conflicts") or {}
    if conflicts.get("texts"):
        t.append(f"\nconflicting labels: {conflicts['texts']:,} texts ({conflicts.get('rows', 0):,} rows)",
                 style="yellow")
    return t


def _cells(values: dict[str, Any] | None, width: int = 60) -> str:
    if values is None:
        return "(dropped)"
    # Spaces kept as they are: a whitespace change must show in the preview.
    return " | ".join(f"{k}={str(v).replace(chr(10), '⏎')[:width]}" for k, v in values.items())


class DataOpScreen(BaseScreen):
    """The form, the preview and the write of one operation; dismissed with the written report."""

    DEFAULT_CSS = """
    #op-form { height: auto; padding: 0 1; }
    .op-row { height: 1; }
    .op-row Label { width: 40; }
    .op-row Input { width: 1fr; }
    #op-status { height: auto; padding: 0 1; }
    #op-progress-row { height: 1; padding: 0 1; }
    #op-preview { height: 1fr; }
    #op-detail { height: auto; max-height: 5; padding: 0 1; border-top: solid $panel; }
    """
    BINDINGS = [
        Binding("enter", "go", "Preview / write", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, path: Path, op: str, text_column: str | None = None,
                 label_column: str | None = None) -> None:
        super().__init__(id="data-op-screen")
        self.path, self.op = Path(path), op
        self.fields = [*OP_FIELDS[op], OUT]
        self.columns = {"text": text_column, "label": label_column}
        self.previewed: list[str] | None = None  # the options the preview on screen was made with
        self.report: dict[str, Any] | None = None
        self.running: str | None = None  # "preview" or "write" while the CLI runs
        self.proc: Any = None

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        with Vertical(id="op-form"):
            for f in self.fields:
                with Horizontal(classes="op-row"):
                    if f.check:
                        yield Checkbox(f.label, value=bool(f.default), id=f"op-{f.flag}", compact=True)
                    else:
                        yield Label(f.label)
                        yield Input(str(f.default), id=f"op-{f.flag}", compact=True)
        yield Static(id="op-status")
        with Horizontal(id="op-progress-row"):
            yield ProgressBar(total=1.0, show_eta=False, id="op-progress")
        table: DataTable[Any] = DataTable(id="op-preview", cursor_type="row", zebra_stripes=True)
        table.add_columns("row", "why", "before", "after")
        yield table
        yield Static(id="op-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"{self.op} · {self.path.name}"
        self.query_one("#op-progress-row").display = False
        self._status(Text.assemble(("enter", "bold"), ": preview (nothing is written) · ",
                                   ("enter", "bold"), " again: write · space: tick a box · esc: back"))
        self.query_one("#op-form").query("Checkbox, Input").first().focus()
        self.ready = True

    def _status(self, text: Text) -> None:
        self.query_one("#op-status", Static).update(text)

    def options(self) -> list[str]:
        values = {f.flag: self.query_one(f"#op-{f.flag}").value for f in self.fields}
        args = op_arguments(self.fields, values)
        for name in COLUMN_FLAGS[self.op]:
            if self.columns.get(name):
                args += [f"--{name}", str(self.columns[name])]
        return args

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _form_changed(self) -> None:
        if self.previewed is not None and self.running is None:
            self.previewed = None  # the preview no longer shows what enter would write
            self._status(Text("options changed: enter for a new preview", style="yellow"))

    def action_go(self) -> None:
        if self.running is not None:
            return
        args = self.options()
        self.running = "write" if args == self.previewed else "preview"
        self._status(Text(f"{'writing' if self.running == 'write' else 'previewing'} …", style="dim"))
        self._progress(0, 0)
        self.run_op(args, self.running == "preview")

    @work(thread=True, exclusive=True, group="data-op", exit_on_error=False)
    def run_op(self, args: list[str], dry_run: bool) -> None:
        def started(proc: Any) -> None:
            self.proc = proc

        def progress(done: int, total: int) -> None:
            self.app.call_from_thread(self._progress, done, total)

        try:
            report = self.services.data_op(self.op, self.path, args, dry_run, progress, started)
            self.app.call_from_thread(self._done, args, dry_run, report)
        except UserError as e:
            self.app.call_from_thread(self._failed, str(e))
        except Exception as e:  # a bug: said, logged, the app stays up
            import traceback

            self.tapp.log_bug(e, traceback.format_exc())
            self.app.call_from_thread(self._failed, f"{type(e).__name__}: {e} (a bug in tunedeck)")
        finally:
            self.proc = None

    def _progress(self, done: int, total: int) -> None:
        if self.is_mounted:
            self.query_one("#op-progress-row").display = True
            self.query_one("#op-progress", ProgressBar).update(total=total or None, progress=done)

    def _failed(self, message: str) -> None:
        self.running = None
        if self.is_mounted:
            self.query_one("#op-progress-row").display = False
            self._status(Text(message, style="bold red"))
            self.show_error(message, f"data {self.op}")

    def _done(self, args: list[str], dry_run: bool, report: dict[str, Any]) -> None:
        self.running = None
        if not self.is_mounted:
            return
        self.report = report
        self.query_one("#op-progress-row").display = False
        if not dry_run:
            self.dismiss(report)
            return
        self.previewed = args
        t = report_text(report)
        t.append("\nenter: write it · change an option for a new preview · esc: back", style="bold cyan")
        self._status(t)
        table = self.query_one("#op-preview", DataTable)
        table.clear()
        for p in report.get("preview") or []:
            table.add_row(Text(str(p.get("row")), justify="right"), Text(str(p.get("reason"))),
                          Text(_cells(p.get("before"))), Text(_cells(p.get("after")),
                                                              style="red" if p.get("after") is None else ""))

    @on(DataTable.RowHighlighted, "#op-preview")
    def _preview_row(self, event: DataTable.RowHighlighted) -> None:
        """The highlighted preview row in full (the table cuts long values at this width)."""
        rows = (self.report or {}).get("preview") or []
        if not 0 <= event.cursor_row < len(rows):
            return
        p = rows[event.cursor_row]
        self.query_one("#op-detail", Static).update(Text.assemble(
            (f"row {p.get('row')} · {p.get('reason')}\n", "bold"), ("before ", "dim"), _cells(p.get("before"), 400),
            ("\nafter  ", "dim"), (_cells(p.get("after"), 400), "red" if p.get("after") is None else "green")))

    def action_back(self) -> None:
        self.dismiss(None)

    def on_unmount(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()  # it writes to a temporary name: stopping leaves nothing behind


def written_path(report: dict[str, Any]) -> Path | None:
    """The file to open after an operation: the output, or a split folder's train file."""
    out = report.get("output")
    if not out:
        return None
    p = Path(out)
    if p.is_dir():
        trains = sorted(p.glob("train.*"))
        return trains[0] if trains else p
    return p


def open_data_op(browser: Any, op: str) -> None:
    """The browser's key for ``op``: the form; once written, the new file in the browser."""
    if browser.path is None or browser.opened is None:
        browser.notify("Wait for the file to finish loading.", severity="warning")
        return

    def done(report: dict[str, Any] | None) -> None:
        new = written_path(report or {})
        if new is None:
            return
        recipe = f"; recipe {report['recipe']}" if report and report.get("recipe") else ""
        browser.notify(f"{op}: wrote {report['output']} ({report.get('rows_out', 0):,} rows){recipe}",
                       timeout=10)
        browser.split = None
        browser.open_path(new)

    browser.app.push_screen(DataOpScreen(browser.path, op, browser.text_col, browser.label_col), done)
