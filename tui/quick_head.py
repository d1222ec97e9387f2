"""Format sniffing and the first rows of a data file, with the standard library only.

The browser shows these rows at once, while pyarrow (a few hundred milliseconds to import)
converts the whole file in a worker thread; tunedeck.tui.data_source takes over when it is done.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from tunedeck.core.errors import DataError

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "text", "arrow")
_EXT = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json", ".jsonl": "jsonl",
    ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".txt": "text", ".text": "text",
    ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow",
}
HEAD_BYTES = 262144
HEAD_ROWS = 500


def sniff_format(path: Path) -> str:
    """The format of ``path``: by extension, else by looking at its first bytes."""
    path = Path(path)
    if path.is_dir():
        if _arrow_files(path) or (path / "dataset_dict.json").is_file():
            return "arrow"
        raise DataError(f"{path}: a folder, but not a datasets save_to_disk folder "
                        "(no data-*.arrow, dataset_info.json or dataset_dict.json)")
    ext = _EXT.get(path.suffix.lower())
    head = _head_bytes(path)
    if ext == "json":
        return "json" if head.lstrip()[:1] == b"[" else "jsonl"
    if ext:
        return ext
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"ARROW1") or head[4:8] == b"\xff\xff\xff\xff" or head[:4] == b"\xff\xff\xff\xff":
        return "arrow"
    text = head.decode("utf-8", errors="replace")
    stripped = text.lstrip()
    if stripped.startswith("["):
        return "json"
    lines = [ln for ln in text.splitlines()[:-1] or text.splitlines() if ln.strip()][:30]
    if stripped.startswith("{"):
        try:
            json.loads(lines[0])
            return "jsonl"
        except (ValueError, IndexError):
            pass
    if lines:
        for delim, fmt in (("\t", "tsv"), (",", "csv"), (";", "csv")):
            counts = [ln.count(delim) for ln in lines]
            if counts[0] >= 1 and sum(c == counts[0] for c in counts) >= 0.9 * len(counts):
                return fmt
    return "text"


def _head_bytes(path: Path, n: int = 65536) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None


def _has_header(first_line: str, delim: str) -> bool:
    """Heuristic: a header row holds short, unique, non-numeric names."""
    cells = next(csv.reader([first_line], delimiter=delim), [])
    if not cells:
        return False
    for c in cells:
        c = c.strip()
        if not c or len(c) > 40:
            return False
        try:
            float(c)
            return False
        except ValueError:
            pass
    return len(set(cells)) == len(cells)


def _arrow_files(folder: Path) -> list[Path]:
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


def quick_head(path: Path, fmt: str, max_rows: int = HEAD_ROWS) -> ListSource | None:
    """The first rows of a text format (csv, tsv, jsonl, text), or None when that needs pyarrow
    or the start of the file does not parse (the full reader then reports the problem)."""
    if fmt not in ("csv", "tsv", "jsonl", "text"):
        return None
    try:
        with open(path, "rb") as f:
            raw = f.read(HEAD_BYTES)
            complete = not f.read(1)
    except OSError:
        return None
    if not complete:
        raw = raw[: raw.rfind(b"\n") + 1]  # whole lines only
    text = raw.decode("utf-8", errors="replace")
    try:
        if fmt == "text":
            lines = text.splitlines()[:max_rows]
            return ListSource(["text"], [(ln,) for ln in lines]) if lines else None
        if fmt == "jsonl":
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
            return ListSource(cols, [tuple(o.get(c) for c in cols) for o in objs]) if objs else None
        delim = "\t" if fmt == "tsv" else ","
        first = text.split("\n", 1)[0].rstrip("\r")
        if fmt == "csv" and first.count(";") > first.count(","):
            delim = ";"
        quoting = csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL
        reader = csv.reader(io.StringIO(text), delimiter=delim, quoting=quoting)
        rows = []
        for r in reader:
            rows.append(r)
            if len(rows) > max_rows:
                break
        if not complete and len(rows) <= max_rows and rows:
            rows.pop()  # the last record may be cut in the middle of a quoted field
        if not rows:
            return None
        if _has_header(first, delim):
            cols, rows = rows[0], rows[1:]
        else:
            cols = [f"col{i}" for i in range(len(rows[0]))]
        width = len(cols)
        return ListSource(cols, [tuple(r) for r in rows[:max_rows] if len(r) == width])
    except (ValueError, csv.Error):
        return None
