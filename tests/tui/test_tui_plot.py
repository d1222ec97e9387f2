"""The braille plot and bar charts: pure functions, no app needed."""

from __future__ import annotations

import math

from tunedeck.tui.widgets.plot import MAX_POINTS, Series, bar_lines, fmt_num, render_plot


def test_plot_shape_and_extremes() -> None:
    s = Series("loss")
    for i in range(100):
        s.add(i, 100 - i)
    lines = render_plot([s], 40, 6)
    assert len(lines) == 6 and all(len(ln.plain) == 40 for ln in lines)
    assert lines[0].plain.startswith("    100┤")
    assert lines[-1].plain.startswith("  1.000┤")
    # A falling line: ink at the top left and the bottom right.
    assert lines[0].plain[8] != " " and lines[-1].plain[-1] != " "


def test_series_bounded_and_resume_truncates() -> None:
    s = Series("loss")
    for i in range(10 * MAX_POINTS):
        s.add(i, math.sin(i))
    assert len(s.xs) <= MAX_POINTS
    s2 = Series("x")
    for i in range(1, 11):
        s2.add(i * 10, i)
    s2.add(60, 0.5)  # a resumed run redoes steps after its checkpoint
    assert s2.xs == [10, 20, 30, 40, 50, 60] and s2.ys[-1] == 0.5
    s2.add(70, float("nan"))
    assert s2.xs[-1] == 60


def test_empty_plot_and_bars() -> None:
    lines = render_plot([Series("a")], 30, 4)
    assert "waiting for data" in "".join(ln.plain for ln in lines)
    bars = bar_lines([("ham", 80), ("spam", 20)], 40)
    assert bars[0].plain.startswith("ham ") and "80 (80%)" in bars[0].plain
    assert fmt_num(5e-5) == "5.00e-5" and fmt_num(12345.0) == "12345"
