"""Helpers for the TUI tests (a uniquely named module: `conftest` is ambiguous under xdist)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable


async def wait_for(pilot: Any, cond: Callable[[], Any], timeout: float = 30.0, step: float = 0.05) -> Any:
    """Pause the pilot until ``cond()`` is truthy (or fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await pilot.pause(step)


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


def screen_text(app: Any) -> str:
    """What the terminal shows right now, as plain text (from the app's SVG screenshot)."""
    import html
    import re

    svg = app.export_screenshot()
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg, re.S):
        rows.setdefault(float(m.group(2)), []).append((float(m.group(1)), html.unescape(m.group(3))))
    lines = []
    for _, parts in sorted(rows.items()):
        line = ""
        for x, t in sorted(parts):
            line = line.ljust(int(round(x / 12.2))) + t
        lines.append(line.replace("\xa0", " ").rstrip())
    return "\n".join(lines)
