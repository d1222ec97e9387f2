"""A search study: its trials (best first), the best so far, each trial's validation metric
over time (pruned trials marked), the parameter importances, and ``p`` to open the best
trial's profile in the editor.

The study lives in Optuna's storage, which only the CLI reads (``tunedeck search show STUDY
--json``, a subprocess through the app's services): Optuna and its dependencies stay out of the
TUI process. The curves come from each trial's events.jsonl (torch-free
``tunedeck.core.runs.events``), read incrementally. Refreshed every few seconds while the study
is active.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from tunedeck.core.errors import RunError
from tunedeck.core.fsutil import atomic_write_text
from tunedeck.core.runs.events import EventTail
from tunedeck.core.runs.protocol import ACTIVE_STATES, format_number
from tunedeck.tui import fmt
from tunedeck.tui.screens.base import BaseScreen
from tunedeck.tui.widgets.plot import LinePlot, Series

TRIAL_COLORS = ("cyan", "yellow", "green", "bright_blue", "bright_white", "blue")
PRUNED_COLOR = "magenta"
STATE_SHOWN = {"complete": "finished", "pruned": "pruned", "running": "running",
               "fail": "failed", "waiting": "queued"}
BEST_FILE = "best.toml"


def metric_of(metrics: dict[str, Any], metric: str) -> Any:
    """The study's metric in an eval event (``loss`` is logged as ``eval_loss``)."""
    for key in (metric, f"eval_{metric}", metric.removeprefix("eval_")):
        if key in metrics:
            return metrics[key]
    return None


def new_points(tail: EventTail, metric: str) -> list[tuple[float, float]]:
    """The validation evaluations written since the last read, as (step, value)."""
    out = []
    for ev in tail.read_new():
        d = ev.data
        if ev.type == "eval" and d.get("split", "validation") == "validation":
            v = metric_of(d.get("metrics") or {}, metric)
            if v is not None and d.get("step") is not None:
                out.append((float(d["step"]), v))
    return out


def short_params(params: dict[str, Any]) -> str:
    return "  ".join(f"{k.split('.')[-1]}={format_number(v, 3)}" for k, v in params.items())


def state_cell(state: str) -> Text:
    shown = STATE_SHOWN.get(state, state)
    return Text(f"{fmt.STATE_ICON.get(shown, '?')} {state}", style=fmt.STATE_STYLE.get(shown, ""))


def head_text(res: dict[str, Any]) -> Text:
    """Two lines: the study, its state and trial counts; the best trial so far."""
    trials = res.get("trials") or []
    counts: dict[str, int] = {}
    for r in trials:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    state = res.get("state", "?")
    t = Text(f"{res.get('study', '?')} ", style="bold")
    t.append(f"{fmt.STATE_ICON.get(state, '?')} {state}", style=fmt.STATE_STYLE.get(state, ""))
    t.append(f"  {len(trials)} trials: " + ", ".join(f"{n} {s}" for s, n in counts.items()),
             style="dim")
    t.append("\n")
    best = next((r for r in trials if r["state"] == "complete" and r["value"] is not None), None)
    metric = f"{res.get('metric')} ({res.get('direction', '?')})"
    if best is None:
        t.append(f"best {metric}: no complete trial yet", style="dim")
    else:
        t.append(f"best {metric}: ", style="dim")
        t.append(f"{format_number(best['value'])}", style="bold green")
        t.append(f"  trial #{best['number']}  {short_params(best['params'])}")
    return t


def importance_text(imp: dict[str, float]) -> Text:
    if not imp:
        return Text("importance: (needs two complete trials that differ)", style="dim")
    t = Text("importance: ", style="dim")
    for k, v in sorted(imp.items(), key=lambda kv: -kv[1]):
        t.append(f"{k.split('.')[-1]} ", style="bold")
        t.append(f"{v:.2f}  ")
    return t


