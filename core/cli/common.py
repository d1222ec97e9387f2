"""What every CLI command shares: the runs directory, durations, and --json's clean stdout."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Iterator

from tunedeck.core.runs import lifecycle as _lifecycle  # torch-free at import

DEFAULT_RUNS_DIR = _lifecycle.DEFAULT_RUNS_DIR


def runs_dir_of(args: argparse.Namespace) -> Path:
    return Path(args.runs_dir or DEFAULT_RUNS_DIR)


def format_duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"


@contextlib.contextmanager
def stdout_for_json(json_mode: bool) -> Iterator[None]:
    """In --json mode stdout carries one JSON object only: anything a library prints while the
    command works goes to stderr."""
    if not json_mode:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield
