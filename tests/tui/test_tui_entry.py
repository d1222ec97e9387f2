"""Entry points: ``python -m tui``, ``tui.app.main`` and ``tui.app.run`` (what the CLI calls)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import tui.app as tapp
from tui.__main__ import parse

ROOT = Path(__file__).resolve().parents[2]


def test_module_help_runs_without_a_terminal() -> None:
    proc = subprocess.run([sys.executable, "-m", "tui", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0 and "attach" in proc.stdout and "browse" in proc.stdout


def test_argument_mapping(monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(tapp, "main", lambda **kw: seen.append(kw) or 0)
    ns = parse(["--runs-dir", "r", "attach", "abc"])
    assert (ns.runs_dir, ns.run) == ("r", "abc")
    assert tapp.run(argparse.Namespace(cmd="attach", run="abc", runs_dir="r")) == 0
    assert tapp.run({"command": "browse", "path": "data.csv"}) == 0
    assert tapp.run(argparse.Namespace(runs_dir=None)) == 0
    assert seen == [
        {"runs_dir": "r", "attach": "abc", "browse": None, "profile": None},
        {"runs_dir": "runs", "attach": None, "browse": "data.csv", "profile": None},
        {"runs_dir": "runs", "attach": None, "browse": None, "profile": None},
    ]
