"""Torch-free data reading for the dataset browser, on pyarrow.

Every format is streamed batch by batch into an uncompressed Arrow IPC file in a scratch folder
and then memory-mapped, so that:

- the first rows can be shown as soon as the first batch is parsed (well under a second),
- paging anywhere in a million rows is a zero-copy slice of the mapped file (microseconds),
- resident memory does not grow with the file: only the pages on screen are touched, and the
  mapped pages belong to the page cache, not to this process' heap.

``datasets`` ``save_to_disk`` folders are Arrow IPC already and are mapped in place.

Nothing here imports torch, ``datasets`` or ``transformers``; ``tokenizers`` is imported only
when the user asks for token lengths.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from tunedeck.core.errors import DataError
from tunedeck.tui.quick_head import (FORMATS, _arrow_files, _has_header, _head_bytes,  # noqa: F401
                            dataset_splits, sniff_format)

BLOCK = 1 << 20  # bytes per parsed block: ~10k rows of short text, parsed in a few ms
TEXT_BATCH = 65536

Progress = Callable[[float], None]
Cancelled = Callable[[], bool]


# Format detection lives in tunedeck.tui.quick_head (no pyarrow there).


# --- the opened table ---------------------------------------------------------------------

class TableSource:
    """Rows for the virtual table: an Arrow table plus an optional index of matching rows."""

    def __init__(self, table: pa.Table, indices: pa.Array | None = None, complete: bool = True):
        self.table = table
        self.indices = indices
        self.complete = complete

    @property
    def num_rows(self) -> int:
        return len(self.indices) if self.indices is not None else self.table.num_rows

    @property
    def column_names(self) -> list[str]:
        return list(self.table.column_names)

    def source_row(self, i: int) -> int:
        """The row number in the file of view row ``i``."""
        return int(self.indices[i].as_py()) if self.indices is not None else i

    def rows(self, start: int, stop: int) -> list[tuple[Any, ...]]:
        start, stop = max(0, start), min(stop, self.num_rows)
        if stop <= start:
            return []
        if self.indices is None:
            part = self.table.slice(start, stop - start)
        else:
            part = self.table.take(self.indices.slice(start, stop - start))
        cols = [c.to_pylist() for c in part.columns]
        return list(zip(*cols)) if cols else [() for _ in range(stop - start)]

    def row(self, i: int) -> dict[str, Any]:
        r = self.rows(i, i + 1)
        return dict(zip(self.column_names, r[0])) if r else {}


@dataclass
class Opened:
    """A data file opened for browsing."""

    path: Path
    format: str
    table: pa.Table
    complete: bool = True
    skipped_rows: int = 0
    notes: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    split: str | None = None
    scratch: Path | None = None  # our Arrow copy (None when the file was mapped in place)

    def close(self) -> None:
        """Forget the table and delete our copy (the mapping goes when the table is collected)."""
        self.table = pa.table({})
        if self.scratch is not None:
            self.scratch.unlink(missing_ok=True)
            self.scratch = None

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def column_types(self) -> list[tuple[str, str]]:
        return [(f.name, _type_name(f.type)) for f in self.table.schema]


def _type_name(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_dictionary(t):
        return f"category<{_type_name(t.value_type)}>"
    return str(t)


class Loader:
    """Streams a data file into a memory-mapped Arrow file.

    ``run()`` yields progress fractions; ``head`` holds the first batch as soon as it is parsed,
    and ``result`` the complete, mapped table when ``run()`` is exhausted. Errors a user can
    cause are ``DataError`` naming the file (and line where known).
    """

    def __init__(self, path: str | os.PathLike[str], scratch: Path, fmt: str | None = None,
                 split: str | None = None):
        self.path = Path(path).expanduser()
        self.scratch = Path(scratch)
        if not self.path.exists():
            raise DataError(f"{self.path}: no such file or folder")
        self.format = fmt or sniff_format(self.path)
        if self.format not in FORMATS:
            raise DataError(f"{self.path}: unknown format {self.format!r}; one of {', '.join(FORMATS)}")
        self.split = split
        self.splits: list[str] = []
        self.head: pa.Table | None = None
        self.result: Opened | None = None
        self.skipped = 0
        self.notes: list[str] = []
        self.cancelled: Cancelled = lambda: False

    # Public --------------------------------------------------------------------------------

    def run(self) -> Iterator[float]:
        if self.format == "arrow":
            yield from self._open_arrow()
            return
        try:
            yield from self._convert()
        except DataError:
            raise
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            raise DataError(f"{self.path}: cannot be read as {self.format}: {_short(e)}") from None
        except UnicodeDecodeError as e:
            raise DataError(f"{self.path}: not UTF-8 text (byte {e.start})") from None
        except OSError as e:
            raise DataError(f"{self.path}: cannot be read ({e.strerror or e})") from None

    def load(self, progress: Progress | None = None) -> Opened:
        for frac in self.run():
            if progress:
                progress(frac)
        assert self.result is not None
        return self.result

    # Formats -------------------------------------------------------------------------------

    def _open_arrow(self) -> Iterator[float]:
        path = self.path
        if path.is_dir():
            self.splits = dataset_splits(path)
            if self.splits:
                name = self.split if self.split in self.splits else (
                    "train" if "train" in self.splits else self.splits[0])
                self.split = name
                path = path / name
            files = _arrow_files(path)
            if not files:
                raise DataError(f"{path}: no .arrow files in this save_to_disk folder")
        else:
            files = [path]
        tables = []
        for i, f in enumerate(files):
            tables.append(_map_arrow(f))
            if i == 0:
                self.head = tables[0].slice(0, 1000)
            yield (i + 1) / len(files)
        try:
            table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        except pa.ArrowInvalid as e:
            raise DataError(f"{path}: its .arrow files do not share one schema: {_short(e)}") from None
        self.result = Opened(self.path, "arrow", table, True, 0, self.notes, self.splits, self.split)

    def _convert(self) -> Iterator[float]:
        self.scratch.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="browse-", suffix=".arrow", dir=self.scratch)
        os.close(fd)
        dest = Path(tmp)
        strings_only = latin1 = False
        try:
            for _ in range(3):
                try:
                    yield from self._write(dest, strings_only, latin1)
                    break
                except pa.ArrowInvalid as e:
                    msg = str(e).lower()
                    if ("utf8" in msg or "utf-8" in msg) and self.format in ("csv", "tsv") and not latin1:
                        latin1 = True
                        self.notes.append("not valid UTF-8: read as Latin-1")
                    elif (not strings_only and self.format in ("csv", "tsv", "jsonl")
                          and any(w in msg for w in ("conversion error", "schema", "type"))):
                        # Types inferred from the first block do not hold further down.
                        strings_only = True
                        self.notes.append("column types vary down the file: every column read as text")
                    else:
                        raise
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        table = _map_arrow(dest)
        if table.num_rows == 0 and not table.num_columns:
            raise DataError(f"{self.path}: no rows")
        self.result = Opened(self.path, self.format, table, True, self.skipped, self.notes, scratch=dest)

    def _write(self, dest: Path, strings_only: bool, latin1: bool) -> Iterator[float]:
        self.skipped = 0
        writer = None
        size = max(1, self.path.stat().st_size)
        try:
            for batch, done in self._batches(strings_only, latin1, size):
                if self.cancelled():
                    raise DataError(f"{self.path}: loading cancelled")
                if (not latin1 and self.format in ("csv", "tsv")
                        and any(pa.types.is_binary(f.type) for f in batch.schema)):
                    # pyarrow reads text that is not UTF-8 as bytes; read it as Latin-1 instead.
                    raise pa.ArrowInvalid("invalid UTF8 data")
                if self.head is None or (strings_only and writer is None):
                    self.head = pa.Table.from_batches([batch])
                if writer is None:
                    writer = pa.ipc.new_file(str(dest), batch.schema)
                if batch.num_rows:
                    writer.write_batch(batch)
                yield min(done, 0.999)
            if writer is None:
                raise DataError(f"{self.path}: empty file (no rows)")
        finally:
            if writer is not None:
                writer.close()
        yield 1.0

    def _batches(self, strings_only: bool, latin1: bool, size: int
                 ) -> Iterator[tuple[pa.RecordBatch, float]]:
        fmt = self.format
        if fmt in ("csv", "tsv"):
            yield from self._csv_batches(strings_only, latin1, size)
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            try:
                pf = pq.ParquetFile(self.path)
            except pa.ArrowInvalid as e:
                raise DataError(f"{self.path}: not a Parquet file: {_short(e)}") from None
            total = max(1, pf.metadata.num_rows)
            if self.head is None and total > 2000:
                # A small first read so the first rows show before a whole batch is decoded.
                self.head = pa.Table.from_batches([next(pf.iter_batches(batch_size=1000))])
                yield pa.RecordBatch.from_pylist([], schema=self.head.schema), 0.0
            seen = 0
            for b in pf.iter_batches(batch_size=TEXT_BATCH):
                seen += b.num_rows
                yield b, seen / total
        elif fmt == "jsonl":
            yield from self._jsonl_batches(strings_only, size)
        elif fmt == "json":
            yield from self._json_array_batches(strings_only)
        elif fmt == "text":
            yield from self._text_batches(size)
        else:  # pragma: no cover
            raise DataError(f"{self.path}: unsupported format {fmt}")

    def _csv_batches(self, strings_only: bool, latin1: bool, size: int):
        import pyarrow.csv as pcsv

        delim = "\t" if self.format == "tsv" else ","
        head = _head_bytes(self.path).decode("latin-1" if latin1 else "utf-8", errors="replace")
        first = head.splitlines()[0] if head.strip() else ""
        if self.format == "csv" and first.count(";") > first.count(","):
            delim = ";"
        if not first.strip():
            raise DataError(f"{self.path}: empty file (no header, no rows)")
        header = _has_header(first, delim)
        names = next(csv.reader([first], delimiter=delim), [])
        if not header:
            self.notes.append("no header row detected: columns named col0, col1, ...")
            names = [f"col{i}" for i in range(len(names))]

        def on_bad(row: Any) -> str:
            self.skipped += 1
            return "skip"

        ropts = pcsv.ReadOptions(block_size=BLOCK, column_names=names,
                                 skip_rows=1 if header else 0,
                                 encoding="latin-1" if latin1 else "utf8")
        # TSV files such as SMSSpamCollection hold bare quotes inside fields: no quoting there.
        popts = pcsv.ParseOptions(delimiter=delim, quote_char='"' if delim != "\t" else False,
                                  newlines_in_values=delim != "\t", invalid_row_handler=on_bad)
        copts = pcsv.ConvertOptions(
            column_types={n: pa.string() for n in names} if strings_only else None,
            strings_can_be_null=False, quoted_strings_can_be_null=False)
        f = open(self.path, "rb")
        try:
            reader = pcsv.open_csv(f, read_options=ropts, parse_options=popts, convert_options=copts)
            any_batch = False
            for b in reader:
                any_batch = True
                yield b, f.tell() / size
            if not any_batch and header:  # a header and no rows: show the columns, 0 rows
                self.notes.append("a header and no data rows")
                yield pa.RecordBatch.from_pylist([], schema=pa.schema([(n, pa.string()) for n in names])), 1.0
        finally:
            f.close()

    def _jsonl_batches(self, strings_only: bool, size: int):
        if not strings_only:
            import pyarrow.json as pjson

            f = open(self.path, "rb")
            try:
                try:
                    reader = pjson.open_json(f, read_options=pjson.ReadOptions(block_size=BLOCK))
                    for b in reader:
                        yield b, f.tell() / size
                    return
                except pa.ArrowInvalid as e:
                    if "JSON parse error" in str(e) or "Invalid value" in str(e):
                        _raise_bad_jsonl(self.path)
                    raise
            finally:
                f.close()
        # Types differ between blocks: read line by line, every value as text.
        yield from self._rows_as_text(_iter_jsonl(self.path), size)

    def _json_array_batches(self, strings_only: bool):
        try:
            with open(self.path, "rb") as f:
                data = json.load(f)
        except ValueError as e:
            raise DataError(f"{self.path}: not valid JSON: {e}") from None
        if isinstance(data, dict):
            # {"data": [...]} or {"col": [values...]}
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) == 1 and all(isinstance(r, dict) for r in lists[0]):
                data = lists[0]
            elif lists and all(isinstance(v, list) for v in data.values()):
                data = [dict(zip(data, vals)) for vals in zip(*data.values())]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataError(f"{self.path}: expected a JSON array of objects (one per row)")
        total = max(1, len(data))

        def gen():
            for i, r in enumerate(data):
                yield r, (i + 1) / total

        if strings_only:
            yield from self._rows_as_text(gen(), None)
            return
        schema = None
        for i in range(0, len(data), TEXT_BATCH):
            chunk = data[i: i + TEXT_BATCH]
            t = pa.Table.from_pylist(chunk, schema=schema)
            schema = schema or t.schema
            for b in t.to_batches():
                yield b, min(1.0, (i + len(chunk)) / total)

    def _rows_as_text(self, rows: Iterator[tuple[dict[str, Any], float]], size: int | None):
        cols: list[str] | None = None
        buf: list[dict[str, Any]] = []
        done = 0.0
        for row, done in rows:
            if cols is None:
                cols = list(row)
            buf.append(row)
            if len(buf) >= TEXT_BATCH:
                yield _text_batch(buf, cols), done
                buf = []
        if cols is None:
            raise DataError(f"{self.path}: empty file (no rows)")
        if buf:
            yield _text_batch(buf, cols), done

    def _text_batches(self, size: int):
        with open(self.path, "rb") as f:
            lines: list[str] = []
            for raw in f:
                lines.append(raw.rstrip(b"\r\n").decode("utf-8", errors="replace"))
                if len(lines) >= TEXT_BATCH:
                    yield pa.record_batch({"text": pa.array(lines, pa.string())}), f.tell() / size
                    lines = []
            if lines or f.tell() == 0:
                if not lines:
                    raise DataError(f"{self.path}: empty file (no lines)")
                yield pa.record_batch({"text": pa.array(lines, pa.string())}), 1.0


def _text_batch(rows: list[dict[str, Any]], cols: list[str]) -> pa.RecordBatch:
    def s(v: Any) -> str | None:
        if v is None or isinstance(v, str):
            return v
        return json.dumps(v, ensure_ascii=False)

    return pa.record_batch({c: pa.array([s(r.get(c)) for r in rows], pa.string()) for c in cols})


def _iter_jsonl(path: Path) -> Iterator[tuple[dict[str, Any], float]]:
    size = max(1, path.stat().st_size)
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError as e:
                raise DataError(f"{path}:{n}: not a JSON object ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
            yield obj, f.tell() / size


def _raise_bad_jsonl(path: Path) -> None:
    for _ in _iter_jsonl(path):
        pass
    raise DataError(f"{path}: not valid JSON lines")


def _map_arrow(path: Path) -> pa.Table:
    """Memory-map an Arrow IPC file or stream (zero-copy: nothing is read until touched)."""
    try:
        src = pa.memory_map(str(path), "r")
    except OSError as e:
        raise DataError(f"{path}: cannot be opened ({e})") from None
    try:
        return pa.ipc.open_file(src).read_all()
    except pa.ArrowInvalid:
        src.seek(0)
    try:
        return pa.ipc.open_stream(src).read_all()
    except pa.ArrowInvalid as e:
        raise DataError(f"{path}: not an Arrow IPC file or stream: {_short(e)}") from None


def _short(e: Exception) -> str:
    s = str(e).strip().splitlines()
    return s[0][:300] if s else type(e).__name__


# --- looking at the data ------------------------------------------------------------------

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
    duplicates: int = 0
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
    st = Stats(table.num_rows, [(f.name, _type_name(f.type)) for f in table.schema], text_col, label_col)
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
        try:
            col = table.column(label_col)
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                # As training's cleaning does: "billing " is "billing"; a blank label is missing.
                raw_n = len(pc.unique(col))
                col = pc.utf8_trim_whitespace(col)
                vc = [d for d in pc.value_counts(col).to_pylist() if d["values"]]
                st.labels_merged = max(0, raw_n - len(pc.unique(col)))
            else:
                vc = [d for d in pc.value_counts(col).to_pylist() if d["values"] is not None]
            vc.sort(key=lambda d: -d["counts"])
            st.n_labels = len(vc)
            st.labels = [(str(d["values"]), int(d["counts"])) for d in vc[:30]]
        except pa.ArrowNotImplementedError:
            pass
    progress(0.5)
    if lengths_parts:
        st.length, st.length_hist = _summary(pa.chunked_array(lengths_parts, pa.int32()))
        del lengths_parts
    others = [f.name for f in table.schema
              if is_text_type(f.type) and f.name not in (text_col, label_col)][:3]
    for name in others:
        lens = pc.cast(pc.utf8_length(table.column(name)).fill_null(0), pa.int32())
        st.other_lengths[name] = _summary(lens)[0]
    progress(0.6)
    st.duplicates = _duplicates(table, cancelled, lambda f: progress(0.6 + 0.4 * f))
    progress(1.0)
    pa.default_memory_pool().release_unused()
    return st


STATS_SLICE = 65536


def _duplicates(table: pa.Table, cancelled: Cancelled | None = None,
                progress: Progress | None = None) -> int:
    """Rows equal to another row: sort (8 bytes a row of order), then compare neighbours slice by
    slice. A hash table of every distinct row would hold a copy of all the text."""
    keys = [f.name for f in table.schema if _hashable(f.type)]
    if not keys or table.num_rows < 2:
        return 0
    sub = table.select(keys)
    try:
        order = pc.sort_indices(sub, sort_keys=[(k, "ascending") for k in keys])
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return 0
    n = len(order)
    dups = 0
    for start in range(0, n - 1, STATS_SLICE):
        if cancelled and cancelled():
            break
        rows = sub.take(order.slice(start, STATS_SLICE + 1))
        same = None
        for k in keys:
            col = rows.column(k)
            col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            eq = pc.equal(col.slice(1), col.slice(0, len(col) - 1))
            # two nulls in the same place count as equal
            both_null = pc.and_(pc.is_null(col.slice(1)), pc.is_null(col.slice(0, len(col) - 1)))
            eq = pc.or_(eq.fill_null(False), both_null)
            same = eq if same is None else pc.and_(same, eq)
        dups += pc.sum(same).as_py() or 0
        if progress:
            progress(min(1.0, (start + STATS_SLICE) / n))
    return int(dups)


def _hashable(t: pa.DataType) -> bool:
    return not (pa.types.is_nested(t) or pa.types.is_dictionary(t) or pa.types.is_null(t))


def _summary(lens: pa.ChunkedArray | pa.Array, bins: int = 12
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


def _tokenizer_file(ref: str) -> Path:
    """tokenizer.json for a file, a model folder (or one holding a model a level down), or a hub
    id that is packaged (the MiniLM package) or already in the local Hugging Face cache; never a
    download. The model lookup is training's own (tunedeck.core.models.resolve_model_path)."""
    from tunedeck.core.errors import ModelError
    from tunedeck.core.models import resolve_model_path

    p = Path(ref).expanduser()
    if p.is_file():
        return p
    if (p / "tokenizer.json").is_file():
        return p / "tokenizer.json"
    try:
        found = Path(resolve_model_path(ref)) / "tokenizer.json"
        if found.is_file():
            return found
    except ModelError:
        pass
    if not p.exists():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(ref, "tokenizer.json")
            if isinstance(cached, str) and Path(cached).is_file():
                return Path(cached)
        except Exception:  # not a repo id, or no huggingface_hub: fall through to the message
            pass
    raise DataError(f"{p}: no tokenizer.json there; point at a model folder that has one, or a "
                    "hub id whose tokenizer is in the local cache")


