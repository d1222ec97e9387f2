"""Comparing the runs marked on the runs screen: profile differences, metrics, curves.

Everything comes from ``tunedeck.core.eval.compare`` (torch-free, the same comparison as
``tunedeck compare``); this screen only lays it out. Runs are letters A, B, ... in one colour
each, the same colour in the legend, the tables and the overlaid curves.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any, Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.widgets import Footer, Header, Static

from tunedeck.core.eval.compare import Comparison, MetricTable, compare_runs
from tunedeck.core.runs.rundir import RunDir
from tunedeck.tui import fmt
from tunedeck.tui.screens.base import BaseScreen
from tunedeck.tui.widgets.plot import LinePlot, Series

RUN_COLORS = ("cyan", "magenta", "yellow", "green", "bright_red", "bright_blue")
BEST_STYLE = "bold green"
DIFF_STYLE = "bold yellow"
VALUE_WIDTH = 24  # a profile value longer than this (a path) is cut in the middle


def run_letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"R{i + 1}"


def run_color(i: int) -> str:
    return RUN_COLORS[i % len(RUN_COLORS)]


class CompareScreen(BaseScreen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("r", "reload", "Reload", tooltip="Read the runs again (a running run moves on)"),
        Binding("q", "app.quit", "Quit", tooltip="Leave tunedeck; runs keep going"),
    ]
    DEFAULT_CSS = """
    #compare-body { height: 1fr; padding: 0 1; }
    #compare-body > Static { height: auto; margin-bottom: 1; }
    #compare-plots { grid-size: 2; grid-gutter: 0 2; height: 12; margin-bottom: 1; }
    #compare-plots LinePlot { height: 100%; }
    """

    def __init__(self, run_paths: Sequence[Path]):
        super().__init__(id="compare-screen")
        self.run_paths = [Path(p) for p in run_paths]
        self.comparison: Comparison | None = None

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        with VerticalScroll(id="compare-body"):
            yield Static("Reading the runs …", id="compare-runs")
            yield Static(id="compare-profile")
            yield Static(id="compare-metrics")
            yield Grid(id="compare-plots")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"comparing {len(self.run_paths)} runs"
        self.load()

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def load(self) -> None:
        # Reading every event log can take a moment for long runs: off the UI thread.
        runs = [RunDir(p) for p in self.run_paths]
        try:
            result: Comparison | Exception = compare_runs(runs)
        except Exception as e:  # shown by the UI thread (a dialog), never raised
            result = e
        self.app.call_from_thread(self.show, result)

    def on_resize(self) -> None:
        if self.comparison is not None:  # metric blocks side by side only when they fit
            self.query_one("#compare-metrics", Static).update(
                metrics_tables(self.comparison, self.size.width))

    def action_reload(self) -> None:
        self.load()

    def action_back(self) -> None:
        self.tapp.go_back()

    def show(self, c: Comparison | Exception) -> None:
        if isinstance(c, Exception):
            self.query_one("#compare-runs", Static).update(
                Text("These runs could not be compared (see the message).", style="red"))
            self.ready = True
            self.safely(partial(_reraise, c), "Compare runs")
            return
        self.comparison = c
        self.query_one("#compare-runs", Static).update(legend_text(c))
        self.query_one("#compare-profile", Static).update(profile_table(c))
        self.query_one("#compare-metrics", Static).update(metrics_tables(c, self.size.width))
        plots = self.query_one("#compare-plots", Grid)
        plots.remove_children()
        plots.mount_all(curve_plots(c))
        plots.display = bool(c.curves)
        self.ready = True


def _reraise(e: Exception) -> None:
    raise e


def legend_text(c: Comparison) -> Text:
    t = Text()
    for i, r in enumerate(c.runs):
        if i:
            t.append("\n")
        t.append(f"{run_letter(i)} ━ ", style=f"bold {run_color(i)}")
        t.append(r.id, style="bold")
        t.append(f"  {fmt.STATE_ICON.get(r.state, '?')} {r.state}",
                 style=fmt.STATE_STYLE.get(r.state, ""))
        t.append(f"  {fmt.task_short(r.task)}", style="dim")
    return t


def _run_columns(table: Table, c: Comparison) -> None:
    for i in range(len(c.runs)):
        table.add_column(run_letter(i), justify="right", header_style=f"bold {run_color(i)}",
                         overflow="ellipsis", no_wrap=True)


def profile_table(c: Comparison) -> Table | Text:
    n = len(c.profile_diffs)
    title = f"Profile: {n} key{' differs' if n == 1 else 's differ'} ({c.equal_keys} equal)"
    if not n:
        return Text(title, style="bold")
    table = Table(title=title, title_justify="left", title_style="bold", box=None,
                  padding=(0, 1), show_edge=False)
    table.add_column("key", style="dim", no_wrap=True, overflow="ellipsis")
    _run_columns(table, c)
    for d in c.profile_diffs:
        table.add_row(d.key, *(Text(short_value(v), style=DIFF_STYLE if v is not None else "dim")
                               for v in d.values))
    return table


def short_value(v: Any) -> str:
    if v is None:
        return "(unset)"
    s = str(v).lower() if isinstance(v, bool) else str(v)
    if len(s) > VALUE_WIDTH:
        keep = VALUE_WIDTH - 1
        s = s[: keep // 3] + "…" + s[-(keep - keep // 3):]
    return s


def metrics_tables(c: Comparison, width: int) -> Table:
    """All metric blocks (final, best validation, named evaluations), as many side by side as
    the width holds without cutting a number."""
    # The widest metric name (+ its arrow), then "0.1234 ★" and cell padding a run: blocks
    # that do not fit side by side are stacked (cut numbers would hide which run is better).
    name_w = max([len(r.metric) + 2 for t in c.tables for r in t.rows] or [10])
    block_w = name_w + 2 + 10 * len(c.runs) + 3
    per_row = max(1, min(len(c.tables), (width - 2) // block_w))
    grid = Table.grid(padding=(0, 3))
    for _ in range(per_row):
        grid.add_column()
    blocks = [metric_block(t, c) for t in c.tables]
    for k in range(0, len(blocks), per_row):
        if k:
            grid.add_row(*([""] * per_row))
        row = blocks[k:k + per_row]
        grid.add_row(*row, *([""] * (per_row - len(row))))
    return grid


def metric_block(block: MetricTable, c: Comparison) -> Group:
    """The table, then where each run's numbers come from (one dim line a run)."""
    notes = Text("\n".join(f"{run_letter(i)}: {n}" for i, n in enumerate(block.notes)), style="dim")
    return Group(metric_table(block, c), notes)


def metric_table(block: MetricTable, c: Comparison) -> Table | Text:
    title = f"{block.title.capitalize()} metrics"
    if not block.rows:
        return Text(f"{title}: none yet", style="bold")
    table = Table(title=title, title_justify="left", title_style="bold", box=None,
                  padding=(0, 1), show_edge=False)
    table.add_column("metric", no_wrap=True)
    _run_columns(table, c)
    for row in block.rows:
        cells = [Text(_num(v) + (" ★" if i in row.best else "  "),
                      style=BEST_STYLE if i in row.best else "")
                 for i, v in enumerate(row.values)]
        table.add_row(Text(row.metric + (" ↓" if row.lower_is_better else " ↑")), *cells)
    return table


def _num(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.4f}" if math.isfinite(v) and abs(v) < 1e4 else f"{v:.4g}"


def curve_plots(c: Comparison) -> list[LinePlot]:
    """One plot per curve, every run's series overlaid in its colour."""
    plots = []
    for curve in c.curves:
        series = []
        for i, points in enumerate(curve.points):
            s = Series(run_letter(i), color=run_color(i))
            for step, value in points:
                s.add(step, value)
            series.append(s)
        plots.append(LinePlot(f"validation {curve.metric}", series, classes="compare-plot"))
    return plots
