"""A small line plot drawn with braille dots (2×4 dots a cell), plus horizontal bar charts.

No plotting dependency: a series is a list of (x, y) kept to a bounded number of points (older
points are merged pairwise as the series grows), so a plot of a million steps costs the same to
draw as one of a thousand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from rich.text import Text
from textual.widget import Widget

MAX_POINTS = 1024  # plenty for ~200 dot columns; halving keeps the shape
_BRAILLE = 0x2800
# dot bit for (column 0|1, row 0..3) inside one braille cell
_DOT = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))


@dataclass
class Series:
    name: str
    color: str = "cyan"
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    version: int = 0  # bumped on every change: plots redraw only when it moves

    def add(self, x: float, y: float | None) -> None:
        if y is None:
            return
        try:
            x, y = float(x), float(y)
        except (TypeError, ValueError):
            return
        if not (math.isfinite(x) and math.isfinite(y)):
            return
        if self.xs and x < self.xs[-1]:
            self.truncate_after(x)
        self.xs.append(x)
        self.ys.append(y)
        self.version += 1
        if len(self.xs) > MAX_POINTS:
            self._halve()

    def truncate_after(self, x: float) -> None:
        """Drop points at or beyond ``x`` (a resumed run redoes the steps after its checkpoint)."""
        while self.xs and self.xs[-1] >= x:
            self.xs.pop()
            self.ys.pop()
            self.version += 1

    def _halve(self) -> None:
        xs, ys = self.xs, self.ys
        n = len(xs) // 2 * 2
        self.xs = [xs[i + 1] for i in range(0, n, 2)] + xs[n:]
        self.ys = [(ys[i] + ys[i + 1]) / 2 for i in range(0, n, 2)] + ys[n:]

    @property
    def last(self) -> float | None:
        return self.ys[-1] if self.ys else None


def fmt_num(v: float | None, width: int = 7) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    a = abs(v)
    if a == 0:
        s = "0"
    elif a >= 1e5 or a < 1e-3:
        s = f"{v:.2e}".replace("e-0", "e-").replace("e+0", "e")
    elif a >= 100:
        s = f"{v:.0f}"
    elif a >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.3f}"
    return s[:width]


LABEL_W = 7  # the y-axis labels' width


def render_plot(series: Sequence[Series], width: int, height: int,
                ylim: tuple[float, float] | None = None) -> list[Text]:
    """Lines of a braille plot ``width`` cells wide and ``height`` rows high, with a y-axis."""
    pts = [(s, list(zip(s.xs, s.ys))) for s in series if s.xs]
    pw = max(1, width - LABEL_W - 1)
    if not pts:
        return _waiting_lines(width, height)
    xmin = min(p[0][0] for _, p in pts)
    xmax = max(p[-1][0] for _, p in pts)
    lo, hi = _y_range([y for _, p in pts for _, y in p], ylim)
    grid = [[0] * pw for _ in range(height)]
    owner: list[list[str | None]] = [[None] * pw for _ in range(height)]
    for s, p in pts:
        _draw_series(grid, owner, p, s.color, (xmin, xmax), (lo, hi), (pw * 2, height * 4))
    return _grid_lines(grid, owner, fmt_num(hi), fmt_num(lo))


def _waiting_lines(width: int, height: int) -> list[Text]:
    lines = [Text(" " * width) for _ in range(height)]
    if height:
        msg = "waiting for data"
        lines[height // 2] = Text((" " * max(0, (width - len(msg)) // 2) + msg)[:width], style="dim")
    return lines


def _y_range(ys: list[float], ylim: tuple[float, float] | None) -> tuple[float, float]:
    """``ylim``, else the data's range; a flat line gets some room above and below."""
    lo, hi = ylim if ylim else (min(ys), max(ys))
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _draw_series(grid: list[list[int]], owner: list[list[str | None]], p: list[tuple[float, float]],
                 color: str, xs: tuple[float, float], ys: tuple[float, float], dots: tuple[int, int]) -> None:
    """Mean y for each dot column (of ``dots`` = width, height in dots), then consecutive
    columns joined with vertical runs."""
    xmin, xmax = xs
    lo, hi = ys
    dots_w, dots_h = dots
    xspan = (xmax - xmin) or 1.0
    cols: dict[int, list[float]] = {}
    for x, y in p:
        cx = int((x - xmin) / xspan * (dots_w - 1)) if xmax > xmin else 0
        cols.setdefault(cx, []).append(y)
    prev: tuple[int, int] | None = None
    for cx in sorted(cols):
        y = sum(cols[cx]) / len(cols[cx])
        cy = int(round((hi - y) / (hi - lo) * (dots_h - 1)))
        cy = min(dots_h - 1, max(0, cy))
        if prev is None:
            _set(grid, owner, cx, cy, color)
        else:
            px, py = prev
            last = py
            for x in range(px + 1, cx + 1):
                yi = int(round(py + (cy - py) * (x - px) / (cx - px)))
                a, b = sorted((last, yi))
                for yy in range(a, b + 1):
                    _set(grid, owner, x, yy, color)
                last = yi
        prev = (cx, cy)