def token_lengths(table: pa.Table, text_col: str, tokenizer_path: str, limit: int = 20000
                  ) -> tuple[dict[str, float], list[tuple[int, int, int]], str]:
    """Token-length summary over the first ``limit`` rows with a ``tokenizers`` tokenizer.json."""
    try:
        from tokenizers import Tokenizer
    except ImportError:  # pragma: no cover
        raise DataError("token lengths need the 'tokenizers' package") from None
    p = _tokenizer_file(tokenizer_path)
    try:
        tok = Tokenizer.from_file(str(p))
    except Exception as e:  # the Rust error types are not importable
        raise DataError(f"{p}: not a tokenizers file ({e})") from None
    # A saved tokenizer may carry fixed padding/truncation (MiniLM's pads every text to 128):
    # lengths must be the texts' own.
    tok.no_padding()
    tok.no_truncation()
    texts = [t or "" for t in table.column(text_col).slice(0, limit).to_pylist()]
    enc = tok.encode_batch([str(t) for t in texts], add_special_tokens=True)
    lens = pa.array([len(e.ids) for e in enc], pa.int64())
    summary, hist = _summary(lens)
    return summary, hist, str(p)


def split_preview(n_rows: int, fractions: list[float] | tuple[float, ...]) -> tuple[int, int, int]:
    """Rows per split for ``n_rows`` usable rows and [train, validation, test] fractions."""
    n_val = int(round(n_rows * fractions[1]))
    n_test = int(round(n_rows * fractions[2]))
    return n_rows - n_val - n_test, n_val, n_test


