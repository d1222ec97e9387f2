"""The live dashboard of one run: progress, plots, machine stats and the newest events.

Everything comes from the run directory: ``events.jsonl`` is tailed (the whole history is
replayed on attach), ``status.json`` and the run lock give the honest state. Nothing here talks
to the worker except through control files (``RunDir.request``) and, for a stop,
``tunedeck.core.runs.lifecycle.stop_run`` (control file + SIGTERM, as ``tunedeck stop``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.widget import Widget
from textual.widgets import Footer, Header, RichLog, Static

from tunedeck.core.runs.events import Event, EventTail
from tunedeck.core.runs.protocol import (ACTIVE_STATES, EVENT_TYPES, FINAL_STATES, can_resume,
                                         changes_state, describe_event, format_count,
                                         state_after_event)
from tunedeck.core.runs.rundir import RunDir
from tunedeck.tui import fmt
from tunedeck.tui.screens.base import BaseScreen
from tunedeck.tui.screens.dialogs import ConfirmDialog
from tunedeck.tui.widgets.plot import LinePlot, Series

REPLAY_IN_THREAD_BYTES = 4 << 20
MIN_REDRAW_S = 0.75  # with polls every 0.25 s: on screen within 1 s
METRIC_ORDER = ("accuracy", "f1_macro", "perplexity", "f1", "rouge", "bleu")
# How the event log shows each event (the words come from protocol.describe_event).
LINE_STYLE = {"step": "dim", "eval": "magenta", "run_started": "bold green",
              "run_resumed": "bold green", "checkpoint": "cyan", "run_finished": "bold cyan",
              "run_failed": "bold red", "run_stopped": "bold yellow", "run_diverged": "bold red"}
LOG_LEVEL_STYLE = {"error": "red", "warning": "yellow", "warn": "yellow"}
LINE_HINT = {"run_failed": " (w: worker.log)", "run_stopped": "; r resumes it"}


class RunView:
    """The dashboard's state, built only by applying events (so replay == live)."""

    def __init__(self) -> None:
        self.loss = Series("train", "cyan")
        self.eval_loss = Series("eval", "magenta")
        self.metric = Series("metric", "green")
        self.lr = Series("lr", "yellow")
        self.tps = Series("tok/s", "cyan")
        self.metric_name: str | None = None
        self.step = 0
        self.total = 0
        self.epoch = 0.0
        self.eta: float | None = None
        self.elapsed: float | None = None
        self.last: dict[str, Any] = {}
        self.started: dict[str, Any] = {}
        self.event_state: str | None = None
        self.final_metrics: dict[str, Any] = {}
        self.error: str | None = None
        self.best: tuple[str, float, int] | None = None
        self.last_eval: dict[str, Any] = {}
        self.checkpoints = 0
        self.lines: deque[Text] = deque(maxlen=500)
        self.events = 0
        self._last_step_line = -1e18

    def apply(self, ev: Event) -> Text | None:
        """Update from one event; returns a line for the event log (or None)."""
        self.events += 1
        if ev.type not in EVENT_TYPES:
            return None  # unknown types are ignored, as the protocol says
        show = self._update(ev)
        text = describe_event(ev)
        if not show or text is None:
            return None
        style = LINE_STYLE.get(ev.type, "")
        if ev.type == "log":
            style = LOG_LEVEL_STYLE.get(str(ev.data.get("level", "info")).lower(), "")
        line = Text(fmt.clock_time(ev.time) + " ", style="dim") + Text(
            text + LINE_HINT.get(ev.type, ""), style=style)
        self.lines.append(line)
        return line

    def _update(self, ev: Event) -> bool:
        """Apply the event to the view's state; False when it gets no line of its own (step
        lines are kept to one every 2 s: a run may log every step)."""
        d, t = ev.data, ev.type
        ended = state_after_event(t)
        if ended is not None:
            self.event_state = ended
        if t == "step":
            return self._apply_step(ev)
        if t == "eval":
            self._apply_eval(d)
        elif t == "run_started":
            self.started = d
            self.total = _int(d.get("total_steps"), self.total)
            self.event_state = "running"
        elif t == "run_resumed":
            step = _int(d.get("step"), 0)
            for s in (self.loss, self.lr, self.tps):
                s.truncate_after(step + 1e-9)
            self.step = step
            self.event_state = "running"
            self.error = None
        elif t == "checkpoint":
            self.checkpoints += 1
            # Steps between log lines are only known from here (a stop lands between them).
            self.step = max(self.step, _int(d.get("step"), self.step))
        elif t == "run_finished":
            self.eta = 0
            m = d.get("metrics") or {}
            self.final_metrics = m if isinstance(m, dict) else {}
        elif t == "run_failed":
            self.error = str(d.get("error", "unknown error"))
        elif t == "run_stopped":
            self.step = max(self.step, _int(d.get("step"), self.step))
        elif t == "run_diverged":
            self.error = str(d.get("message", "loss diverged"))
        return True

    def _apply_step(self, ev: Event) -> bool:
        d = ev.data
        self.step = _int(d.get("step"), self.step)
        self.total = _int(d.get("total_steps"), self.total)
        self.epoch = _float(d.get("epoch"), self.epoch)
        self.eta = _opt(d.get("eta_s"))
        self.elapsed = _opt(d.get("elapsed_s"), self.elapsed)
        self.last = d
        self.loss.add(self.step, d.get("loss"))
        self.lr.add(self.step, d.get("lr"))
        self.tps.add(self.step, d.get("tokens_per_s"))
        if self.event_state in (None, "starting"):
            self.event_state = "running"
        if ev.time - self._last_step_line < 2.0:
            return False
        self._last_step_line = ev.time
        return True

    def _apply_eval(self, d: dict[str, Any]) -> None:
        step = _int(d.get("step"), self.step)
        metrics = d.get("metrics") or {}
        if not isinstance(metrics, dict):
            metrics = {}
        if d.get("split", "validation") not in ("validation", "val", "eval", "dev"):
            return
        self.last_eval = metrics
        self.eval_loss.add(step, metrics.get("eval_loss", metrics.get("loss")))
        if self.metric_name is None:
            self.metric_name = next((m for m in METRIC_ORDER if m in metrics), None) or next(
                (k for k, v in metrics.items() if "loss" not in k and isinstance(v, (int, float))), None)
            if self.metric_name:
                self.metric.name = fmt.METRIC_SHORT.get(self.metric_name, self.metric_name)
        if self.metric_name:
            self.metric.add(step, metrics.get(self.metric_name))
        if "eval_loss" in metrics and _finite(metrics["eval_loss"]) and step > 0:
            v = float(metrics["eval_loss"])
            if self.best is None or v < self.best[1]:
                self.best = ("eval_loss", v, step)


