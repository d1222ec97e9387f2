"""Small formatting helpers shared by the screens (numbers, durations, states)."""

from __future__ import annotations

import math
import time
from typing import Any

STATE_STYLE = {
    "starting": "yellow",
    "running": "bold green",
    "finished": "cyan",
    "stopped": "yellow",
    "failed": "bold red",
    "diverged": "bold red",
    "stale": "bold red",
}
STATE_ICON = {
    "starting": "◌", "running": "●", "finished": "✓", "stopped": "■", "failed": "✗",
    "diverged": "✗", "stale": "!",
}


def duration(s: float | None) -> str:
    if s is None or not math.isfinite(s) or s < 0:
        return "–"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def when(t: float | None) -> str:
    if not t:
        return "–"
    return time.strftime("%m-%d %H:%M", time.localtime(t))


def clock_time(t: float | None) -> str:
    if not t:
        return "--:--:--"
    return time.strftime("%H:%M:%S", time.localtime(t))


def num(v: Any, digits: int = 4) -> str:
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


def rate(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "–"
    if f >= 1e6:
        return f"{f / 1e6:.2f}M"
    if f >= 1e3:
        return f"{f / 1e3:.1f}k"
    return f"{f:.1f}"


METRIC_SHORT = {"accuracy": "acc", "f1_macro": "f1", "eval_loss": "loss", "perplexity": "ppl"}


def best(metric: str | None, value: Any) -> str:
    if metric is None or value is None:
        return "–"
    return f"{METRIC_SHORT.get(metric, metric)} {num(value)}"


def task_short(task: str) -> str:
    return {"classification": "classify"}.get(task, task)