def filter_rows(table: pa.Table, needle: str, columns: list[str] | None = None,
                progress: Progress | None = None, cancelled: Cancelled | None = None) -> pa.Array:
    """Indices of rows where any (text) column contains ``needle``, ignoring case."""
    cols = columns or table.column_names
    out = []
    n = table.num_rows
    step = 262144
    for start in range(0, n, step):
        if cancelled and cancelled():
            break
        part = table.slice(start, step)
        mask = None
        for c in cols:
            col = part.column(c)
            if not is_text_type(col.type):
                try:
                    col = pc.cast(col, pa.string())
                except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
                    continue
            m = pc.match_substring(col, needle, ignore_case=True).fill_null(False)
            mask = m if mask is None else pc.or_(mask, m)
        if mask is not None:
            idx = pc.indices_nonzero(mask)
            if len(idx):
                out.append(pc.add(idx, pa.scalar(start, pa.uint64())))
        if progress:
            progress(min(1.0, (start + step) / max(1, n)))
    if not out:
        return pa.array([], pa.uint64())
    return pa.concat_arrays([a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in out])


def cell_text(v: Any) -> str:
    """One line for a table cell."""
    if v is None:
        return "∅"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        v = json.dumps(v, ensure_ascii=False, default=str)
    s = str(v)
    if "\n" in s or "\t" in s or "\r" in s:
        s = s.replace("\r\n", "⏎").replace("\n", "⏎").replace("\r", "⏎").replace("\t", " ")
    return s


def full_text(v: Any) -> str:
    if v is None:
        return "∅ (null)"
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False, indent=2, default=str)
    return str(v)


__all__ = ["FORMATS", "Loader", "Opened", "Stats", "TableSource", "cell_text", "compute_stats",
           "dataset_splits", "filter_rows", "full_text", "guess_columns", "sniff_format",
           "split_preview", "token_lengths"]

