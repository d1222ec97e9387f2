"""The dataset browser: a virtual table over a memory-mapped Arrow copy of the file, a detail
pane, statistics, and substring filtering. Loading, statistics and filtering run in threads."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Header, Input, ProgressBar, Static, TabbedContent, TabPane

from tunedeck.core.errors import UserError
from tunedeck.tui.screens.base import BaseScreen
from tunedeck.tui.screens.datasets_stats import render_stats
from tunedeck.tui.screens.dialogs import PromptDialog
from tunedeck.tui.widgets.arrow_table import ArrowTable


_ROLE_STYLE = {"system": "bold magenta", "user": "bold green", "assistant": "bold yellow"}


class DatasetsScreen(BaseScreen):
    BINDINGS = [
        Binding("slash", "filter", "Filter", tooltip="Show only rows containing a text (any column, any case)"),
        Binding("escape", "back", "Back"),
        Binding("i", "toggle_stats", "Stats/Rows",
                tooltip="Types, label balance, lengths, duplicates, split preview; again for the rows"),
        Binding("v", "tab('rows')", "Rows", show=False),
        Binding("o", "open", "Open", tooltip="Open another data file or folder"),
        Binding("t", "tokenizer", "Tokenizer", tooltip="Token lengths with a tokenizer.json or model folder"),
        Binding("x", "next_split", "Split", show=False),
        Binding("a", "annotate", "Label", tooltip="Label rows by keyboard (saves NAME.labels.csv beside the file)"),
        Binding("c", "data_op('clean')", "Clean", tooltip="Normalise text, drop empty rows and duplicates: preview, then write a new file"),
        Binding("S", "data_op('split')", "Split", tooltip="Write train/validation/test files (stratified, seeded)"),
        Binding("C", "data_op('convert')", "Convert", tooltip="Another format, renamed or mapped columns"),
        Binding("A", "data_op('augment')", "Augment", show=False, tooltip="More training rows by token operations"),
    ]

    def __init__(self, path: Path | None = None, split: str | None = None):
        super().__init__(id="datasets-screen")
        self.path = Path(path) if path else None
        self.split = split
        self.opened: Any = None  # tunedeck.tui.data_source.Opened
        self.source: Any = None  # tunedeck.tui.data_source.TableSource (complete table)
        self.stats: Any = None
        self.text_col: str | None = None
        self.label_col: str | None = None
        self.filter_text = ""
        self.load_ms: float | None = None
        self.first_rows_ms: float | None = None  # open → first rows on screen
        self._t0 = 0.0
        self._loading = False

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        with Vertical(id="ds-top"):
            yield Static(id="ds-info")
            with Horizontal(id="ds-progress-row"):
                yield ProgressBar(total=1.0, show_eta=False, show_percentage=False, id="ds-progress")
                yield Static(id="ds-progress-text")
            yield Input(placeholder="filter: rows containing … (enter: apply, esc: clear)", id="ds-filter",
                        compact=True)
        with TabbedContent(id="ds-tabs", initial="rows"):
            with TabPane("Rows", id="rows"):
                with Horizontal(id="ds-main"):
                    yield ArrowTable(id="ds-table")
                    with VerticalScroll(id="ds-detail-box"):
                        yield Static(id="ds-detail")
            with TabPane("Stats", id="stats"):
                with VerticalScroll(id="ds-stats-box"):
                    yield Static(id="ds-stats")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#ds-filter").display = False
        self.query_one("#ds-progress-row").display = False
        self._layout()
        if self.path is None:
            self.query_one("#ds-info", Static).update(Text("No dataset open. Press o to open a file or folder.", style="dim"))
            self.sub_title = "datasets"
        else:
            self.open_path(self.path)
        self.query_one(ArrowTable).focus()
        self.ready = True

    def on_resize(self) -> None:
        self._layout()

    def _layout(self) -> None:
        self.set_class(self.size.width < 110, "narrow")

    # --- loading ---------------------------------------------------------------------------

    def open_path(self, path: Path, split: str | None = None) -> None:
        self.path = Path(path)
        self.split = split if split is not None else self.split
        self.sub_title = f"{self.path}"
        self._close()
        self.stats = None
        self.filter_text = ""
        inp = self.query_one("#ds-filter", Input)  # a filter belongs to the file it was typed on
        inp.value, inp.display = "", False
        self.query_one(ArrowTable).set_source(None)
        self.query_one("#ds-stats", Static).update("")
        self.query_one("#ds-detail", Static).update("")
        self.query_one("#ds-info", Static).update(Text(f"opening {self.path} …", style="dim"))
        self._progress(0.0, "reading")
        self._t0 = time.perf_counter()
        self._loading = True
        self.first_rows_ms = None
        if self._quick_head():
            # Paint those rows first: importing pyarrow in the worker holds the GIL for a while.
            self.call_after_refresh(self.load_worker, self.path, self.split)
        else:
            self.load_worker(self.path, self.split)

    def _quick_head(self) -> bool:
        """Show the first rows at once (standard library), before pyarrow has even loaded."""
        from tunedeck.core.data.head import source_format
        from tunedeck.tui.quick_head import quick_head

        try:
            fmt = source_format(self.path)
        except UserError:
            return False  # the worker reports it
        head = quick_head(self.path, fmt, encoding=self.tapp.profile_columns().get("encoding"))
        if head is None:
            return False
        self.query_one(ArrowTable).set_source(head)
        self.first_rows_ms = (time.perf_counter() - self._t0) * 1000
        t = Text()
        t.append(self.path.name, style="bold")
        t.append(f" · {fmt}")
        t.append(f" · first {head.num_rows:,} rows (reading the rest…)\n", style="yellow")
        t.append("  ".join(head.column_names), style="dim")
        self.query_one("#ds-info", Static).update(t)
        return True

    @work(thread=True, exclusive=True, group="ds-load", exit_on_error=False)
    def load_worker(self, path: Path, split: str | None) -> None:
        from textual.worker import get_current_worker

        from tunedeck.tui.data_source import Loader

        worker = get_current_worker()
        try:
            encoding = self.tapp.profile_columns().get("encoding")  # the profile's data.encoding
            loader = Loader(path, self.tapp.scratch_dir(), split=split, encoding=encoding)
            loader.cancelled = lambda: worker.is_cancelled
            shown_head = False
            last = 0.0
            for frac in loader.run():
                if worker.is_cancelled:
                    return
                if not shown_head and loader.head is not None:
                    shown_head = True
                    self.app.call_from_thread(self._show_head, loader)
                now = time.perf_counter()
                if now - last > 0.1:
                    last = now
                    self.app.call_from_thread(self._progress, frac, "reading")
            if worker.is_cancelled:
                return
            import pyarrow as pa

            pa.default_memory_pool().release_unused()
            self.app.call_from_thread(self._show_full, loader.result)
        except UserError as e:
            self.app.call_from_thread(self._load_failed, str(e))
        except Exception as e:  # a bug or an exotic file: show it, do not crash
            self.app.call_from_thread(self._load_failed, f"{path}: {type(e).__name__}: {e}")

    def _show_head(self, loader: Any) -> None:
        from tunedeck.tui.data_source import TableSource

        if self.source is not None or not self.is_mounted or self.first_rows_ms is not None:
            return  # the full table or the quick head is already on screen
        self.first_rows_ms = (time.perf_counter() - self._t0) * 1000
        self.query_one(ArrowTable).set_source(TableSource(loader.head, complete=False))
        self._info(loader.format, loader.head, complete=False)

    def _show_full(self, opened: Any) -> None:
        from tunedeck.tui.data_source import TableSource, guess_columns

        if not self.is_mounted:
            opened.close()
            return
        self._loading = False
        self.load_ms = (time.perf_counter() - self._t0) * 1000
        if self.first_rows_ms is None:
            self.first_rows_ms = self.load_ms
        self.opened = opened
        self.source = TableSource(opened.table)
        prof = self.tapp.profile_columns()
        self.text_col, self.label_col = guess_columns(opened.table, prof.get("text_column"), prof.get("label_column"))
        table = self.query_one(ArrowTable)
        table.set_source(self.source, keep_cursor=True)
        self._info(opened.format, opened.table, complete=True)
        self.query_one("#ds-progress-row").display = False
        self.compute_stats_worker()

    def _load_failed(self, message: str) -> None:
        self._loading = False
        if not self.is_mounted:
            return
        self.query_one("#ds-progress-row").display = False
        self.query_one(ArrowTable).set_source(None)  # the quick head, if any, was not the file
        self.query_one("#ds-info", Static).update(Text(message, style="bold red"))
        self.show_error(message, "Cannot open data")

    def _progress(self, frac: float, what: str) -> None:
        if not self.is_mounted:
            return
        self.query_one("#ds-progress-row").display = True
        self.query_one("#ds-progress", ProgressBar).update(total=1.0, progress=frac)
        self.query_one("#ds-progress-text", Static).update(Text(f" {what} {frac:.0%}", style="dim"))

    def _info(self, fmt_name: str, table: Any, complete: bool) -> None:
        t = Text()
        t.append(self.path.name if self.path else "", style="bold")
        t.append(f" · {fmt_name}")
        if self.opened is not None and self.opened.split:
            t.append(f" · split {self.opened.split}")
            if len(self.opened.splits) > 1:
                t.append(f" of {', '.join(self.opened.splits)} (x: next)", style="dim")
        shown = self.query_one(ArrowTable).source
        n = shown.num_rows if shown is not None else table.num_rows
        if complete:
            t.append(f" · {table.num_rows:,} rows", style="bold")
        else:
            t.append(f" · first {table.num_rows:,} rows (loading…)", style="yellow")
        if self.filter_text:
            t.append(f" · {n:,} match ", style="bold yellow")
            t.append(repr(self.filter_text), style="yellow")
        t.append("\n")
        from tunedeck.tui.data_source import type_name as _type_name

        cols = [(f.name, _type_name(f.type)) for f in table.schema]
        t.append("  ".join(f"{name}: {typ}" for name, typ in cols), style="dim")
        if self.opened is not None and self.opened.notes:
            t.append("  (" + "; ".join(self.opened.notes) + ")", style="yellow")
        self.query_one("#ds-info", Static).update(t)

    # --- detail ----------------------------------------------------------------------------

    @on(ArrowTable.CursorMoved)
    def _cursor_moved(self, event: ArrowTable.CursorMoved) -> None:
        from tunedeck.tui.fmt import full_text

        src = event.table.source
        box = self.query_one("#ds-detail", Static)
        if src is None or src.num_rows == 0:
            box.update(Text("(no rows)", style="dim"))
            return
        from tunedeck.core.data.chat import conversation_turns  # torch-free, plain rendering

        row = src.row(event.row)
        t = Text()
        t.append(f"row {src.source_row(event.row) + 1:,}", style="bold")
        # Short values (labels, ids, numbers) on the first lines, "name: value"; long texts
        # after them, so a small pane never hides the label under a long message.
        chats = {k: c for k, c in ((k, conversation_turns(v)) for k, v in row.items()) if c}
        short = {k: v for k, v in row.items() if k != self.text_col and k not in chats
                 and len(full_text(v)) <= 40 and "\n" not in full_text(v)}
        for k, v in short.items():
            t.append("  ")
            t.append(f"{k}: ", style="bold cyan")
            t.append(full_text(v), style="dim italic" if v is None else "")
        t.append("\n")
        for k, v in row.items():
            if k in short:
                continue
            t.append(f"{k}", style="bold cyan")
            if k in chats:  # a conversation reads as its turns, not as JSON
                t.append(f"  ({len(chats[k])} turns)\n", style="dim")
                for role, content in chats[k]:
                    t.append(f"{role}: ", style=_ROLE_STYLE.get(role, "bold"))
                    t.append(content + "\n")
                continue
            if isinstance(v, str):
                t.append(f"  ({len(v):,} chars)", style="dim")
            t.append("\n")
            t.append(full_text(v) + "\n", style="dim italic" if v is None else "")
        box.update(t)

    # --- stats -----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="ds-stats", exit_on_error=False)
    def compute_stats_worker(self, tokenizer: str | None = None) -> None:
        from textual.worker import get_current_worker

        from tunedeck.tui.data_source import compute_stats, token_lengths

        worker = get_current_worker()
        opened = self.opened
        if opened is None:
            return
        try:
            def prog(f: float) -> None:
                self.app.call_from_thread(self._stats_progress, f)

            st = compute_stats(opened.table, self.text_col, self.label_col, prog, lambda: worker.is_cancelled)
            if tokenizer and self.text_col:
                st.tokens, st.token_hist, st.tokenizer = token_lengths(opened.table, self.text_col, tokenizer)
            self.app.call_from_thread(self._show_stats, st)
        except UserError as e:
            self.app.call_from_thread(self.show_error, str(e), "Statistics")
        except Exception as e:
            self.app.call_from_thread(self.show_error, f"{type(e).__name__}: {e}", "Statistics")

    def _stats_progress(self, f: float) -> None:
        if self.is_mounted:
            self.query_one("#ds-stats", Static).update(Text(f"computing statistics … {f:.0%}", style="dim"))

    def _show_stats(self, st: Any) -> None:
        if not self.is_mounted:
            return
        self.stats = st
        self.query_one("#ds-stats", Static).update(self.render_stats(st, max(40, self.size.width - 4)))

    def render_stats(self, st: Any, width: int) -> Text:
        return render_stats(st, width, self.filter_text, self.tapp.profile_columns().get("split"))

    # --- actions ---------------------------------------------------------------------------

    def action_toggle_stats(self) -> None:
        self.action_tab("rows" if self.query_one(TabbedContent).active == "stats" else "stats")

    def action_tab(self, tab: str) -> None:
        # Focus moves first: TabbedContent follows focus into a pane, so the order matters.
        if tab == "rows":
            self.query_one(ArrowTable).focus()
        else:
            self.query_one("#ds-stats-box").focus()
        self.query_one(TabbedContent).active = tab

    def action_filter(self) -> None:
        if self.source is None:
            self.notify("Wait for the file to finish loading.", severity="warning")
            return
        self.action_tab("rows")
        inp = self.query_one("#ds-filter", Input)
        inp.display = True
        inp.value = self.filter_text
        inp.focus()

    @on(Input.Submitted, "#ds-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        needle = event.value
        self.query_one(ArrowTable).focus()
        if not needle:
            self.clear_filter()
            return
        self.filter_text = needle
        self._progress(0.0, "filtering")
        self.filter_worker(needle)

    @work(thread=True, exclusive=True, group="ds-filter", exit_on_error=False)
    def filter_worker(self, needle: str) -> None:
        from textual.worker import get_current_worker

        from tunedeck.tui.data_source import filter_rows

        worker = get_current_worker()
        source = self.source
        if source is None:
            return
        try:
            def prog(f: float) -> None:
                self.app.call_from_thread(self._progress, f, "filtering")

            idx = filter_rows(source.table, needle, None, prog, lambda: worker.is_cancelled)
            if not worker.is_cancelled:
                self.app.call_from_thread(self._show_filtered, needle, idx)
        except Exception as e:
            self.app.call_from_thread(self.show_error, f"{type(e).__name__}: {e}", "Filter")

    def _show_filtered(self, needle: str, idx: Any) -> None:
        from tunedeck.tui.data_source import TableSource

        if not self.is_mounted or self.source is None or needle != self.filter_text:
            return
        self.query_one("#ds-progress-row").display = False
        self.query_one(ArrowTable).set_source(TableSource(self.source.table, idx))
        self._info(self.opened.format, self.opened.table, complete=True)
        if self.stats is not None:
            self._show_stats(self.stats)  # it says what the filter covers
        if len(idx) == 0:
            self.notify(f"No rows contain {needle!r}.", severity="warning")

    def clear_filter(self) -> None:
        inp = self.query_one("#ds-filter", Input)
        inp.display = False
        if self.filter_text and self.source is not None:
            self.filter_text = ""
            self.query_one(ArrowTable).set_source(self.source)
            self._info(self.opened.format, self.opened.table, complete=True)
            if self.stats is not None:
                self._show_stats(self.stats)
        self.query_one(ArrowTable).focus()

    def action_back(self) -> None:
        inp = self.query_one("#ds-filter", Input)
        if inp.display or self.filter_text:
            self.clear_filter()
            return
        self.tapp.go_back()

    def action_open(self) -> None:
        def done(path: str | None) -> None:
            if path:
                self.split = None
                self.open_path(Path(path))

        self.app.push_screen(PromptDialog("Browse which data file or folder?",
                                          value=str(self.path or ""), picker=True, dirs_ok=True), done)

    def action_next_split(self) -> None:
        if self.opened is None or len(self.opened.splits) < 2:
            return
        i = self.opened.splits.index(self.opened.split) if self.opened.split in self.opened.splits else -1
        self.open_path(self.path, self.opened.splits[(i + 1) % len(self.opened.splits)])

    def action_tokenizer(self) -> None:
        if self.opened is None:
            return

        def done(path: str | None) -> None:
            if path:
                self.action_tab("stats")
                self.compute_stats_worker(path)

        self.app.push_screen(PromptDialog("Tokenizer for token lengths (tokenizer.json or a model folder)",
                                          picker=True, dirs_ok=True), done)

    def action_data_op(self, op: str) -> None:
        from tunedeck.tui.screens.data_ops import open_data_op

        open_data_op(self, op)

    def action_annotate(self) -> None:
        from tunedeck.tui.screens.annotate import annotate_from_browser

        annotate_from_browser(self)

    def _close(self) -> None:
        if self.opened is not None:
            self.opened.close()
        self.opened = self.source = None

    def on_unmount(self) -> None:
        # Delete our Arrow copy now, not at exit: a few of them could fill /tmp.
        self.workers.cancel_group(self, "ds-load")
        self._close()

