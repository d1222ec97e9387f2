"""Small formatting helpers shared by the screens (numbers, durations, states)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from tunedeck.core.runs.protocol import METRIC_SHORT, format_number, format_rate

STATE_STYLE = {
    "starting": "yellow",
    "running": "bold green",
    "finished": "cyan",
    "stopped": "yellow",
    "failed": "bold red",
    "diverged": "bold red",
    "pruned": "magenta",
    "stale": "bold red",
}
STATE_ICON = {
    "starting": "◌", "running": "●", "finished": "✓", "stopped": "■", "failed": "✗",
    "diverged": "✗", "pruned": "✂", "stale": "!",
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


# The same words as the CLI's and the event log's (tunedeck.core.runs.protocol, torch-free).
num = format_number
rate = format_rate


def best(metric: str | None, value: Any) -> str:
    if metric is None or value is None:
        return "–"
    return f"{METRIC_SHORT.get(metric, metric)} {num(value)}"


def task_short(task: str) -> str:
    return {"classification": "classify"}.get(task, task)


# --- data cells (the dataset browser: imported while the quick head paints, before pyarrow) ---

def cell_text(v: Any) -> str:
    """One line for a table cell."""
    if v is None:
        return "∅"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        v = json.dumps(v, ensure_ascii=False, default=str)
    s = str(v)
    if "\n" in s or "\t" in s or "\r" in s:
        s = s.replace("\r\n", "⏎").replace("\n", "⏎").replace("\r", "⏎").replace("\t", " ")
    return s


def full_text(v: Any) -> str:
    if v is None:
        return "∅ (null)"
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False, indent=2, default=str)
    return str(v)