def _int(v: Any, default: int) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _float(v: Any, default: float) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def _opt(v: Any, default: float | None = None) -> float | None:
    try:
        f = float(v)
        return f if math.isfinite(f) else default
    except (TypeError, ValueError):
        return default


def _finite(v: Any) -> bool:
    return _opt(v) is not None


BAR_WIDTH = 30


def progress_bar(frac: float, width: int) -> Text:
    """━━━━━━╸━━━━ : done in the accent colour, the rest dim."""
    frac = min(1.0, max(0.0, frac))
    halves = int(round(frac * width * 2))
    full, half = divmod(halves, 2)
    t = Text("━" * full, style="green" if frac >= 1 else "magenta")
    if half:
        t.append("╸", style="magenta")
    t.append("━" * (width - full - half), style="grey30")
    return t


class TextLine(Widget):
    """A fixed-height line of text. Unlike Static.update, changing it repaints only itself (no
    layout pass over the screen): the dashboard changes these lines on every redraw."""

    DEFAULT_CSS = "TextLine { height: 1; }"

    def __init__(self, id: str | None = None):
        super().__init__(id=id)
        self._text = Text()

    def set(self, text: Text) -> None:
        if text != self._text:
            self._text = text
            self.refresh()

    def render(self) -> Text:
        return self._text


