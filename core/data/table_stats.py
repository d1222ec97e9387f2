"""What a table holds, before training: columns, sizes, label balance, lengths, mess.

The dataset browser's statistics, computed over a (memory-mapped) Arrow table in slices so that
the extra memory is a few bytes a row, not a copy of the text. Empty rows, duplicates and the
rows kept are counted by ``cleaning``, the code training cleans with. No torch, no ``datasets``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

from tunedeck.core.data.cleaning import clean_counts

Progress = Callable[[float], None]
Cancelled = Callable[[], bool]
STATS_SLICE = 65536


def type_name(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_dictionary(t):
        return f"category<{type_name(t.value_type)}>"
    return str(t)


TEXT_NAMES = ("text", "sms", "sentence", "content", "body", "document", "review", "message",
              "prompt", "input", "question")
LABEL_NAMES = ("label", "labels", "category", "class", "target", "sentiment", "intent", "y")


def is_text_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def guess_columns(table: pa.Table, text: str | None = None, label: str | None = None
                  ) -> tuple[str | None, str | None]:
    """(text column, label column): the asked names if present, else good guesses."""
    names = table.column_names
    lower = {n.lower(): n for n in names}
    t = text if text in names else next((lower[n] for n in TEXT_NAMES if n in lower), None)
    lab = label if label in names else next((lower[n] for n in LABEL_NAMES if n in lower), None)
    sample = table.slice(0, 2000)
    if t is None:
        best = -1.0
        for f in table.schema:
            if is_text_type(f.type) and f.name != lab:
                m = pc.mean(pc.utf8_length(sample.column(f.name))).as_py() or 0
                if m > best:
                    best, t = m, f.name
    if lab is None:
        for f in table.schema:
            if f.name == t:
                continue
            if is_text_type(f.type) or pa.types.is_integer(f.type) or pa.types.is_boolean(f.type):
                n = pc.count_distinct(sample.column(f.name)).as_py()
                if 1 < n <= 50 and n < max(2, sample.num_rows // 2):
                    lab = f.name
                    break
    return t, lab


@dataclass
class Stats:
    num_rows: int
    columns: list[tuple[str, str]]
    text_column: str | None
    label_column: str | None
    empty_text: int = 0
    missing_label: int = 0
    duplicates: int = 0  # training's rule: same text and label after cleaning
    dropped_empty: int = 0  # rows training drops for an empty text or label
    kept: int = 0  # rows training keeps (before splitting)
    nulls: dict[str, int] = field(default_factory=dict)
    labels: list[tuple[str, int]] = field(default_factory=list)  # most common first
    n_labels: int = 0
    labels_merged: int = 0  # spellings that differ only in surrounding whitespace, counted together
    length: dict[str, float] = field(default_factory=dict)  # min, mean, p50, p90, p99, max
    length_hist: list[tuple[int, int, int]] = field(default_factory=list)  # lo, hi, count
    # The other text columns' lengths (a response next to a prompt counts against max_length too).
    other_lengths: dict[str, dict[str, float]] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)
    token_hist: list[tuple[int, int, int]] = field(default_factory=list)
    tokenizer: str | None = None


def compute_stats(table: pa.Table, text_col: str | None, label_col: str | None,
                  progress: Progress | None = None, cancelled: Cancelled | None = None) -> Stats:
    """Counts a user wants before training: types, sizes, balance, lengths, mess.

    Works through the (memory-mapped) table in slices so that the extra memory is a few bytes a
    row (lengths, sort order), not a copy of the text."""
    progress = progress or (lambda f: None)
    st = Stats(table.num_rows, [(f.name, type_name(f.type)) for f in table.schema], text_col, label_col)
    n = table.num_rows
    if n == 0:
        return st
    lengths_parts: list[pa.Array] = []
    empty = missing = 0
    for start in range(0, n, STATS_SLICE):
        if cancelled and cancelled():
            return st
        part = table.slice(start, STATS_SLICE)
        if text_col:
            col = part.column(text_col)
            if not is_text_type(col.type):
                col = pc.cast(col, pa.string(), safe=False)
            col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0)
            empty += pc.sum(pc.or_kleene(pc.is_null(col), blank).fill_null(True)).as_py() or 0
            lengths_parts.append(pc.cast(pc.utf8_length(col).fill_null(0), pa.int32()))
        if label_col:
            lab = part.column(label_col)
            missing += lab.null_count
            if is_text_type(lab.type):
                missing += pc.sum(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(lab)), 0)
                                  .fill_null(False)).as_py() or 0
        progress(0.4 * min(1.0, (start + STATS_SLICE) / n))
    st.empty_text = int(empty)
    st.missing_label = int(missing)
    for f in table.schema:
        st.nulls[f.name] = table.column(f.name).null_count
    if label_col:
        _label_balance(st, table.column(label_col))
    progress(0.5)
    if lengths_parts:
        st.length, st.length_hist = length_summary(pa.chunked_array(lengths_parts, pa.int32()))
        del lengths_parts
    others = [f.name for f in table.schema
              if is_text_type(f.type) and f.name not in (text_col, label_col)][:3]
    for name in others:
        lens = pc.cast(pc.utf8_length(table.column(name)).fill_null(0), pa.int32())
        st.other_lengths[name] = length_summary(lens)[0]
    progress(0.6)
    counts = clean_counts(table, [c for c in (text_col, label_col) if c])
    st.duplicates, st.dropped_empty, st.kept = counts.duplicate, counts.empty, counts.kept
    progress(1.0)
    pa.default_memory_pool().release_unused()
    return st



def _label_balance(st: Stats, col: pa.ChunkedArray) -> None:
    """Label counts, most common first; as training's cleaning does, "billing " is "billing"
    and a blank label is missing."""
    try:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            raw_n = len(pc.unique(col))
            col = pc.utf8_trim_whitespace(col)
            vc = [d for d in pc.value_counts(col).to_pylist() if d["values"]]
            st.labels_merged = max(0, raw_n - len(pc.unique(col)))
        else:
            vc = [d for d in pc.value_counts(col).to_pylist() if d["values"] is not None]
    except pa.ArrowNotImplementedError:
        return
    vc.sort(key=lambda d: -d["counts"])
    st.n_labels = len(vc)
    st.labels = [(str(d["values"]), int(d["counts"])) for d in vc[:30]]


def length_summary(lens: pa.ChunkedArray | pa.Array, bins: int = 12
             ) -> tuple[dict[str, float], list[tuple[int, int, int]]]:
    mm = pc.min_max(lens).as_py()
    qs = pc.quantile(lens, q=[0.5, 0.9, 0.99], interpolation="nearest").to_pylist()
    summary = {"min": mm["min"], "mean": pc.mean(lens).as_py(), "p50": qs[0], "p90": qs[1],
               "p99": qs[2], "max": mm["max"]}
    hi = max(1, int(qs[2] or 0) or int(mm["max"] or 1))
    width = _nice_width(hi / bins)
    idx = pc.min_element_wise(pc.divide(pc.cast(lens, pa.int64()), width), bins - 1)
    counts = {d["values"]: d["counts"] for d in pc.value_counts(idx).to_pylist()}
    hist = [(i * width, (i + 1) * width if i < bins - 1 else int(mm["max"] or 0), counts.get(i, 0))
            for i in range(bins)]
    while hist and hist[-1][2] == 0:
        hist.pop()
    return summary, hist


def _nice_width(x: float) -> int:
    if x <= 1:
        return 1
    mag = 10 ** math.floor(math.log10(x))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= x:
            return int(math.ceil(m * mag))
    return int(math.ceil(x))
