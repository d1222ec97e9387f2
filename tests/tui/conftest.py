"""Fixtures for the TUI tests: fixed time zone, fake runs, fake services."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

# Rendered clock times (event log lines, run start times) must not depend on the machine's zone.
os.environ["TZ"] = "UTC"
time.tzset()
sys.path.insert(0, str(Path(__file__).parent))

from tui_fakes import fake_services  # noqa: E402
from tui_helpers import run_async, screen_text, wait_for  # noqa: E402,F401


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


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
