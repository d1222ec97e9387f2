"""CSV/TSV with pyarrow: the one set of parse options training and the browser both use.

``read_delimited`` parses a whole (UTF-8) file for training; ``stream_delimited`` parses the same
file block by block for the browser, with the same dialect and options. Rows are read as strings
exactly as written ("NA", "007" and "" stay text). A row with the wrong number of fields is an
error naming its line, in both: skipping it silently would train on less than the user sees.
Blank lines are skipped in both.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from tunedeck.core.data.formats import SNIFF_BYTES, Dialect, sniff_dialect
from tunedeck.core.errors import DataError

CSV_BLOCK = 1 << 24  # pyarrow's parse block; a longer row triggers one whole-file block
_NOT_SPACE = np.ones(256, dtype=bool)  # byte -> "is not ASCII whitespace", a lookup table
_NOT_SPACE[[9, 10, 11, 12, 13, 32]] = False


def dialect_of(body: bytes, fmt: str, size: int) -> Dialect:
    """The dialect of a UTF-8 file (no BOM) whose first bytes are ``body`` and length ``size``."""
    head = body[:SNIFF_BYTES].decode("utf-8", errors="ignore")
    dialect = sniff_dialect(head, fmt, partial=size > SNIFF_BYTES)
    return dialect


def csv_options(dialect: Dialect, block: int, invalid: list[pa_csv.InvalidRow]
                ) -> tuple[pa_csv.ReadOptions, pa_csv.ParseOptions, pa_csv.ConvertOptions]:
    """pyarrow options for ``dialect``; malformed rows are collected in ``invalid``."""

    def on_invalid(row: pa_csv.InvalidRow) -> str:
        if not row.text.strip():
            return "skip"  # a whitespace-only line, like an empty one
        invalid.append(row)
        return "error"

    names = list(dialect.column_names)
    read = pa_csv.ReadOptions(block_size=block, column_names=names,
                              skip_rows=1 if dialect.header else 0)
    parse = pa_csv.ParseOptions(delimiter=dialect.delimiter,
                                quote_char='"' if dialect.quoted else False,
                                newlines_in_values=dialect.quoted, invalid_row_handler=on_invalid)
    convert = pa_csv.ConvertOptions(column_types={h: pa.string() for h in names},
                                    strings_can_be_null=False, quoted_strings_can_be_null=False)
    return read, parse, convert


def read_delimited(data: bytes, p: Path, fmt: str) -> tuple[pa.Table, np.ndarray, str]:
    """A whole UTF-8 CSV/TSV (no BOM): its table, the line each row starts on, and the unit."""
    dialect = dialect_of(data, fmt, len(data))
    names = dialect.column_names
    dupes = sorted({h for h in names if names.count(h) > 1})
    if dupes:
        raise DataError(f"{p}:1: column name {dupes[0]!r} appears more than once in the header; "
                        "rename the columns so that each is unique")
    # pyarrow parses in blocks and cannot split a row across two; a row longer than a block (a
    # whole document in one cell) needs one block for the whole file.
    for block in (CSV_BLOCK, min(len(data) + 1, 2**31 - 1)):
        bad: list[pa_csv.InvalidRow] = []
        read, parse, convert = csv_options(dialect, block, bad)
        try:
            table = pa_csv.read_csv(pa.BufferReader(data), read_options=read,
                                    parse_options=parse, convert_options=convert)
            break
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            if bad:
                raise _ragged_error(data, p, dialect, bad[0]) from None
            if "straddl" in str(e) and block < len(data) + 1:
                continue
            kind = "TSV" if dialect.delimiter == "\t" else "CSV"
            raise DataError(f"{p}: cannot be read as {kind} ({e}); fix the file or set "
                            "data.format") from None
    if table.num_rows == 0:
        raise DataError(f"{p}: has a header ({', '.join(names)}) but no rows; add data rows")
    rows, unit = _record_lines(data, table.num_rows, dialect)
    return table, rows, unit


def _ragged_error(data: bytes, p: Path, dialect: Dialect, row: pa_csv.InvalidRow) -> DataError:
    line = line_of(data, row.text)
    where = f"{p}:{line}" if line else f"{p} (row {row.number or '?'})"
    if not dialect.quoted:
        hint = "a value contains a tab, or the line is cut short"
    elif row.text.count('"') % 2:
        hint = "a double quote opened on this line is never closed"
    else:
        d = dialect.delimiter
        hint = f'put values that contain "{d}" in double quotes ("a{d} b")'
    fields = f"{row.actual_columns} field{'s' if row.actual_columns != 1 else ''}"
    what = "the header has" if dialect.header else "the first row has"
    return DataError(f"{where}: has {fields} but {what} {row.expected_columns} "
                     f"({', '.join(dialect.column_names)}); {hint}")


def stream_delimited(f: BinaryIO, body_head: bytes, size: int, fmt: str,
                     block: int) -> Iterator[pa.RecordBatch]:
    """Batches of a UTF-8 CSV/TSV read from ``f`` (positioned after any BOM).

    Same dialect and options as ``read_delimited``; any failure raises ``StreamFailed`` so the
    caller can ask ``read_delimited`` for the exact message.
    """
    dialect = dialect_of(body_head, fmt, size)
    bad: list[pa_csv.InvalidRow] = []
    read, parse, convert = csv_options(dialect, block, bad)
    reader = None
    try:
        reader = pa_csv.open_csv(_NoNul(f), read_options=read, parse_options=parse,
                                 convert_options=convert)
        yield from reader
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as e:
        raise StreamFailed(str(e)) from None
    finally:
        # pyarrow reads ahead on its own thread, calling back into the Python file: an
        # unclosed reader at interpreter exit can abort the process ("terminate called
        # without an active exception", seen twice from `tunedeck data convert`).
        if reader is not None:
            reader.close()


class StreamFailed(Exception):
    """The streamed parse failed; the whole-file reader says why, in the user's terms."""


