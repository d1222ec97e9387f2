"""Read one data file into an Arrow table, or fail with one message a user can act on.

Why not ``datasets.load_dataset("csv", ...)``: it copies every file into a cache and reports
malformed input as a generic generation error without the line. Here each format is parsed by
pyarrow (fast, multithreaded) or, where a precise line number matters more than speed (JSON
Lines that pyarrow rejects), by the standard library; the result is wrapped in an Arrow-backed
``datasets.Dataset``. Every error is a ``DataError`` of the form ``FILE[:LINE]: what; fix``.

Files are only ever opened for reading, and never opened at all unless ``stat`` says they are
regular files: opening a FIFO would block forever and a device could be endless.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from datasets import ClassLabel, Dataset, DatasetDict, load_from_disk
from datasets.table import InMemoryTable

from tunedeck.core.data.sniff import FORMATS, SNIFF_BYTES, UNSUPPORTED, format_from_name, sniff_bytes
from tunedeck.core.errors import DataError

_BOM = b"\xef\xbb\xbf"
_TEXT_FORMATS = ("csv", "tsv", "json", "jsonl", "text")
_UTF8_CHUNK = 1 << 23
_CSV_BLOCK = 1 << 24  # pyarrow's parse block; a longer row triggers one whole-file block
_NOT_SPACE = np.ones(256, dtype=bool)  # byte -> "is not ASCII whitespace", a lookup table
_NOT_SPACE[[9, 10, 11, 12, 13, 32]] = False


@dataclass
class LoadedTable:
    """A file's rows plus what error messages need to point back into it.

    ``rows[i]`` is where row ``i`` came from, counted from 1, in ``unit``: "line" (a line of the
    file, so ``FILE:N`` works in an editor), "record" (a CSV with multi-line quoted values whose
    lines we could not map), "item" (an element of a JSON array) or "row" (Parquet/Arrow).
    """

    path: Path
    format: str
    table: pa.Table
    rows: np.ndarray
    unit: str
    digest: str  # content hash: lets callers cache work derived from this exact data
    class_names: dict[str, list[str]] = field(default_factory=dict)
    dataset: Dataset | None = None  # the memory-mapped original, for Arrow directories/files

    def where(self, i: int) -> str:
        """``FILE:LINE`` (or ``FILE (item N)``) for row ``i`` of the table."""
        n = int(self.rows[i])
        return f"{self.path}:{n}" if self.unit == "line" else f"{self.path} ({self.unit} {n})"


def load_table(path: str | os.PathLike[str], fmt: str = "auto") -> Dataset:
    """Load a data file (or a ``save_to_disk`` directory) as an Arrow-backed ``Dataset``.

    CSV/TSV columns are read as strings exactly as written ("NA", "007" and "" stay text);
    JSON keeps its own types. Raises ``DataError`` for anything a user must fix.
    """
    loaded = read_source(path, fmt)
    if loaded.dataset is not None:
        return loaded.dataset
    return Dataset(InMemoryTable(loaded.table))


def read_source(path: str | os.PathLike[str], fmt: str = "auto",
                key: str | None = None) -> LoadedTable:
    """Read ``path`` as ``fmt``; ``key`` (e.g. "data.train") is the profile key named in fixes."""
    p = Path(path)
    fix = f"check {key} in the profile" if key else "check the path"
    if fmt not in ("auto", *FORMATS):
        raise DataError(
            f"{p}: unknown format {fmt!r}; use one of auto, {', '.join(FORMATS)}"
            + (" (data.format)" if key else "")
        )
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise DataError(f"{p}: no such file; {fix}") from None
    except PermissionError:
        raise DataError(f"{p}: permission denied; make it readable or {fix}") from None
    except OSError as e:
        raise DataError(f"{p}: cannot be read ({e.strerror}); {fix}") from None

    if stat.S_ISDIR(st.st_mode):
        if fmt not in ("auto", "arrow"):
            raise DataError(f"{p}: is a directory, but the format is {fmt!r}; point {key or 'it'} "
                            "at a file, or use format 'arrow' for a datasets save_to_disk folder")
        return _read_arrow_dir(p, fix)
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{p}: is not a regular file (a FIFO, socket or device); {fix} and point "
                        "it at a data file")
    if st.st_size == 0:
        raise DataError(f"{p}: is empty (0 bytes); {fix}")

    if fmt == "auto":
        fmt = _format_from_name_or_error(p, fix)
    if fmt == "arrow":
        return _read_arrow_file(p, st)

    try:
        data = p.read_bytes()
    except OSError as e:
        raise DataError(f"{p}: cannot be read ({e.strerror}); {fix}") from None
    if fmt == "auto":
        sniffed = sniff_bytes(data[:SNIFF_BYTES])
        if sniffed is None:
            raise DataError(f"{p}: unknown format (binary content, no known extension); convert "
                            f"it to csv, jsonl or parquet, or set data.format to one of "
                            f"{', '.join(FORMATS)}")
        fmt = sniffed
        if fmt == "arrow":
            return _read_arrow_file(p, st)
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()

    if fmt == "parquet":
        table = _read_parquet(data, p)
        return LoadedTable(p, fmt, table, np.arange(1, table.num_rows + 1), "row", digest)

    _check_utf8(data, p)
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise DataError(f"{p}:{line}: contains a NUL byte (offset {nul}), so it is not a text "
                        "file (binary, or UTF-16?); re-save it as UTF-8 text or set data.format")
    body = data[len(_BOM):] if data.startswith(_BOM) else data
    if not body.strip():
        raise DataError(f"{p}: is empty (only whitespace); {fix}")
    if fmt in ("csv", "tsv"):
        table, rows, unit = _read_delimited(body, p, "\t" if fmt == "tsv" else ",")
    elif fmt == "json":
        table, rows, unit = _read_json(body, p)
        fmt = "jsonl" if unit == "line" else fmt  # it was JSON Lines under a .json name
    elif fmt == "jsonl":
        table, rows, unit = _read_jsonl(body, p)
    else:
        table, rows, unit = _read_text(body)
    if table.num_rows == 0:
        raise DataError(f"{p}: has no rows; {fix}")
    return LoadedTable(p, fmt, table, rows, unit, digest)


# --- format detection ---------------------------------------------------------------------

def _format_from_name_or_error(p: Path, fix: str) -> str:
    """The format by extension; "auto" (sniff later) when the extension says nothing."""
    suffix = p.suffix.lower()
    if suffix in UNSUPPORTED:
        raise DataError(f"{p}: unknown format: this looks like {UNSUPPORTED[suffix]}; convert it "
                        f"to csv, jsonl or parquet (tunedeck reads {', '.join(FORMATS)})")
    return format_from_name(p) or "auto"


# --- text checks --------------------------------------------------------------------------

def _check_utf8(data: bytes, p: Path) -> None:
    """Fail on the first byte that is not UTF-8, naming its line and offset.

    Decoding in chunks keeps memory flat on large files; a character split at a chunk edge is
    retried in the next chunk rather than reported.
    """
    start, n = 0, len(data)
    while start < n:
        end = min(start + _UTF8_CHUNK, n)
        try:
            data[start:end].decode("utf-8")
        except UnicodeDecodeError as e:
            if e.reason == "unexpected end of data" and end < n and e.start > 0:
                start += e.start
                continue
            off = start + e.start
            line = data.count(b"\n", 0, off) + 1
            src = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "latin1"
            raise DataError(
                f"{p}:{line}: is not UTF-8 text (byte 0x{data[off]:02x} at offset {off}); "
                f"re-save the file as UTF-8, e.g. iconv -f {src} -t utf-8 IN > OUT"
            ) from None
        start = end


def _nonblank_lines(data: bytes) -> np.ndarray:
    """1-based numbers of the lines holding more than whitespace, without a Python loop."""
    arr = np.frombuffer(data, dtype=np.uint8)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(arr == 10) + 1))
    starts = starts[starts < arr.size]
    not_space = _NOT_SPACE[arr]
    has_content = np.logical_or.reduceat(not_space, starts)
    return np.flatnonzero(has_content).astype(np.int64) + 1


def _line_of(data: bytes, text: str) -> int | None:
    """The line where ``text`` first occurs in ``data`` (for rows pyarrow reports unnumbered)."""
    idx = data.find(text.encode("utf-8"))
    return data.count(b"\n", 0, idx) + 1 if idx >= 0 else None


# --- CSV / TSV ----------------------------------------------------------------------------

def _read_delimited(data: bytes, p: Path, delimiter: str) -> tuple[pa.Table, np.ndarray, str]:
    """CSV (quoted values may span lines) or TSV (no quoting: SMS-style text has stray quotes).

    Every column is read as a string so that values survive exactly as written.
    """
    tsv = delimiter == "\t"
    quoting = csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL
    header = _header(data, delimiter, quoting)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{p}:1: column name {dupes[0]!r} appears more than once in the header; "
                        "rename the columns so that each is unique")
    bad: list[pa_csv.InvalidRow] = []

    def on_invalid(row: pa_csv.InvalidRow) -> str:
        if not row.text.strip():
            return "skip"  # a whitespace-only line, like an empty one
        bad.append(row)
        return "error"

    parse = pa_csv.ParseOptions(
        delimiter=delimiter,
        quote_char=False if tsv else '"',
        newlines_in_values=not tsv,
        invalid_row_handler=on_invalid,
    )
    convert = pa_csv.ConvertOptions(
        column_types={h: pa.string() for h in header},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    # pyarrow parses in blocks and cannot split a row across two; a row longer than a block (a
    # whole document in one cell) needs one block for the whole file.
    for block in (_CSV_BLOCK, min(len(data) + 1, 2**31 - 1)):
        try:
            table = pa_csv.read_csv(pa.BufferReader(data), parse_options=parse,
                                    convert_options=convert,
                                    read_options=pa_csv.ReadOptions(block_size=block))
            break
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            if bad:
                row = bad[0]
                line = _line_of(data, row.text)
                where = f"{p}:{line}" if line else f"{p} (row {row.number or '?'})"
                if tsv:
                    hint = "a value contains a tab, or the line is cut short"
                elif row.text.count('"') % 2:
                    hint = "a double quote opened on this line is never closed"
                else:
                    hint = 'put values that contain commas in double quotes ("a, b")'

                fields = f"{row.actual_columns} field{'s' if row.actual_columns != 1 else ''}"
                raise DataError(f"{where}: has {fields} but the header has "
                                f"{row.expected_columns} ({', '.join(header)}); {hint}") from None
            if "straddl" in str(e) and block < len(data) + 1:
                continue
            raise DataError(f"{p}: cannot be read as {'TSV' if tsv else 'CSV'} ({e}); fix the "
                            "file or set data.format") from None
    names = [h if h else f"column_{i + 1}" for i, h in enumerate(table.column_names)]
    table = table.rename_columns(names)
    if table.num_rows == 0:
        raise DataError(f"{p}: has a header ({', '.join(names)}) but no rows; add data rows")
    rows, unit = _record_lines(data, table.num_rows, delimiter, quoting, len(header))
    return table, rows, unit


def _header(data: bytes, delimiter: str, quoting: int) -> list[str]:
    """The first non-blank record's fields, read with the same quoting as the body."""
    text = data[:SNIFF_BYTES].decode("utf-8", errors="ignore")
    for rec in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting):
        if any(f.strip() for f in rec):
            return rec
    return []


