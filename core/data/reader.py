"""Read one data file into an Arrow table, or fail with one message a user can act on.

The one reader behind training (``splits_reader``) and the dataset browser: formats and
sniffing come from ``formats``, CSV/TSV parsing from ``delimited``, JSON from ``json_reader``.
Why not ``datasets.load_dataset("csv", ...)``: it copies every file into a cache and reports
malformed input as a generic generation error without the line. Every error here is a
``DataError`` of the form ``FILE[:LINE]: what; fix``.

Nothing here imports torch or ``datasets`` at import time (the TUI process imports this);
``datasets`` is imported only to read a ``save_to_disk`` folder or a datasets Arrow file.

Files are only ever opened for reading, and never opened at all unless ``stat`` says they are
regular files: opening a FIFO would block forever and a device could be endless.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tunedeck.core.data.delimited import read_delimited
from tunedeck.core.data.formats import (FORMATS, SNIFF_BYTES, UTF8_BOM, bad_encoding_error,
                                        declared_encoding, format_from_name, refuse_unsupported,
                                        not_utf8_error)
from tunedeck.core.data.head import sniffed_format
from tunedeck.core.data.json_reader import read_json, read_jsonl
from tunedeck.core.errors import DataError

_UTF8_CHUNK = 1 << 23


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
    dataset: Any = None  # the memory-mapped datasets.Dataset, for Arrow directories/files

    def where(self, i: int) -> str:
        """``FILE:LINE`` (or ``FILE (item N)``) for row ``i`` of the table."""
        n = int(self.rows[i])
        return f"{self.path}:{n}" if self.unit == "line" else f"{self.path} ({self.unit} {n})"


def load_table(path: str | os.PathLike[str], fmt: str = "auto", encoding: str | None = None) -> Any:
    """Load a data file (or a ``save_to_disk`` directory) as an Arrow-backed ``datasets.Dataset``.

    CSV/TSV columns are read as strings exactly as written ("NA", "007" and "" stay text);
    JSON keeps its own types. Raises ``DataError`` for anything a user must fix.
    """
    from datasets import Dataset
    from datasets.table import InMemoryTable

    loaded = read_source(path, fmt, encoding=encoding)
    if loaded.dataset is not None:
        return loaded.dataset
    return Dataset(InMemoryTable(loaded.table))


def read_source(path: str | os.PathLike[str], fmt: str = "auto", key: str | None = None,
                encoding: str | None = None) -> LoadedTable:
    """Read ``path`` as ``fmt``; ``key`` (e.g. "data.train") is the profile key named in fixes,
    ``encoding`` the profile's ``data.encoding`` (None: a BOM's, else UTF-8)."""
    p = Path(path)
    fix = f"check {key} in the profile" if key else "check the path"
    st = stat_source(p, fmt, key, fix)
    if stat.S_ISDIR(st.st_mode):
        return _read_arrow_dir(p, fix)
    if fmt == "auto":
        refuse_unsupported(p)
        fmt = format_from_name(p) or "auto"
    if fmt == "arrow":
        return _read_arrow_file(p, st)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise DataError(f"{p}: cannot be read ({e.strerror}); {fix}") from None
    if fmt == "auto":
        fmt = sniffed_format(p, data[:SNIFF_BYTES])
        if fmt == "arrow":
            return _read_arrow_file(p, st)
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    if fmt == "parquet":
        table = _read_parquet(data, p)
        return LoadedTable(p, fmt, table, np.arange(1, table.num_rows + 1), "row", digest)
    body = text_body(data, p, encoding, fix)
    return _read_text_format(body, p, fmt, digest, fix)


def _read_text_format(body: bytes, p: Path, fmt: str, digest: str, fix: str) -> LoadedTable:
    if fmt in ("csv", "tsv"):
        table, rows, unit = read_delimited(body, p, fmt)
    elif fmt == "json":
        table, rows, unit = read_json(body, p)
        fmt = "jsonl" if unit == "line" else fmt  # it was JSON Lines under a .json name
    elif fmt == "jsonl":
        table, rows, unit = read_jsonl(body, p)
    else:
        table, rows, unit = _read_text(body)
    if table.num_rows == 0:
        raise DataError(f"{p}: has no rows; {fix}")
    return LoadedTable(p, fmt, table, rows, unit, digest)


def stat_source(p: Path, fmt: str, key: str | None, fix: str) -> os.stat_result:
    """``stat`` of a data path, refusing what cannot be a data source."""
    if fmt not in ("auto", *FORMATS):
        raise DataError(f"{p}: unknown format {fmt!r}; use one of auto, {', '.join(FORMATS)}"
                        + (" (data.format)" if key else ""))
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
    elif not stat.S_ISREG(st.st_mode):
        raise DataError(f"{p}: is not a regular file (a FIFO, socket or device); {fix} and point "
                        "it at a data file")
    elif st.st_size == 0:
        raise DataError(f"{p}: is empty (0 bytes); {fix}")
    return st


# --- text checks --------------------------------------------------------------------------

def text_body(data: bytes, p: Path, encoding: str | None, fix: str) -> bytes:
    """The file as UTF-8 without a BOM, checked: no NUL bytes, not only whitespace."""
    enc = declared_encoding(data[:4], encoding)
    if data.startswith(UTF8_BOM) and enc in ("utf-8", "utf-8-sig"):
        data, enc = data[len(UTF8_BOM):], "utf-8"
    if enc == "utf-8":
        _check_utf8(data, p)
    else:
        try:
            data = data.decode(enc).encode("utf-8")
        except UnicodeDecodeError as e:
            raise bad_encoding_error(p, data, e.start, enc) from None
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise DataError(f"{p}:{line}: contains a NUL byte (offset {nul}), so it is not a text "
                        "file (binary, or UTF-16 without a BOM?); re-save it as UTF-8 text or "
                        "set data.format")
    if not data.strip():
        raise DataError(f"{p}: is empty (only whitespace); {fix}")
    return data


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
            raise not_utf8_error(p, data, start + e.start) from None
        start = end


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
    from datasets import Dataset
    from datasets.table import InMemoryTable

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
    from datasets import DatasetDict, load_from_disk

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


def _from_dataset(ds: Any, p: Path, digest: str) -> LoadedTable:
    """Table view of a Dataset; ClassLabel ids become their names so labels read as written."""
    from datasets import ClassLabel

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