def _grid_lines(grid: list[list[int]], owner: list[list[str | None]], top: str, bottom: str) -> list[Text]:
    """The braille cells, each row behind its y-axis label (top and bottom rows only)."""
    height = len(grid)
    lines = []
    for r in range(height):
        if r == 0:
            lab = top.rjust(LABEL_W)
        elif r == height - 1:
            lab = bottom.rjust(LABEL_W)
        else:
            lab = " " * LABEL_W
        t = Text(lab + "┤" if r in (0, height - 1) else lab + "│", style="dim")
        for c, bits in enumerate(grid[r]):
            if bits:
                t.append(chr(_BRAILLE + bits), style=owner[r][c] or "")
            else:
                t.append(" ")
        lines.append(t)
    return lines


def _set(grid: list[list[int]], owner: list[list[str | None]], dx: int, dy: int, color: str) -> None:
    r, c = dy // 4, dx // 2
    if 0 <= r < len(grid) and 0 <= c < len(grid[0]):
        grid[r][c] |= _DOT[dx % 2][dy % 4]
        owner[r][c] = color


def x_axis(xmin: float, xmax: float, width: int, label: str = "step") -> Text:
    left, right = f"{xmin:g}", f"{xmax:g}"
    inner = width - 8
    mid = f" {label} "
    gap = max(1, inner - len(left) - len(right) - len(mid))
    s = " " * 8 + left + " " * (gap // 2) + mid + " " * (gap - gap // 2) + right
    return Text(s[:width], style="dim")


class LinePlot(Widget):
    """A titled braille line plot of one or more series sharing a y-axis."""

    DEFAULT_CSS = """
    LinePlot { height: 8; min-height: 4; }
    """

    def __init__(self, title: str, series: Sequence[Series], *, id: str | None = None,
                 classes: str | None = None, x_label: str = "step"):
        super().__init__(id=id, classes=classes)
        self.title = title
        self.series = list(series)
        self.x_label = x_label
        self.note = ""
        self._drawn: tuple[object, ...] | None = None
        self._cache: Text | None = None

    def _key(self) -> tuple[object, ...]:
        return (tuple((id(s), s.version) for s in self.series), self.title, self.note,
                self.size.width, self.size.height)

    def update_plot(self, note: str | None = None) -> None:
        """Repaint if anything shown changed (repainting costs the worker's CPU too)."""
        if note is not None:
            self.note = note
        if self._key() != self._drawn:
            self.refresh()

    def render(self) -> Text:
        w, h = self.size.width, self.size.height
        if w <= 0 or h <= 0:
            return Text("")
        key = self._key()
        if key == self._drawn and self._cache is not None:
            return self._cache
        self._drawn, self._cache = key, self._draw(w, h)
        return self._cache

    def _draw(self, w: int, h: int) -> Text:
        head = Text(self.title, style="bold")
        for s in self.series:
            if s.last is not None:
                head.append(f"  {s.name if len(self.series) > 1 else ''}", style=s.color)
                head.append(f"{' ' if len(self.series) > 1 else ''}{fmt_num(s.last, 9)}", style=s.color)
        if self.note:
            head.append(f"  {self.note}", style="dim")
        head.truncate(w)
        out = Text()
        out.append(head)
        body_h = max(1, h - 2)
        for line in render_plot(self.series, w, body_h):
            out.append("\n")
            line.truncate(w)
            out.append(line)
        if h >= 3:
            xs = [x for s in self.series for x in (s.xs[:1] + s.xs[-1:])]
            out.append("\n")
            out.append(x_axis(min(xs), max(xs), w, self.x_label) if xs else Text(""))
        return out


def bar_lines(items: Sequence[tuple[str, int]], width: int, total: int | None = None,
              color: str = "cyan", max_label: int = 16) -> list[Text]:
    """Horizontal bars: ``label ████▌ count (pct)`` for each (label, count)."""
    if not items:
        return [Text("(none)", style="dim")]
    total = total or sum(c for _, c in items) or 1
    peak = max(c for _, c in items) or 1
    lab_w = min(max_label, max(len(str(k)) for k, _ in items))
    tail_w = max(len(f"{c:,} ({c / total:.0%})") for _, c in items) + 1
    bar_w = max(4, width - lab_w - tail_w - 2)
    out = []
    for k, c in items:
        k = str(k)
        k = k if len(k) <= lab_w else k[: lab_w - 1] + "…"
        eighths = int(round(c / peak * bar_w * 8))
        full, part = divmod(eighths, 8)
        bar = "█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")
        t = Text(k.ljust(lab_w) + " ")
        t.append(bar.ljust(bar_w), style=color)
        t.append(f" {c:,} ({c / total:.0%})", style="dim")
        out.append(t)
    return out