class DashboardScreen(BaseScreen):
    BINDINGS = [
        Binding("k", "checkpoint", "Checkpoint", tooltip="Save a checkpoint now"),
        Binding("e", "evaluate", "Evaluate", tooltip="Evaluate on the validation split now"),
        Binding("s", "stop", "Stop", tooltip="Checkpoint and stop this run (asks first)"),
        Binding("r", "resume", "Resume", tooltip="Resume this run from its newest checkpoint"),
        Binding("w", "toggle_log", "worker.log", tooltip="Switch the lower panel between events and worker.log"),
        Binding("m", "results", "Results", tooltip="Final metrics, per-class scores, confusion matrix"),
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
        self._bindings_for: tuple[str, bool] | None = None
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
                log.write(Text("(events.jsonl is empty: this run's history was not recorded"
                               + ("; m shows its results)" if self.run.metrics_path.is_file() else ")"),
                               style="dim"))
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
        if (self.state, self.stale) != self._bindings_for:
            self._bindings_for = (self.state, self.stale)
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
        pct = f" ({v.step / v.total:.0%})" if v.total else ""
        eta = v.eta
        if eta is None and v.total and v.step and v.elapsed:
            eta = v.elapsed / v.step * (v.total - v.step)
        prog = progress_bar(v.step / v.total if v.total else 0.0, BAR_WIDTH if self.size.width >= 110 else 20)
        prog.append(" ")
        prog.append(f"step {v.step:,}" + (f"/{v.total:,}" if v.total else "") + pct, style="bold")
        prog.append(f" · epoch {v.epoch:.2f}")
        if self.state in ACTIVE_STATES:
            prog.append(f" · ETA {fmt.duration(eta)}" if eta is not None else " · ETA –")
        if v.elapsed is not None:
            prog.append(f" · {fmt.duration(v.elapsed)} training", style="dim")  # not wall time
        self._set("#dash-progress-text", prog)

        d = v.last
        st = Text()
        st.append("loss ", style="dim")
        st.append(fmt.num(d.get("loss")), style="bold cyan")
        st.append("  lr ", style="dim")
        st.append(fmt.num(d.get("lr"), 3))
        if "grad_norm" in d:
            st.append("  grad ", style="dim")
            st.append(fmt.num(d.get("grad_norm"), 3))
        st.append("  tok/s ", style="dim")
        st.append(fmt.rate(d.get("tokens_per_s")))
        if "samples_per_s" in d and self.size.width >= 100:
            # Left out in narrow terminals, so that MFU and the best metric stay on this line.
            st.append("  samples/s ", style="dim")
            st.append(fmt.rate(d.get("samples_per_s")))
        if d.get("mfu") is not None:
            st.append("  MFU ", style="dim")
            try:
                st.append(f"{float(d['mfu']):.1%}" if float(d["mfu"]) <= 1 else f"{float(d['mfu']):.1f}%")
            except (TypeError, ValueError):
                pass
        best = self.status.get("best")
        best = best if isinstance(best, dict) else {}
        if best.get("metric") is not None and best.get("value") is not None:
            st.append("  best ", style="dim")
            st.append(f"{fmt.best(best.get('metric'), best.get('value'))} @ {best.get('step', '?')}", style="green")
        elif v.best:
            st.append("  best ", style="dim")
            st.append(f"{fmt.best(v.best[0], v.best[1])} @ {v.best[2]}", style="green")
        self._set("#dash-stats", st)

        metric_note = ""
        if v.last_eval:
            metric_note = " ".join(f"{fmt.METRIC_SHORT.get(k, k)} {fmt.num(x, 3)}" for k, x in v.last_eval.items()
                                   if isinstance(x, (int, float)) and k != v.metric_name)[:40]
        self.query_one("#plot-metric", LinePlot).title = (
            f"eval {fmt.METRIC_SHORT.get(v.metric_name, v.metric_name)}" if v.metric_name else "eval")
        for pid, note in (("#plot-loss", None), ("#plot-metric", metric_note), ("#plot-lr", None), ("#plot-tps", None)):
            self.query_one(pid, LinePlot).update_plot(note)

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
        title = Text()
        shown = "stale" if self.stale else self.state
        title.append(f"{fmt.STATE_ICON.get(shown, '?')} {shown.upper()}", style=fmt.STATE_STYLE.get(shown, ""))
        title.append(f"  {self.run.id}", style="bold")
        task = self.status.get("task")
        prof = v.started.get("profile")
        if not task and isinstance(prof, dict) and isinstance(prof.get("task"), dict):
            task = prof["task"].get("type")
        if task:
            title.append(f"  {task}", style="dim")
        if v.started.get("device"):
            title.append(f" · {v.started['device']}", style="dim")
        if v.started.get("model_params"):
            title.append(f" · {format_count(v.started['model_params'])} params", style="dim")
        if v.started.get("trust_remote_code"):
            # The profile let the model repository run its own Python code: say so, always.
            title.append(" · ⚠ remote code ON", style="bold yellow")
        if self.state in ("failed", "diverged") and not self.stale:
            msg = self.reason or v.error or self.status.get("message") or "see worker.log (w)"
            title.append(f"\n{msg}", style="red")
        self._set("#dash-title", title)
        banner = self.query_one("#stale-banner", Static)
        if self.stale:
            self._set("#stale-banner", Text(f" ⚠ STALE — {self.reason}. status.json still says "
                                            f"'{self.raw_state}'. r resumes from the newest checkpoint. ",
                                            style="bold"))
            banner.display = True
        elif banner.display:
            banner.display = False

    def redraw_sys(self) -> None:
        s = self._sys
        t = Text()
        gpus = s.get("gpus") or []
        for g in gpus:
            t.append(f"GPU{g.get('index', '')} ", style="bold")
            if "util_percent" in g:
                t.append(f"{g['util_percent']:.0f}% ")
            if "mem_used_gb" in g:
                t.append(f"{g['mem_used_gb']:.1f}/{g.get('mem_total_gb', 0):.0f}GB ")
            if "temp_c" in g:
                t.append(f"{g['temp_c']:.0f}°C ")
            if "power_w" in g:
                t.append(f"{g['power_w']:.0f}W ")
            t.append(" ")
        if "cpu_percent" in s:
            t.append("CPU ", style="bold")
            t.append(f"{5 * round(s['cpu_percent'] / 5):.0f}%  ")
        if "ram_used_gb" in s:
            t.append("RAM ", style="bold")
            t.append(f"{s['ram_used_gb']:.1f}/{s.get('ram_total_gb', 0):.1f}GB  ")
        if "worker_rss_gb" in s:
            t.append("worker ", style="bold")
            t.append(f"{s['worker_rss_gb']:.2f}GB")
        self._set("#dash-sys", t)

    def _show_worker_log(self, force: bool = False) -> None:
        log = self.query_one(RichLog)
        try:
            size = self.run.log_path.stat().st_size
        except OSError:
            size = -2
        if size == self._log_size and not force:
            return
        self._log_size = size
        try:
            with open(self.run.log_path, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 32768))
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            text = f"(no worker.log at {self.run.log_path})"
        if not text.strip():
            text = f"({self.run.log_path} is empty: the worker writes warnings and tracebacks there)"
        lines = text.splitlines()[-300:]
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

    def action_back(self) -> None:
        self.tapp.go_back()
