"""The first rows of a data file and its format, with the standard library only.

Part of the one data layer: the dataset browser shows these rows at once (pyarrow takes a few
hundred milliseconds to import) and the full reader (``reader.py``) takes over when it is done.
Formats, delimiter, header and encoding rules are ``formats.py``'s, as for training.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from tunedeck.core.data.formats import (FORMATS, SNIFF_BYTES, UTF8_BOM, format_from_name,
                                        refuse_unsupported, sniff_bytes, sniff_dialect)
from tunedeck.core.errors import DataError

HEAD_BYTES = 262144
HEAD_ROWS = 500
Head = tuple[list[str], list[tuple[Any, ...]]]


def sniffed_format(p: Path, head: bytes) -> str:
    """The format of a file whose name says nothing, from its first bytes."""
    sniffed = sniff_bytes(head)
    if sniffed is None:
        raise DataError(f"{p}: unknown format (binary content, no known extension); convert "
                        f"it to csv, jsonl or parquet, or set data.format to one of "
                        f"{', '.join(FORMATS)}")
    return sniffed


def source_format(path: Path) -> str:
    """The format training would read ``path`` as (``tunedeck.core.data.formats``'s rules)."""
    path = Path(path)
    if path.is_dir():
        if arrow_files(path) or (path / "dataset_dict.json").is_file():
            return "arrow"
        raise DataError(f"{path}: a folder, but not a datasets save_to_disk folder "
                        "(no data-*.arrow, dataset_info.json or dataset_dict.json)")
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    refuse_unsupported(path)
    fmt = format_from_name(path)
    if fmt:
        return fmt
    return sniffed_format(path, _head_bytes(path, SNIFF_BYTES))


def _head_bytes(path: Path, n: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None


def arrow_files(folder: Path) -> list[Path]:
    state = folder / "state.json"
    try:
        files = json.loads(state.read_text())["_data_files"]
        out = [folder / f["filename"] for f in files]
        if out and all(p.is_file() for p in out):
            return out
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return sorted(folder.glob("data-*.arrow")) or sorted(folder.glob("*.arrow"))


def dataset_splits(folder: Path) -> list[str]:
    """Split names of a save_to_disk DatasetDict folder ([] for a plain Dataset folder)."""
    try:
        d = json.loads((folder / "dataset_dict.json").read_text())
        return [s for s in d.get("splits", []) if (folder / s).is_dir()]
    except (OSError, ValueError, AttributeError):
        return []


def head_rows(path: Path, fmt: str, max_rows: int = HEAD_ROWS,
              encoding: str | None = None) -> Head | None:
    """The first rows of a UTF-8 text format (csv, tsv, jsonl, text), or None when that needs
    pyarrow, another encoding, or the start of the file does not parse (the full reader then
    reports the problem, in training's words). Delimiter and header are training's.

    ``encoding`` is the profile's ``data.encoding``: when one is declared, the full reader
    decodes the file exactly as training does (e.g. Latin-1 bytes that happen to be valid
    UTF-8), so there is no quick head."""
    if fmt not in ("csv", "tsv", "jsonl", "text") or encoding:
        return None
    try:
        with open(path, "rb") as f:
            raw = f.read(HEAD_BYTES)
            complete = not f.read(1)
        if not complete:
            raw = raw[: raw.rfind(b"\n") + 1]  # whole lines only
        text = raw.removeprefix(UTF8_BOM).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        if fmt == "text":
            lines = [ln.rstrip("\r") for ln in text.split("\n") if ln.strip()][:max_rows]
            return (["text"], [(ln,) for ln in lines]) if lines else None
        if fmt == "jsonl":
            return _jsonl_head(text, max_rows)
        return _delimited_head(text, fmt, complete, max_rows)
    except (ValueError, csv.Error):
        return None


def _jsonl_head(text: str, max_rows: int) -> Head | None:
    objs = []
    for ln in text.splitlines():
        if ln.strip():
            obj = json.loads(ln)
            if not isinstance(obj, dict):
                return None
            objs.append(obj)
        if len(objs) >= max_rows:
            break
    cols = list(dict.fromkeys(k for o in objs[:50] for k in o))
    return (cols, [tuple(o.get(c) for c in cols) for o in objs]) if objs else None


def _delimited_head(text: str, fmt: str, complete: bool, max_rows: int) -> Head | None:
    dialect = sniff_dialect(text[:SNIFF_BYTES], fmt, partial=len(text) > SNIFF_BYTES)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=dialect.delimiter,
                        quoting=dialect.quoting)
    rows = [r for r in reader if any(f.strip() for f in r)][: max_rows + 1 + dialect.header]
    if not complete and rows:
        rows.pop()  # the last record may be cut in the middle of a quoted field
    if dialect.header:
        rows = rows[1:]
    width = len(dialect.column_names)
    if not rows or any(len(r) != width for r in rows):
        return None  # a malformed row: the full reader names its line
    return (list(dialect.column_names), [tuple(r) for r in rows[:max_rows]])