def _record_lines(data: bytes, n: int, delimiter: str, quoting: int,
                  width: int) -> tuple[np.ndarray, str]:
    """The line each record starts on.

    Fast path: when non-blank lines are exactly header + records, record i is non-blank line
    i + 1. Otherwise (multi-line quoted values) walk the file with the csv module, skipping the
    lines pyarrow skips; if even that disagrees, fall back to record numbers.
    """
    lines = _nonblank_lines(data)
    if lines.size == n + 1:
        return lines[1:], "line"
    csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, 2**31 - 1)))
    starts: list[int] = []
    prev, seen_header = 0, False
    try:
        reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""),
                            delimiter=delimiter, quoting=quoting)
        for rec in reader:
            start, prev = prev + 1, reader.line_num
            if not rec or (len(rec) != width and not any(f.strip() for f in rec)):
                continue
            if not seen_header:
                seen_header = True
                continue
            starts.append(start)
    except csv.Error:
        starts = []
    if len(starts) == n:
        return np.asarray(starts, dtype=np.int64), "line"
    return np.arange(1, n + 1, dtype=np.int64), "record"


# --- JSON / JSON Lines --------------------------------------------------------------------

def _read_json(data: bytes, p: Path) -> tuple[pa.Table, np.ndarray, str]:
    """A JSON array of objects, ``{"data": [...]}``, or (common under .json) JSON Lines."""
    text = data.decode("utf-8")
    head = text.lstrip()[:1]
    if head == "{":
        first = next((ln for ln in io.StringIO(text) if ln.strip()), "")
        try:
            one_line = isinstance(json.loads(first), dict)
        except json.JSONDecodeError:
            one_line = False
        if one_line and text.strip() != first.strip():
            return _read_jsonl(data, p)
    elif head != "[":
        raise DataError(f"{p}: is not a JSON array of objects or JSON Lines (it starts with "
                        f"{text.lstrip()[:20]!r}); set data.format to csv, tsv or text if that is "
                        "what it is")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        if head == "{" and e.msg == "Extra data":
            return _read_jsonl(data, p)
        raise DataError(f"{p}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno}); fix it, "
                        "or write one JSON object per line (JSON Lines)") from None
    if isinstance(doc, dict):
        records = doc["data"] if isinstance(doc.get("data"), list) else [doc]
    else:
        records = doc
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise DataError(f"{p}: item {i + 1} of the array is {_json_kind(r)}, not an object; "
                            'write an array of objects like [{"text": "...", "label": "..."}]')
    if not records:
        raise DataError(f"{p}: holds an empty array (no rows)")
    table = _records_to_table(records)
    return table, np.arange(1, table.num_rows + 1, dtype=np.int64), "item"