class StudyScreen(BaseScreen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("p", "best_profile", "Best profile",
                tooltip="Write the best trial's profile to STUDY/best.toml and open it"),
        Binding("r", "reload", "Reload", tooltip="Read the study again"),
        Binding("q", "app.quit", "Quit", tooltip="Leave tunedeck; the study keeps going"),
    ]
    DEFAULT_CSS = """
    #study-head { height: 2; padding: 0 1; }
    #study-trials { height: 1fr; min-height: 4; }
    #study-plot { height: 9; padding: 0 1; }
    #study-importance { height: 1; padding: 0 1; }
    """

    def __init__(self, group_path: Path):
        super().__init__(id="study-screen")
        self.group_path = Path(group_path)
        self.result: dict[str, Any] | None = None
        self.tails: dict[int, EventTail] = {}  # read by the (exclusive) poll worker only
        self.series: dict[int, Series] = {}
        self.plot = LinePlot("validation", [], id="study-plot")

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        yield Static("Reading the study …", id="study-head")
        yield DataTable(id="study-trials", cursor_type="row", zebra_stripes=True)
        yield self.plot
        yield Static(id="study-importance")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = self.group_path.name
        table = self.query_one("#study-trials", DataTable)
        table.add_columns("#", "state", "value", "time", "params")
        self.poll_every(self.services.study_poll_s, self._tick)
        self.load()

    def _tick(self) -> None:
        if self.result is None or self.result.get("state") in ACTIVE_STATES:
            self.load()

    def catch_up(self) -> None:
        self._tick()

    def action_reload(self) -> None:
        self.load()

    def action_back(self) -> None:
        self.tapp.go_back()

    @work(thread=True, exclusive=True, group="study-poll", exit_on_error=False)
    def load(self) -> None:
        """The study (a CLI subprocess) and the trials' new evaluations, off the UI thread."""
        try:
            res: dict[str, Any] | Exception = self.services.search_show(self.group_path)
        except Exception as e:  # shown by the UI thread, never raised here
            res = e
        points: dict[int, list[tuple[float, float]]] = {}
        if isinstance(res, dict):
            for r in res.get("trials") or []:
                if not r.get("run_dir"):
                    continue
                tail = self.tails.setdefault(
                    r["number"], EventTail(Path(r["run_dir"]) / "events.jsonl"))
                points[r["number"]] = new_points(tail, str(res.get("metric") or "loss"))
        self.app.call_from_thread(self.show, res, points)

    def show(self, res: dict[str, Any] | Exception,
             points: dict[int, list[tuple[float, float]]]) -> None:
        if isinstance(res, Exception):
            self.query_one("#study-head", Static).update(
                Text(f"The study could not be read: {res}", style="red"))
            self.ready = True
            return
        self.result = res
        self.query_one("#study-head", Static).update(head_text(res))
        self._fill_table(res.get("trials") or [])
        self._add_points(res.get("trials") or [], points, str(res.get("metric") or ""))
        self.query_one("#study-importance", Static).update(
            importance_text(res.get("importances") or {}))
        self.ready = True

    def _fill_table(self, trials: list[dict[str, Any]]) -> None:
        table = self.query_one("#study-trials", DataTable)
        at = table.cursor_row
        table.clear()
        for r in trials:  # best first, as `search show` orders them
            table.add_row(Text(str(r["number"]), justify="right"), state_cell(r["state"]),
                          Text(format_number(r["value"]), justify="right"),
                          fmt.duration(r.get("duration_s")), short_params(r["params"]),
                          key=str(r["number"]))
        if trials:
            table.move_cursor(row=min(at, len(trials) - 1), animate=False)

    def _add_points(self, trials: list[dict[str, Any]],
                    points: dict[int, list[tuple[float, float]]], metric: str) -> None:
        for r in sorted(trials, key=lambda r: r["number"]):
            n = r["number"]
            s = self.series.get(n)
            if s is None:
                s = self.series[n] = Series(f"#{n}", TRIAL_COLORS[n % len(TRIAL_COLORS)])
                self.plot.series.append(s)
            if r["state"] == "pruned" and s.color != PRUNED_COLOR:
                s.name, s.color = f"#{n}✂", PRUNED_COLOR
                s.version += 1
            for x, y in points.get(n, []):
                s.add(x, y)
        self.plot.title = f"validation {metric} by trial"
        pruned = sum(r["state"] == "pruned" for r in trials)
        self.plot.update_plot(note=f"✂ {pruned} pruned" if pruned else "")

    def action_best_profile(self) -> None:
        self.notify("Writing the best trial's profile …")
        self._write_best()

    @work(thread=True, exclusive=True, group="study-best", exit_on_error=False)
    def _write_best(self) -> None:
        try:
            best = self.services.search_best(self.group_path)
            path = self.group_path / BEST_FILE
            atomic_write_text(path, str(best["profile"]))
            out: Path | Exception = path
        except (RunError, OSError, KeyError) as e:
            out = e
        self.app.call_from_thread(self._best_written, out)

    def _best_written(self, out: Path | Exception) -> None:
        if isinstance(out, Exception):
            self.safely(lambda: _reraise(out), "Best profile")
            return
        self.tapp.open_editor(path=out)


def _reraise(e: Exception) -> None:
    raise e
