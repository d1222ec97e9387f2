"""Decide a data file's format: by extension, else by looking at its first bytes.

Real files often arrive without a useful name (the SMS Spam Collection is just
``SMSSpamCollection``), so ``auto`` must look inside; but a known extension always wins, because
sniffing can be fooled (a one-column CSV looks like plain text).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "text", "arrow")

EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "text",
    ".text": "text",
    ".arrow": "arrow",
}

# Extensions we know we cannot read: better a clear "convert it" than a confusing UTF-8 error.
UNSUPPORTED: dict[str, str] = {
    ".xlsx": "an Excel workbook",
    ".xls": "an Excel workbook",
    ".ods": "a spreadsheet",
    ".gz": "a gzip archive",
    ".bz2": "a bzip2 archive",
    ".xz": "an xz archive",
    ".zst": "a zstd archive",
    ".zip": "a zip archive",
    ".7z": "a 7z archive",
    ".tar": "a tar archive",
    ".pkl": "a Python pickle",
    ".pickle": "a Python pickle",
    ".h5": "an HDF5 file",
    ".hdf5": "an HDF5 file",
    ".sqlite": "a SQLite database",
    ".db": "a database file",
    ".pdf": "a PDF document",
}

SNIFF_BYTES = 64 * 1024
_SNIFF_LINES = 20


def format_from_name(path: Path) -> str | None:
    """The format a file's extension names, or None when the extension says nothing."""
    return EXTENSIONS.get(path.suffix.lower())


def sniff_bytes(head: bytes) -> str | None:
    """Guess a format from the first bytes of a file; None means "binary, unknown"."""
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"ARROW1") or head.startswith(b"\xff\xff\xff\xff"):
        return "arrow"
    if b"\x00" in head:
        return None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        return "json"  # the JSON reader tells a JSON array from JSON Lines itself
    lines = [ln for ln in io.StringIO(text).read().splitlines() if ln.strip()]
    if len(head) >= SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line of a partial read may be cut short
    lines = lines[:_SNIFF_LINES]
    if not lines:
        return "text"
    for delimiter, fmt in (("\t", "tsv"), (",", "csv")):
        if _consistent_fields(lines, delimiter):
            return fmt
    return "text"


def _consistent_fields(lines: list[str], delimiter: str) -> bool:
    """True when the header has >= 2 fields and most lines have as many.

    Counting fields (not characters) with the csv module keeps a comma inside a quoted CSV value
    from breaking the count; tabs are read without quoting, as TSV files use them.
    """
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    try:
        rows = list(csv.reader(lines, delimiter=delimiter, quoting=quoting))
    except csv.Error:
        return False
    if not rows or len(rows[0]) < 2:
        return False
    width = len(rows[0])
    if len(rows) == 1:
        return True
    same = sum(1 for r in rows[1:] if len(r) == width)
    return same >= 0.8 * (len(rows) - 1)