def _read_jsonl(data: bytes, p: Path) -> tuple[pa.Table, np.ndarray, str]:
    """JSON Lines: pyarrow when it can, else the standard library, which names the bad line.

    pyarrow refuses mixed types in a column (label 1 here, "spam" there) and turns date-like
    strings into timestamps; both cases go the slow, exact way.
    """
    lines = _nonblank_lines(data)
    try:
        if not _every_line_opens_object(data, lines):
            # pyarrow 26 crashes (SIGSEGV) on a first line "null", and reads "null" lines as
            # rows; only plain one-object-per-line input takes the fast path.
            raise pa.ArrowInvalid("not plain JSON Lines")
        table = pa_json.read_json(pa.BufferReader(data))
        if table.num_rows == lines.size and all(_plain(f.type) for f in table.schema):
            table.validate(full=True)  # pyarrow 26 builds corrupt arrays for some nested input
            return table, lines, "line"
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    text = data.decode("utf-8")
    records: list[dict] = []
    numbers: list[int] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}:{lineno}: not valid JSON ({e.msg} at column {e.colno}); each "
                            "line of a JSON Lines file must be one complete JSON object") from None
        if not isinstance(obj, dict):
            raise DataError(f"{p}:{lineno}: is {_json_kind(obj)}, not an object; each line must "
                            'be one object like {"text": "...", "label": "..."}')
        records.append(obj)
        numbers.append(lineno)
    return _records_to_table(records), np.asarray(numbers, dtype=np.int64), "line"


