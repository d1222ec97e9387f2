"""A virtual table over an Arrow-backed row source: only the rows on screen are ever fetched.

Textual's DataTable builds a Python object per cell up front (tens of seconds for 100k rows);
here the widget asks its source for the ~screenful of rows it is about to draw, so a million
rows page as fast as a hundred.
"""

from __future__ import annotations

from typing import Any, Protocol

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from rich.cells import cell_len

from tunedeck.tui.fmt import cell_text


class RowSource(Protocol):
    @property
    def num_rows(self) -> int: ...

    @property
    def column_names(self) -> list[str]: ...

    def rows(self, start: int, stop: int) -> list[tuple[Any, ...]]: ...

    def source_row(self, i: int) -> int: ...


MAX_COL = 40


def _fit(s: str, width: int) -> str:
    """``s`` cut (with an ellipsis) or padded to exactly ``width`` terminal cells."""
    if width <= 0:
        return ""
    s = s[: width * 2 + 8]
    if not s.isprintable():
        s = "".join(ch if ch.isprintable() else "·" for ch in s)
    n = cell_len(s)
    if n <= width:
        return s + " " * (width - n)
    out, used = [], 0
    for ch in s:
        w = cell_len(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…" + " " * (width - 1 - used)


class ArrowTable(ScrollView, can_focus=True):
    """Rows of a ``RowSource``; a cursor row; a header that stays put."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "PgUp", show=False),
        Binding("pagedown,space", "page(1)", "PgDn", show=False),
        Binding("home,g", "jump(0)", "Top", show=False),
        Binding("end,G", "jump(-1)", "Bottom", show=False),
        Binding("left", "hscroll(-8)", "Left", show=False),
        Binding("right", "hscroll(8)", "Right", show=False),
    ]

    COMPONENT_CLASSES = {"arrow-table--header", "arrow-table--cursor", "arrow-table--gutter",
                         "arrow-table--odd", "arrow-table--null"}

    DEFAULT_CSS = """
    ArrowTable { height: 1fr; background: $surface; }
    ArrowTable > .arrow-table--header { text-style: bold; background: $panel; color: $text; }
    ArrowTable > .arrow-table--cursor { background: $accent 40%; }
    ArrowTable:focus > .arrow-table--cursor { background: $accent; color: $text; }
    ArrowTable > .arrow-table--gutter { color: $text-muted; }
    ArrowTable > .arrow-table--odd { background: $surface-lighten-1 30%; }
    """

    cursor_row: reactive[int] = reactive(0, always_update=True)

    class CursorMoved(Message):
        def __init__(self, table: "ArrowTable", row: int) -> None:
            super().__init__()
            self.table = table
            self.row = row

    def __init__(self, source: RowSource | None = None, *, id: str | None = None,
                 classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.source: RowSource | None = None
        self.widths: list[int] = []
        self._stretch = -1  # the column that takes the screen's spare width (the widest)
        self._cache_start = 0
        self._cache: list[tuple[Any, ...]] = []
        self.fetches = 0  # how many times rows were read (tests check laziness)
        if source is not None:
            self.set_source(source)

    # --- data ------------------------------------------------------------------------------

    def set_source(self, source: RowSource | None, keep_cursor: bool = False) -> None:
        self.source = source
        self._cache = []
        if source is None:
            self.widths = []
            self.virtual_size = Size(0, 0)
            self.refresh()
            return
        self._measure()
        n = source.num_rows
        if not keep_cursor:
            self.cursor_row = 0
            self.scroll_to(0, 0, animate=False, immediate=True)
        elif self.cursor_row >= n:
            self.cursor_row = max(0, n - 1)
        self._resize_virtual()
        self.refresh()
        self.post_message(self.CursorMoved(self, self.cursor_row))

    def _measure(self) -> None:
        assert self.source is not None
        sample = self.source.rows(0, 200)
        names = self.source.column_names
        widths = []
        for i, name in enumerate(names):
            w = cell_len(name)
            for r in sample:
                w = max(w, cell_len(cell_text(r[i])))
                if w >= MAX_COL:
                    w = MAX_COL
                    break
            widths.append(max(3, w))
        self.widths = widths
        self._stretch = widths.index(max(widths)) if widths else -1

    @property
    def num_gutter(self) -> int:
        table = getattr(self.source, "table", None)
        n = table.num_rows if table is not None else (self.source.num_rows if self.source else 0)
        return len(f"{max(n, 1)}") + 1

    def _resize_virtual(self) -> None:
        n = self.source.num_rows if self.source else 0
        self.virtual_size = Size(self._line_width(), n + 1)

    def _line_width(self) -> int:
        return self.num_gutter + sum(w + 3 for w in self.widths)

    def on_resize(self) -> None:
        if self.source is not None:
            self._resize_virtual()

    def _rows(self, first: int, count: int) -> list[tuple[Any, ...]]:
        assert self.source is not None
        end = first + count
        cs, ce = self._cache_start, self._cache_start + len(self._cache)
        if not self._cache or first < cs or end > ce:
            margin = max(count, 20)
            start = max(0, first - margin)
            self._cache = self.source.rows(start, end + margin)
            self._cache_start = start
            self.fetches += 1
        off = first - self._cache_start
        return self._cache[off: off + count]

    # --- rendering -------------------------------------------------------------------------

    @property
    def page_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if self.source is None or not self.widths:
            return Strip.blank(width, self.rich_style)
        sx = int(self.scroll_x)
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("arrow-table--header")
            segs = [Segment(" " * self.num_gutter, style)]
            for i, name in enumerate(self.source.column_names):
                segs.append(Segment(" " + _fit(name, self._width(i, width)) + " │", style))
            return Strip(segs).crop_extend(sx, sx + width, style)
        row = int(self.scroll_y) + y - 1
        if row >= self.source.num_rows:
            return Strip.blank(width, base)
        values = self._rows(row, 1)
        if not values:
            return Strip.blank(width, base)
        style = base
        if row % 2:
            style = style + self.get_component_rich_style("arrow-table--odd")
        if row == self.cursor_row:
            style = style + self.get_component_rich_style("arrow-table--cursor")
        gutter_style = style + self.get_component_rich_style("arrow-table--gutter")
        null_style = style + Style(dim=True, italic=True)
        segs = [Segment(f"{self.source.source_row(row) + 1:>{self.num_gutter - 1}} ", gutter_style)]
        for i, v in enumerate(values[0]):
            blank = v is None or (isinstance(v, str) and not v.strip())
            shown = cell_text(v) if not blank or v is None else "(empty)"
            text = _fit(shown, self._width(i, width))
            segs.append(Segment(" " + text, null_style if blank else style))
            segs.append(Segment(" │", gutter_style))
        return Strip(segs).crop_extend(sx, sx + width, style)

    def _width(self, i: int, avail: int) -> int:
        """Column width. Spare screen width goes to the widest column (the text, usually cut
        at MAX_COL), not to whichever column happens to be last (a short label)."""
        w = self.widths[i]
        if i == self._stretch:
            w += max(0, avail - self._line_width())
        return w

    # --- cursor ----------------------------------------------------------------------------

    def watch_cursor_row(self, old: int, new: int) -> None:
        self._scroll_cursor_into_view()
        self.refresh()
        self.post_message(self.CursorMoved(self, new))

    def _scroll_cursor_into_view(self) -> None:
        top = int(self.scroll_y)
        h = self.page_height
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + h:
            self.scroll_to(y=self.cursor_row - h + 1, animate=False, immediate=True)

    def _clamp(self, row: int) -> int:
        n = self.source.num_rows if self.source else 0
        return max(0, min(row, n - 1)) if n else 0

    def action_cursor(self, delta: int) -> None:
        self.cursor_row = self._clamp(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        h = self.page_height
        new = self._clamp(self.cursor_row + direction * h)
        top = self._clamp(int(self.scroll_y) + direction * h)
        self.scroll_to(y=top, animate=False, immediate=True)
        self.cursor_row = new

    def action_jump(self, where: int) -> None:
        n = self.source.num_rows if self.source else 0
        self.cursor_row = self._clamp(n - 1 if where < 0 else where)

    def action_hscroll(self, delta: int) -> None:
        self.scroll_to(x=max(0, int(self.scroll_x) + delta), animate=False, immediate=True)

    def on_click(self, event: Any) -> None:
        y = event.y
        if y >= 1 and self.source is not None:
            self.cursor_row = self._clamp(int(self.scroll_y) + y - 1)

    def visible_rows(self) -> list[int]:
        top = int(self.scroll_y)
        n = self.source.num_rows if self.source else 0
        return list(range(top, min(n, top + self.page_height)))
