"""The run-directory protocol as data: event types, run states, which event ends a run in which
state, and the one way an event is put into words.

Torch-free and textual-free: the worker, the CLI (``tunedeck logs``, progress lines) and the TUI
dashboard all read events through this module, so a new state (e.g. "pruned" for a search trial)
is one entry in the tables below, not an edit in every reader. docs/events.md is the schema.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Protocol

EVENT_TYPES = (
    "run_started",
    "run_resumed",
    "step",
    "eval",
    "checkpoint",
    "log",
    "run_finished",
    "run_failed",
    "run_stopped",
    "run_diverged",
    "run_pruned",
)

# A worker is (or may be) at work in these states; readers must still check liveness
# (RunDir.effective_state): status.json says "running" after a SIGKILL too.
ACTIVE_STATES = ("starting", "running")
# The worker has ended. A state added here needs its end event in END_EVENT_STATES.
FINAL_STATES = ("finished", "failed", "stopped", "diverged", "pruned")
# Final states that `resume` refuses: the run did all it was asked to (a search trial its
# study's pruner ended is done too: resuming it would spend the budget pruning saved).
COMPLETED_STATES = ("finished", "pruned")
# The event that ends a worker's life, and the state it leaves the run in.
END_EVENT_STATES = {
    "run_finished": "finished",
    "run_failed": "failed",
    "run_stopped": "stopped",
    "run_diverged": "diverged",
    "run_pruned": "pruned",
}
# Events that begin a worker's life: an end event before the newest of these is history.
BEGIN_EVENTS = ("run_started", "run_resumed")

CONTROL_ACTIONS = ("stop", "checkpoint", "evaluate")
METRIC_SHORT = {"accuracy": "acc", "f1_macro": "f1", "eval_loss": "loss", "perplexity": "ppl"}
# Kept in metrics.json and the results panel, left out of one-line event descriptions (an eval
# line with all of them no longer fits a terminal).
LINE_OMITS = frozenset({"precision_macro", "precision_weighted", "recall_macro", "recall_weighted",
                        "f1_weighted"})


def is_active(state: str | None) -> bool:
    return state in ACTIVE_STATES


def is_final(state: str | None) -> bool:
    return state in FINAL_STATES


def can_resume(state: str | None) -> bool:
    """A run that ended without completing (stopped, failed, diverged, killed)."""
    return state not in ACTIVE_STATES and state not in COMPLETED_STATES


def state_after_event(event_type: str) -> str | None:
    """The state an end event leaves the run in; None for every other event."""
    return END_EVENT_STATES.get(event_type)


def changes_state(event_type: str) -> bool:
    """Whether a reader should re-read status.json after this event (a worker began or ended)."""
    return event_type in END_EVENT_STATES or event_type in BEGIN_EVENTS


# --- putting events into words ---------------------------------------------------------------

class EventLike(Protocol):
    seq: int
    time: float
    type: str
    data: dict[str, Any]


def format_number(v: Any, digits: int = 4) -> str:
    """4 significant digits; thousands separated; scientific for the very small or large."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(f):
        return str(f)
    a = abs(f)
    if a != 0 and (a < 1e-3 or a >= 1e6):
        return f"{f:.2e}"
    if a >= 1000:
        return f"{f:,.0f}"
    return f"{f:.{digits}g}"


def format_rate(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "–"
    if f >= 1e6:
        return f"{f / 1e6:.2f}M"
    if f >= 1e3:
        return f"{f / 1e3:.1f}k"
    return f"{f:.1f}"


def format_count(n: Any) -> str:
    """A parameter count as 1.2B / 22.7M / 5.0k."""
    try:
        n = float(n)
    except (TypeError, ValueError):
        return str(n)
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.0f}"


def _int(v: Any, default: int = 0) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _metrics_text(metrics: Any) -> str:
    if not isinstance(metrics, dict):
        return ""
    return "  ".join(f"{METRIC_SHORT.get(k, k)} {format_number(v)}" for k, v in metrics.items()
                     if isinstance(v, (int, float)) and k not in LINE_OMITS)


def _started_text(d: dict[str, Any]) -> str:
    bits = [f"run started on {d.get('device', '?')}"]
    if d.get("model_params"):
        trainable = _int(d.get("trainable_params"))
        lora = f" ({format_count(trainable)} trainable)" if trainable and \
            trainable < d["model_params"] else ""  # LoRA: the adapters
        bits.append(f"{format_count(d['model_params'])} params{lora}")
    sizes = d.get("dataset_sizes")
    if isinstance(sizes, dict):
        bits.append(" / ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
                               for k, v in sizes.items()))
    if _int(d.get("total_steps")):
        bits.append(f"{_int(d.get('total_steps')):,} steps")
    if d.get("compile"):
        bits.append(f"compile {d['compile']} ({d.get('compile_setting', '?')}: "
                    f"{d.get('compile_reason', '')})")
    return " · ".join(bits)


def _step_text(d: dict[str, Any]) -> str:
    total = _int(d.get("total_steps"))
    return (f"step {_int(d.get('step')):,}" + (f"/{total:,}" if total else "")
            + f"  loss {format_number(d.get('loss'))}  lr {format_number(d.get('lr'), 3)}"
            + (f"  {format_rate(d.get('tokens_per_s'))} tok/s" if d.get("tokens_per_s") else ""))


def describe_event(ev: EventLike) -> str | None:
    """One line saying what the event means, or None for a type this version does not know
    (readers ignore those). The CLI's progress lines, ``tunedeck logs`` and the dashboard's
    event log all use it; each adds its own time stamp, colours or hints."""
    d, t = ev.data, ev.type
    if t == "step":
        return _step_text(d)
    if t == "eval":
        return (f"eval ({d.get('split', 'validation')}) @ step {_int(d.get('step')):,}: "
                f"{_metrics_text(d.get('metrics'))}")
    if t == "run_started":
        return _started_text(d)
    if t == "run_resumed":
        return f"resumed from step {_int(d.get('step')):,}"
    if t == "checkpoint":
        where = "/".join(Path(str(d.get("path", ""))).parts[-2:])
        return f"checkpoint @ step {_int(d.get('step')):,}: {where}"
    if t == "log":
        return f"{str(d.get('level', 'info')).lower()}: {d.get('message', '')}"
    if t == "run_finished":
        shown = _metrics_text(d.get("metrics"))
        return f"run finished. {('test: ' + shown) if shown else ''}".rstrip()
    if t == "run_failed":
        return f"run failed: {d.get('error', 'unknown error')}"
    if t == "run_stopped":
        return f"run stopped at step {_int(d.get('step')):,}"
    if t == "run_diverged":
        return (f"run diverged at step {_int(d.get('step')):,}: "
                f"{d.get('message', 'loss diverged')}")
    if t == "run_pruned":
        return (f"run pruned at step {_int(d.get('step')):,}: "
                f"{d.get('message', 'the search pruned this trial')}")
    return None


def format_event_line(ev: EventLike) -> str:
    """``tunedeck logs``: time, sequence number, type, then the description (or the raw
    scalar fields of a type this version does not know)."""
    ts = time.strftime("%H:%M:%S", time.localtime(ev.time))
    body = describe_event(ev)
    if body is None:
        body = " ".join(f"{k}={v}" for k, v in ev.data.items() if not isinstance(v, (dict, list)))
    return f"{ts} #{ev.seq:<5} {ev.type:<12} {body}"
