"""``tunedeck compare RUN RUN [...]``: prints tunedeck.core.eval.compare's comparison.

Runs are columns A, B, C ... (a legend names them: run ids are too long for columns). The best
value of each metric carries a ``*``.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any, Sequence

from tunedeck.core.cli.common import runs_dir_of

MAX_CURVE_ROWS = 12  # a curve's table keeps the first, the last and evenly spaced steps between
VALUE_WIDTH = 28  # longer profile values (paths) are cut in the middle


def cmd_compare(a: argparse.Namespace) -> int:
    from tunedeck.core.eval.compare import compare_runs
    from tunedeck.core.runs.rundir import find_run

    runs_dir = runs_dir_of(a)
    comparison = compare_runs([find_run(runs_dir, ref) for ref in a.runs])
    if a.json:
        print(json.dumps(comparison.to_json(), indent=2))
        return 0
    letters = column_letters(len(comparison.runs))
    for block in (_legend(comparison, letters), _profile_block(comparison, letters),
                  *(_metric_block(t, letters) for t in comparison.tables),
                  *(_curve_block(c, letters) for c in comparison.curves)):
        print("\n".join(block))
        print()
    return 0


def column_letters(n: int) -> list[str]:
    return [chr(ord("A") + i) if i < 26 else f"R{i + 1}" for i in range(n)]


def table_lines(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Left-aligned first column, right-aligned value columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]


def _legend(c: Any, letters: list[str]) -> list[str]:
    rows = [(f"{letter}", r.id, r.state, r.task) for letter, r in zip(letters, c.runs)]
    return [f"comparing {len(c.runs)} runs"] + table_lines(rows)


def _profile_block(c: Any, letters: list[str]) -> list[str]:
    n = len(c.profile_diffs)
    head = f"profile: {n} key{' differs' if n == 1 else 's differ'}, {c.equal_keys} equal"
    if not c.profile_diffs:
        return [head]
    rows = [["key", *letters]] + [[d.key, *(format_value(v) for v in d.values)]
                                  for d in c.profile_diffs]
    return [head] + table_lines(rows)


def format_value(v: Any) -> str:
    if v is None:
        return "(unset)"
    s = json.dumps(v) if isinstance(v, (list, dict, bool)) else str(v)
    if len(s) > VALUE_WIDTH:
        keep = VALUE_WIDTH - 1
        s = s[: keep // 3] + "…" + s[-(keep - keep // 3):]
    return s


def format_metric(v: float | None) -> str:
    if v is None:
        return "-"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"


def _metric_block(t: Any, letters: list[str]) -> list[str]:
    head = f"{t.title} metrics (* best)"
    rows = [["", *letters]]
    for row in t.rows:
        arrow = " ↓" if row.lower_is_better else " ↑"
        rows.append([row.metric + arrow, *(format_metric(v) + ("*" if i in row.best else " ")
                                            for i, v in enumerate(row.values))])
    notes = [f"  {letter}: {note}" for letter, note in zip(letters, t.notes)]
    if not t.rows:
        return [f"{t.title} metrics: none"] + notes
    return [head] + table_lines(rows) + notes


def _curve_block(curve: Any, letters: list[str]) -> list[str]:
    """(step, value) per run: one row per step any run evaluated at (thinned to a screenful)."""
    by_run = [dict(points) for points in curve.points]
    steps = sorted(set().union(*by_run))
    if len(steps) > MAX_CURVE_ROWS:
        picks = {round(i * (len(steps) - 1) / (MAX_CURVE_ROWS - 1)) for i in range(MAX_CURVE_ROWS)}
        steps = [steps[i] for i in sorted(picks)]
    rows = [["step", *letters]] + [[str(s), *(format_metric(run.get(s)) for run in by_run)]
                                   for s in steps]
    return [f"validation curve: {curve.metric}"] + table_lines(rows)
