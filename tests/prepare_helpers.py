"""Helpers the `tunedeck data` tests share: write/read a CSV, run a data command in-process."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tunedeck.core.cli import main


def write_rows(path: Path, rows: list[tuple]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run_json(args, capsys, code=0):
    """`tunedeck data ARGS --json`: its JSON report (its stderr when it printed none)."""
    capsys.readouterr()
    rc = main(["data", *args, "--json"])
    out = capsys.readouterr()
    assert rc == code, out.err
    return json.loads(out.out) if out.out.strip() else out.err