class _NoNul:
    """A read-only file that fails on a NUL byte, as the whole-file reader refuses those."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        chunk = self._f.read(n)
        if b"\x00" in chunk:
            raise ValueError("NUL byte")
        return chunk

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        self.closed = True


def line_of(data: bytes, text: str) -> int | None:
    """The line where ``text`` first occurs in ``data`` (for rows pyarrow reports unnumbered)."""
    idx = data.find(text.encode("utf-8"))
    return data.count(b"\n", 0, idx) + 1 if idx >= 0 else None


def nonblank_lines(data: bytes) -> np.ndarray:
    """1-based numbers of the lines that hold more than whitespace, vectorised."""
    arr = np.frombuffer(data, dtype=np.uint8)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(arr == 10) + 1))
    starts = starts[starts < arr.size]
    not_space = _NOT_SPACE[arr]
    has_content = np.logical_or.reduceat(not_space, starts)
    return np.flatnonzero(has_content).astype(np.int64) + 1


def _record_lines(data: bytes, n: int, dialect: Dialect) -> tuple[np.ndarray, str]:
    """The line each record starts on.

    Fast path: when non-blank lines are exactly (header +) records, record i is non-blank line
    i (+ 1). Otherwise (multi-line quoted values) walk the file with the csv module, skipping the
    lines pyarrow skips; if even that disagrees, fall back to record numbers.
    """
    lines = nonblank_lines(data)
    skip = 1 if dialect.header else 0
    if lines.size == n + skip:
        return lines[skip:], "line"
    csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, 2**31 - 1)))
    starts: list[int] = []
    prev, to_skip = 0, skip
    width = len(dialect.column_names)
    try:
        reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""),
                            delimiter=dialect.delimiter, quoting=dialect.quoting)
        for rec in reader:
            start, prev = prev + 1, reader.line_num
            if not rec or (len(rec) != width and not any(f.strip() for f in rec)):
                continue
            if to_skip:
                to_skip -= 1
                continue
            starts.append(start)
    except csv.Error:
        starts = []
    if len(starts) == n:
        return np.asarray(starts, dtype=np.int64), "line"
    return np.arange(1, n + 1, dtype=np.int64), "record"
