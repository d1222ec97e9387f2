"""Fixtures for the TUI tests: fixed time zone, fake runs, fake services."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

# Rendered clock times (event log lines, run start times) must not depend on the machine's zone.
os.environ["TZ"] = "UTC"
time.tzset()
sys.path.insert(0, str(Path(__file__).parent))

from tui_fakes import fake_services  # noqa: E402


@pytest.fixture
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty runs directory, named relatively (``runs``) so that rendered paths are stable."""
    monkeypatch.chdir(tmp_path)
    d = Path("runs")
    d.mkdir()
    return d


@pytest.fixture
def services() -> Any:
    return fake_services()


async def wait_for(pilot: Any, cond: Callable[[], Any], timeout: float = 10.0, step: float = 0.05) -> Any:
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


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"



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
