"""The quick head as the browser's table sees it: the first rows that core's data layer
(``tunedeck.core.data.head``) reads with the standard library, shaped like TableSource."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunedeck.core.data.head import HEAD_ROWS, head_rows


class ListSource:
    """A few rows held as Python tuples (the quick head), shaped like TableSource."""

    def __init__(self, columns: list[str], rows: list[tuple[Any, ...]]):
        self.columns = columns
        self._rows = rows

    @property
    def num_rows(self) -> int:
        return len(self._rows)

    @property
    def column_names(self) -> list[str]:
        return self.columns

    def rows(self, start: int, stop: int) -> list[tuple[Any, ...]]:
        return self._rows[max(0, start): max(0, stop)]

    def source_row(self, i: int) -> int:
        return i

    def row(self, i: int) -> dict[str, Any]:
        return dict(zip(self.columns, self._rows[i])) if 0 <= i < len(self._rows) else {}


def quick_head(path: Path, fmt: str, max_rows: int = HEAD_ROWS,
               encoding: str | None = None) -> ListSource | None:
    """``head_rows`` as a table source (None: wait for the full reader)."""
    head = head_rows(path, fmt, max_rows, encoding)
    return ListSource(*head) if head else None