def _every_line_opens_object(data: bytes, lines: np.ndarray) -> bool:
    """True when each non-blank line's first byte is "{" (no leading space, no bare values)."""
    if lines.size == 0:
        return False
    arr = np.frombuffer(data, dtype=np.uint8)
    starts = np.concatenate(([0], np.flatnonzero(arr == 10) + 1))
    return bool(np.all(arr[starts[lines - 1]] == ord("{")))


def _plain(t: pa.DataType) -> bool:
    """Flat, non-temporal types: the only ones we trust pyarrow's JSON reader to build.

    It turns date-like strings into timestamps (changing the text) and has built invalid
    list arrays; such files go the standard-library way.
    """
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)
            or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t))


def _json_kind(v: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(v), "a value")


def _records_to_table(records: list[dict]) -> pa.Table:
    """Columns from a list of objects; a column of mixed types becomes strings, not an error."""
    names = list(dict.fromkeys(k for r in records for k in r))
    cols = {}
    for name in names:
        values = [r.get(name) for r in records]
        try:
            cols[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
            cols[name] = pa.array(
                [v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                 for v in values],
                type=pa.string(),
            )
    return pa.table(cols)


# --- plain text, Parquet, Arrow -----------------------------------------------------------

def _read_text(data: bytes) -> tuple[pa.Table, np.ndarray, str]:
    """One example per line; blank lines are skipped, CRLF endings dropped."""
    whole = pa.array([data.decode("utf-8")], type=pa.large_string())
    lines = pc.list_flatten(pc.split_pattern(whole, "\n"))
    lines = pc.utf8_rtrim(lines, characters="\r")
    keep = pc.not_equal(pc.utf8_trim_whitespace(lines), "")
    numbers = np.flatnonzero(keep.to_numpy(zero_copy_only=False)).astype(np.int64) + 1
    kept = lines.filter(keep)
    total = pc.sum(pc.binary_length(kept)).as_py() or 0
    if total < 2**31 - 1:  # plain string offsets are 32-bit
        kept = kept.cast(pa.string())
    return pa.table({"text": kept}), numbers, "line"


def _read_parquet(data: bytes, p: Path) -> pa.Table:
    try:
        return pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{p}: is not a readable Parquet file ({e}); check data.format") from None


def _read_arrow_file(p: Path, st: os.stat_result) -> LoadedTable:
    """A single Arrow file (a datasets cache file or an IPC file), memory-mapped."""
    try:
        ds = Dataset.from_file(str(p))
    except Exception:  # noqa: BLE001 - datasets raises many types for "not an Arrow stream"
        try:
            with pa.memory_map(str(p)) as src:
                ds = Dataset(InMemoryTable(pa.ipc.open_file(src).read_all()))
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{p}: is not a readable Arrow file ({e}); check data.format") from None
    digest = hashlib.blake2b(f"{st.st_size}:{st.st_mtime_ns}".encode(), digest_size=16).hexdigest()
    return _from_dataset(ds, p, digest)


def _read_arrow_dir(p: Path, fix: str) -> LoadedTable:
    """A ``save_to_disk`` folder of a Dataset, or of a DatasetDict (its "train" split)."""
    if not ((p / "state.json").is_file() or (p / "dataset_dict.json").is_file()):
        raise DataError(f"{p}: is a directory but not a datasets save_to_disk folder (no "
                        f"state.json or dataset_dict.json inside); {fix} and point it at a data "
                        "file or such a folder")
    try:
        loaded = load_from_disk(str(p))
    except Exception as e:  # noqa: BLE001 - corrupt folders surface as assorted errors
        raise DataError(f"{p}: cannot be loaded as a datasets folder ({e})") from None
    if isinstance(loaded, DatasetDict):
        splits = list(loaded.keys())
        if "train" in loaded:
            loaded = loaded["train"]
        elif len(splits) == 1:
            loaded = loaded[splits[0]]
        else:
            raise DataError(f"{p}: holds splits {', '.join(splits)} but no 'train'; point the "
                            f"profile at one split's folder, e.g. {p / splits[0]}")
    h = hashlib.blake2b(digest_size=16)
    for f in sorted(p.rglob("*")):
        if f.is_file():
            s = f.stat()
            h.update(f"{f.relative_to(p)}:{s.st_size}:{s.st_mtime_ns};".encode())
    return _from_dataset(loaded, p, h.hexdigest())


def _from_dataset(ds: Dataset, p: Path, digest: str) -> LoadedTable:
    """Table view of a Dataset; ClassLabel ids become their names so labels read as written."""
    if ds.num_rows == 0:
        raise DataError(f"{p}: holds no rows")
    table = ds.with_format("arrow")[:]
    class_names: dict[str, list[str]] = {}
    for name, feat in ds.features.items():
        if isinstance(feat, ClassLabel) and feat.names:
            class_names[name] = list(feat.names)
            ids = table.column(name)
            valid = pc.and_(pc.greater_equal(ids, 0), pc.less(ids, len(feat.names)))
            ids = pc.if_else(valid, ids, pa.scalar(None, ids.type))
            names = pa.array(feat.names, type=pa.string()).take(ids)
            table = table.set_column(table.column_names.index(name), name, names)
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    return LoadedTable(p, "arrow", table, rows, "row", digest, class_names, ds)
