"""JSON and JSON Lines: pyarrow when it can, the standard library when a line number matters.

Rows come out as an Arrow table plus the line (JSON Lines) or item (JSON array) each row came
from; every error is a ``DataError`` naming the file and line. Shared by training and the
browser through ``tunedeck.core.data.reader``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.json as pa_json

from tunedeck.core.data.delimited import nonblank_lines
from tunedeck.core.errors import DataError

def read_json(data: bytes, p: Path) -> tuple[pa.Table, np.ndarray, str]:
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
            return read_jsonl(data, p)
    elif head != "[":
        raise DataError(f"{p}: is not a JSON array of objects or JSON Lines (it starts with "
                        f"{text.lstrip()[:20]!r}); set data.format to csv, tsv or text if that is "
                        "what it is")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        if head == "{" and e.msg == "Extra data":
            return read_jsonl(data, p)
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


def read_jsonl(data: bytes, p: Path) -> tuple[pa.Table, np.ndarray, str]:
    """JSON Lines: pyarrow when it can, else the standard library, which names the bad line.

    pyarrow refuses mixed types in a column (label 1 here, "spam" there) and turns date-like
    strings into timestamps; both cases go the slow, exact way.
    """
    lines = nonblank_lines(data)
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


