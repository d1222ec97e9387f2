"""Row cleaning and the duplicate key: what training drops, and what the browser counts.

One set of rules, applied to the columns training uses (text + label, prompt + response, or
text), never to the other columns of a file:

- ``clean``: CRLF becomes LF and surrounding whitespace is stripped; a row whose text or label
  is then empty (or null) is dropped.
- ``dedup``: a row whose key columns equal an earlier row's (after cleaning) is dropped; the
  first one stays.

Duplicates are found by a stable sort and a comparison of neighbours, not by a hash table of
every row: the browser runs this on a memory-mapped million-row file, and a hash table would
hold a copy of all the text. Columns that are already clean are used as they are (no copy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_SLICE = 1 << 16


@dataclass(frozen=True)
class CleanCounts:
    """Rows read, dropped as empty, dropped as duplicates, and kept."""

    read: int
    empty: int
    duplicate: int

    @property
    def kept(self) -> int:
        return self.read - self.empty - self.duplicate


def normalise(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """CRLF -> LF and surrounding whitespace stripped; returned as is when already so."""
    if _already_clean(col):
        return col
    return pc.utf8_trim_whitespace(pc.replace_substring(col, "\r\n", "\n"))


def _already_clean(col: pa.ChunkedArray | pa.Array) -> bool:
    """Checked slice by slice, so that a clean column costs no copy of its text."""
    for start in range(0, len(col), _SLICE):
        part = col.slice(start, _SLICE)
        if pc.any(pc.match_substring(part, "\r\n")).as_py():
            return False
        same = pc.equal(pc.utf8_trim_whitespace(part), part)
        if not pc.all(same).as_py():
            return False
    return True


def empty_mask(table: pa.Table, keys: list[str]) -> pa.ChunkedArray | None:
    """True where any key column is null or ""."""
    empty = None
    for c in keys:
        col = table.column(c)
        e = pc.or_kleene(pc.is_null(col), pc.equal(col, "")).fill_null(True)
        empty = e if empty is None else pc.or_(empty, e)
    return empty


def duplicate_mask(table: pa.Table, keys: list[str]) -> np.ndarray:
    """True for each row whose key columns equal an earlier row's (nulls equal nulls)."""
    n = table.num_rows
    dup = np.zeros(n, dtype=bool)
    if n < 2 or not keys:
        return dup
    sub = table.select(keys)
    # A stable sort keeps equal rows in file order, so the first of each run is the one kept.
    order = pc.sort_indices(sub, sort_keys=[(k, "ascending") for k in keys])
    order_np = order.to_numpy()
    for start in range(0, n - 1, _SLICE):
        rows = sub.take(order.slice(start, _SLICE + 1))
        same = None
        for k in keys:
            col = rows.column(k).combine_chunks()
            a, b = col.slice(1), col.slice(0, len(col) - 1)
            eq = pc.or_(pc.equal(a, b).fill_null(False), pc.and_(pc.is_null(a), pc.is_null(b)))
            same = eq if same is None else pc.and_(same, eq)
        assert same is not None
        hits = np.flatnonzero(same.to_numpy(zero_copy_only=False))
        dup[order_np[start + 1 + hits]] = True
    return dup


def clean_table(table: pa.Table, keys: list[str], clean: bool, dedup: bool
                ) -> tuple[pa.Table, CleanCounts]:
    """``table`` with the rules applied to ``keys`` (other columns ride along untouched)."""
    n0 = table.num_rows
    if clean:
        for c in keys:
            table = table.set_column(table.column_names.index(c), c, normalise(table.column(c)))
    n_empty = 0
    if clean:
        empty = empty_mask(table, keys)
        n_empty = (pc.sum(empty).as_py() or 0) if empty is not None else 0
        if n_empty:
            table = table.filter(pc.invert(empty))
    n_dup = 0
    if dedup and table.num_rows:
        dup = duplicate_mask(table, keys)
        n_dup = int(dup.sum())
        if n_dup:
            table = table.filter(pa.array(~dup))
    return table, CleanCounts(n0, int(n_empty), n_dup)


def clean_counts(table: pa.Table, keys: list[str], clean: bool = True, dedup: bool = True
                 ) -> CleanCounts:
    """What ``clean_table`` would drop, for the browser: only the key columns are touched."""
    keys = [k for k in dict.fromkeys(keys) if k in table.column_names]
    if not keys:
        return CleanCounts(table.num_rows, 0, 0)
    sub = table.select(keys)
    for c in keys:
        if not pa.types.is_string(sub.column(c).type):
            sub = sub.set_column(keys.index(c), c, pc.cast(sub.column(c), pa.string()))
    return clean_table(sub, keys, clean, dedup)[1]
