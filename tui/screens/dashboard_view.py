"""The dashboard's view model: the state of one run, built only by applying its events (so a
replay of ``events.jsonl`` and the live tail give the same view), and the event log's lines.

The words of each line come from ``tunedeck.core.runs.protocol.describe_event``; this module
adds the time, the style and the hints.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from rich.text import Text

from tunedeck.core.runs.events import Event
from tunedeck.core.runs.protocol import EVENT_TYPES, describe_event, state_after_event
from tunedeck.tui import fmt
from tunedeck.tui.widgets.plot import Series

METRIC_ORDER = ("accuracy", "f1_macro", "perplexity", "f1", "rouge", "bleu")
# How the event log shows each event (the words come from protocol.describe_event).
LINE_STYLE = {"step": "dim", "eval": "magenta", "run_started": "bold green",
              "run_resumed": "bold green", "checkpoint": "cyan", "run_finished": "bold cyan",
              "run_failed": "bold red", "run_stopped": "bold yellow", "run_diverged": "bold red",
              "run_pruned": "magenta"}
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
