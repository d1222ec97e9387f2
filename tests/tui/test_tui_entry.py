"""Entry points: ``python -m tui``, ``tunedeck.tui.app.main`` and ``tunedeck.tui.app.run`` (what the CLI calls)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import tunedeck.tui.app as tapp
from tunedeck.tui.__main__ import parse

ROOT = Path(__file__).resolve().parents[2]


def test_module_help_runs_without_a_terminal() -> None:
    proc = subprocess.run([sys.executable, "-m", "tunedeck.tui", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ))
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


def _in_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``tunedeck ARGS`` with a pseudo-terminal as stdin/stdout/stderr; (exit code, output)."""
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "tunedeck.tui.entry", *args], cwd=cwd, stdin=slave,
                            stdout=slave, stderr=slave, close_fds=True,
                            env=dict(os.environ, TERM="xterm"))
    os.close(slave)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        code = proc.wait(timeout=60)
    return code, out.decode(errors="replace")


def test_nothing_to_open_is_said_at_the_shell(tmp_path: Path) -> None:
    """A missing run or data file: exit 2 with one line, before any screen is drawn."""
    (tmp_path / "runs").mkdir()
    code, out = _in_a_terminal(["--runs-dir", "runs", "attach", "nosuch"], tmp_path)
    assert code == 2 and "no run 'nosuch'" in out and "\x1b[?1049h" not in out, out
    code, out = _in_a_terminal(["browse", "nosuch.csv"], tmp_path)
    assert code == 2 and "no such file or directory: nosuch.csv" in out, out


def test_without_a_terminal_the_tui_refuses_instead_of_spinning(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tunedeck.tui.entry"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env=dict(os.environ))
    assert proc.returncode == 2 and "needs a terminal" in proc.stderr
