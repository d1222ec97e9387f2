"""The live dashboard of one run: progress, plots, machine stats and the newest events.

Everything comes from the run directory: ``events.jsonl`` is tailed (the whole history is
replayed on attach), ``status.json`` and the run lock give the honest state. Nothing here talks
to the worker except through control files (``RunDir.request``) and, for a stop,
``tunedeck.core.runs.lifecycle.stop_run`` (control file + SIGTERM, as ``tunedeck stop``).

The parts: ``dashboard_view`` (the state built from events, and the event log's lines),
``dashboard_text`` (the lines drawn from it); this module holds the screen: polling, redraw
pacing and the actions.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.widgets import Footer, Header, RichLog, Static

from tunedeck.core.runs.events import EventTail
from tunedeck.core.runs.protocol import ACTIVE_STATES, FINAL_STATES, can_resume, changes_state
from tunedeck.core.runs.rundir import RunDir
from tunedeck.tui.screens.base import BaseScreen
from tunedeck.tui.screens.dashboard_text import (BAR_WIDTH, NARROW_BAR_WIDTH, empty_events_note,
                                                 gpu_entry, metric_note, metric_plot_title,
                                                 progress_line, stale_banner, stats_line,
                                                 status_gpus, sys_line, title_text,
                                                 worker_log_lines)
from tunedeck.tui.screens.dashboard_view import RunView
from tunedeck.tui.screens.dialogs import ConfirmDialog
from tunedeck.tui.widgets.plot import LinePlot
from tunedeck.tui.widgets.text_line import TextLine

__all__ = ["DashboardScreen", "RunView"]

REPLAY_IN_THREAD_BYTES = 4 << 20
MIN_REDRAW_S = 0.75  # with polls every 0.25 s: on screen within 1 s


class DashboardScreen(BaseScreen):
    BINDINGS = [
        Binding("k", "checkpoint", "Checkpoint", tooltip="Save a checkpoint now"),
        Binding("e", "evaluate", "Evaluate", tooltip="Evaluate on the validation split now"),
        Binding("s", "stop", "Stop", tooltip="Checkpoint and stop this run (asks first)"),
        Binding("r", "resume", "Resume", tooltip="Resume this run from its newest checkpoint"),
        Binding("w", "toggle_log", "worker.log", tooltip="Switch the lower panel between events and worker.log"),
        Binding("m", "results", "Results", tooltip="Final metrics, per-class scores, confusion matrix"),
        Binding("g", "gpus", "GPUs", tooltip="Memory, utilisation and temperature of each GPU"),
        Binding("escape", "back", "Back"),
        Binding("q", "app.quit", "Quit", tooltip="Leave tunedeck; the run keeps going"),
    ]

    def __init__(self, run_path: Path):
        super().__init__(id="dashboard-screen")
        self.run = RunDir(Path(run_path))
        self.view = RunView()
        self.tail = EventTail(self.run.events_path)
        self.state = "starting"
        self.reason = ""
        self.raw_state: str | None = None
        self.stale = False
        self.status: dict[str, Any] = {}
        self.show_worker_log = False
        self._replaying = False
        self._log_ready = False
        self._sys: dict[str, Any] = {}
        self._pending_lines: list[Text] = []
        self._last_redraw = 0.0
        self._redraw_timer: Any = None
        self._bindings_for: tuple[str, bool, bool] | None = None
        self._shown: dict[str, Any] = {}
        self._log_size = -1

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        yield Static(id="stale-banner")
        with Vertical(id="dash-top"):
            yield Static(id="dash-title")
            # The bar is drawn into the text line: Textual's ProgressBar runs its own timer and
            # repaints every second (and an indeterminate one animates forever).
            yield TextLine(id="dash-progress-text")
            yield TextLine(id="dash-stats")
            yield TextLine(id="dash-sys")
        with Grid(id="dash-plots"):
            yield LinePlot("loss", [self.view.loss, self.view.eval_loss], id="plot-loss")
            yield LinePlot("eval", [self.view.metric], id="plot-metric")
            yield LinePlot("learning rate", [self.view.lr], id="plot-lr")
            yield LinePlot("tokens/s", [self.view.tps], id="plot-tps")
        yield RichLog(id="dash-log", max_lines=500, wrap=True, markup=False, auto_scroll=True)
        yield Footer(compact=True)

    def on_resize(self) -> None:
        self.set_class(self.size.width < 110, "narrow")
        self.redraw_sys()  # how many GPU readings fit on the line depends on the width

    def on_mount(self) -> None:
        self.sub_title = self.run.id
        self.query_one("#stale-banner").display = False
        self.query_one(RichLog).border_title = "events"
        try:
            size = self.run.events_path.stat().st_size
        except OSError:
            size = 0
        if size > REPLAY_IN_THREAD_BYTES:
            self._replaying = True
            self.replay_in_thread()
        else:
            self.poll_events()
        self.poll_status()
        self.poll_sys()
        self.poll_every(self.services.events_poll_s, self.poll_events)
        self.poll_every(1.0, self.poll_status)
        self.poll_every(self.services.sys_poll_s, self.poll_sys)
        self.redraw()
        # Fill the log once it has a size, so that it opens scrolled to the newest line.
        self.call_after_refresh(self._fill_log)

    def _fill_log(self) -> None:
        log = self.query_one(RichLog)
        log.clear()
        if self.show_worker_log:
            self._show_worker_log(force=True)
        else:
            for line in self.view.lines:
                log.write(line)
            if not self.view.lines and self.run.events_path.is_file() \
                    and self.run.events_path.stat().st_size == 0 and self.state not in ACTIVE_STATES:
                log.write(empty_events_note(self.run.metrics_path.is_file()))
            self._pending_lines = []
        log.scroll_end(animate=False, immediate=True)
        self._log_ready = True
        self.ready = True

    # --- polling ---------------------------------------------------------------------------

    def catch_up(self) -> None:
        if self.ready:
            self.poll_events()
            self.poll_status()

    @work(thread=True, exclusive=True, group="replay", exit_on_error=False)
    def replay_in_thread(self) -> None:
        events = self.tail.read_new()
        view = RunView()
        for ev in events:
            view.apply(ev)
        self.app.call_from_thread(self._replayed, view)

    def _replayed(self, view: RunView) -> None:
        # Swap in the replayed view; the plots must point at its series.
        self.view = view
        self.query_one("#plot-loss", LinePlot).series = [view.loss, view.eval_loss]
        self.query_one("#plot-metric", LinePlot).series = [view.metric]
        self.query_one("#plot-lr", LinePlot).series = [view.lr]
        self.query_one("#plot-tps", LinePlot).series = [view.tps]
        self._replaying = False
        self._fill_log()
        self.redraw()

    def poll_events(self) -> None:
        if self._replaying:
            return
        try:
            events = self.tail.read_new()
        except OSError as e:
            self.notify(f"cannot read {self.run.events_path}: {e}", severity="error")
            return
        if not events:
            return
        ended = False
        for ev in events:
            line = self.view.apply(ev)
            if line is not None:
                self._pending_lines.append(line)
            ended = ended or changes_state(ev.type)
        if ended:
            self.poll_status()
        self._schedule_redraw()

    def _schedule_redraw(self) -> None:
        """Redraw at most every MIN_REDRAW_S: each repaint costs CPU the worker could use, and a
        run logging every step writes dozens of events a second."""
        wait = MIN_REDRAW_S - (time.monotonic() - self._last_redraw)
        if wait <= 0:
            self._flush()
        elif self._redraw_timer is None:
            self._redraw_timer = self.set_timer(wait, self._flush)

    def _flush(self) -> None:
        self._redraw_timer = None
        self._last_redraw = time.monotonic()
        with self.app.batch_update():  # one frame for the lot, not one per widget
            if self._pending_lines and self._log_ready and not self.show_worker_log:
                log = self.query_one(RichLog)
                for line in self._pending_lines[-200:]:
                    log.write(line)
            self._pending_lines = []
            self.redraw()

    def poll_status(self) -> None:
        self.status = self.run.read_status()
        self.raw_state = self.status.get("state")
        try:
            self.state, self.reason = self.run.effective_state(self.now())
        except Exception as e:  # a damaged status.json: say so, keep watching
            self.state, self.reason = "failed", f"status.json unreadable ({type(e).__name__})"
        self.stale = self.raw_state in ACTIVE_STATES and self.state not in ACTIVE_STATES
        if self.state in ACTIVE_STATES and self.view.event_state in FINAL_STATES:
            # status.json lags the event by up to a heartbeat; the event is newer.
            self.state = self.view.event_state
        self.redraw_header()
        self.redraw_sys()  # the worker's GPU readings (status.json `gpus`)
        if (self.state, self.stale, bool(self.worker_gpus())) != self._bindings_for:
            self._bindings_for = (self.state, self.stale, bool(self.worker_gpus()))
            self.refresh_bindings()
            self.redraw()  # e.g. no ETA once the worker is gone
        if self.show_worker_log:
            self._show_worker_log()

    def poll_sys(self) -> None:
        pid = self.status.get("pid") if self.state in ACTIVE_STATES else None
        try:
            self._sys = self.services.sysinfo(int(pid) if pid else None) or {}
        except Exception:  # machine stats are a nicety, never an error
            self._sys = {}
        self.redraw_sys()

    # --- drawing ---------------------------------------------------------------------------

    def redraw(self) -> None:
        self.redraw_header()
        v = self.view
        bar = BAR_WIDTH if self.size.width >= 110 else NARROW_BAR_WIDTH
        self._set("#dash-progress-text", progress_line(v, self.state in ACTIVE_STATES, bar))
        self._set("#dash-stats", stats_line(v, self.status, self.size.width))
        note = metric_note(v)
        self.query_one("#plot-metric", LinePlot).title = metric_plot_title(v)
        for pid, n in (("#plot-loss", None), ("#plot-metric", note), ("#plot-lr", None), ("#plot-tps", None)):
            self.query_one(pid, LinePlot).update_plot(n)

    def _set(self, selector: str, content: Text) -> None:
        """Update a line only when its text changes (an update repaints)."""
        if self._shown.get(selector) != content:
            self._shown[selector] = content
            w = self.query_one(selector)
            if isinstance(w, TextLine):
                w.set(content)
            else:
                w.update(content)

    def redraw_header(self) -> None:
        v = self.view
        problem = None
        if self.state in ("failed", "diverged") and not self.stale:
            problem = self.reason or v.error or self.status.get("message") or "see worker.log (w)"
        shown = "stale" if self.stale else self.state
        self._set("#dash-title", title_text(v, self.run.id, shown, self.status, problem))
        banner = self.query_one("#stale-banner", Static)
        if self.stale:
            self._set("#stale-banner", stale_banner(self.reason, self.raw_state))
            banner.display = True
        elif banner.display:
            banner.display = False

    def worker_gpus(self) -> list[dict[str, Any]]:
        """The worker's newest GPU readings; none once it has ended (they would be old)."""
        return status_gpus(self.status) if self.state in ACTIVE_STATES else []

    def redraw_sys(self) -> None:
        self._set("#dash-sys", sys_line(self._sys, self.worker_gpus(), self.size.width))

    def _show_worker_log(self, force: bool = False) -> None:
        log = self.query_one(RichLog)
        try:
            size = self.run.log_path.stat().st_size
        except OSError:
            size = -2
        if size == self._log_size and not force:
            return
        self._log_size = size
        lines = worker_log_lines(self.run.log_path)
        log.clear()
        for ln in lines:
            log.write(Text(ln))

    # --- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Keys that cannot apply to the run as it is are hidden, not shown as dead keys: a
        # finished run offers none of the four (its model is in model/: tunedeck predict).
        active = self.state in ACTIVE_STATES
        if action in ("checkpoint", "evaluate", "stop"):
            return active
        if action == "resume":
            return can_resume(self.state)
        if action == "results":
            return self.run.metrics_path.is_file()
        if action == "gpus":
            return bool(self.worker_gpus())
        return True

    def _request(self, action: str, what: str) -> None:
        if self.state not in ACTIVE_STATES:
            self.notify("The run is not running.", severity="warning")
            return
        if self.safely(lambda: self.run.request(action), what) is not None:
            self.notify(f"{what}: asked the worker (at the next step boundary).")

    def action_checkpoint(self) -> None:
        self._request("checkpoint", "Checkpoint now")

    def action_evaluate(self) -> None:
        self._request("evaluate", "Evaluate now")

    def action_stop(self) -> None:
        if self.state not in ACTIVE_STATES:
            self.notify("The run is not running.", severity="warning")
            return

        def done(yes: bool | None) -> None:
            # The same stop as `tunedeck stop` (control file + SIGTERM): seen in every phase,
            # also while the worker prepares data, loads the model or evaluates.
            if yes and self.safely(lambda: self.services.stop_run(self.run), "Stop") is not None:
                self.notify("Stop: asked the worker to save a checkpoint and exit.")

        self.app.push_screen(ConfirmDialog(
            f"Stop {self.run.id}?", "The worker saves a checkpoint and exits; r resumes it.",
            yes="Stop", danger=True), done)

    def action_resume(self) -> None:
        if self.state in ACTIVE_STATES:
            self.notify("The run is still running.", severity="warning")
            return
        self.notify(f"Resuming {self.run.id} …")
        self.tapp.resume_run(self.run.id, self.run.path, open_dashboard=False)

    def action_toggle_log(self) -> None:
        self.show_worker_log = not self.show_worker_log
        log = self.query_one(RichLog)
        log.border_title = "worker.log" if self.show_worker_log else "events"
        if self.show_worker_log:
            self._show_worker_log()
        else:
            self._fill_log()

    def action_results(self) -> None:
        from tunedeck.core.fsutil import read_json
        from tunedeck.tui.results import render_results
        from tunedeck.tui.screens.dialogs import MessageDialog

        m = read_json(self.run.metrics_path)
        if not isinstance(m, dict):
            self.notify("No results yet: metrics.json is written when the run finishes.",
                        severity="warning")
            return
        self.app.push_screen(MessageDialog(f"Results of {self.run.id}", render_results(m), error=False))

    def action_gpus(self) -> None:
        from tunedeck.tui.screens.dialogs import MessageDialog

        gpus = self.worker_gpus()
        if not gpus:
            self.notify("No GPU readings: the worker writes them while it runs on GPUs "
                        "(nvidia-ml-py: pip install 'tunedeck[gpu]').", severity="warning")
            return
        self.app.push_screen(MessageDialog(f"GPUs of {self.run.id}", Text("\n").join(
            gpu_entry(g) for g in gpus), error=False))

    def action_back(self) -> None:
        self.tapp.go_back()
