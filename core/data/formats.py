"""What a data file is: its format, and for delimited text its delimiter, header and encoding.

Standard library only, so the dataset browser can decide this before pyarrow has loaded, and
training decides it with the very same functions: a file the browser opens is a file training
reads, the same way.

The rules, decided once:

- **Format**: a known extension wins (sniffing can be fooled: a one-column CSV looks like plain
  text); a file without one is sniffed from its first bytes.
- **Delimiter** of a CSV: the first of ``,`` ``;`` tab ``|`` that splits the first lines into the
  same number (>= 2) of fields; ``.tsv`` is always tab. Tab-separated text is read without
  quoting (SMS-style text holds stray quotes); the others with ``"`` quoting.
- **Header**: the first row is a header unless it looks like data: a value is a number, longer
  than 100 characters, or recurs in the same column further down (a label such as ``spam``).
  Without a header the columns are named ``column_1``, ``column_2``, ...
- **Encoding**: the profile's ``data.encoding`` if set, else UTF-8 (a UTF-8 byte-order mark is
  dropped). Anything else (Latin-1, UTF-16) is refused with the line of the first bad byte and
  the ``data.encoding`` value that would read it.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from tunedeck.core.errors import DataError

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "text", "arrow")

EXTENSIONS: dict[str, str] = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json", ".jsonl": "jsonl",
    ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".txt": "text",
    ".text": "text", ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow",
}

# Extensions we know we cannot read: better a clear "convert it" than a confusing UTF-8 error.
UNSUPPORTED: dict[str, str] = {
    ".xlsx": "an Excel workbook", ".xls": "an Excel workbook", ".ods": "a spreadsheet",
    ".gz": "a gzip archive", ".bz2": "a bzip2 archive", ".xz": "an xz archive",
    ".zst": "a zstd archive", ".zip": "a zip archive", ".7z": "a 7z archive",
    ".tar": "a tar archive", ".pkl": "a Python pickle", ".pickle": "a Python pickle",
    ".h5": "an HDF5 file", ".hdf5": "an HDF5 file", ".sqlite": "a SQLite database",
    ".db": "a database file", ".pdf": "a PDF document",
}

DELIMITERS = (",", ";", "\t", "|")
SNIFF_BYTES = 64 * 1024
_SNIFF_LINES = 20
_HEADER_MAX_CHARS = 100
UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class Dialect:
    """How a delimited file is split: what training and the browser both pass to pyarrow."""

    delimiter: str
    header: bool
    column_names: tuple[str, ...]

    @property
    def quoted(self) -> bool:
        return self.delimiter != "\t"

    @property
    def quoting(self) -> int:
        return csv.QUOTE_MINIMAL if self.quoted else csv.QUOTE_NONE


def format_from_name(path: Path) -> str | None:
    """The format a file's extension names, or None when the extension says nothing."""
    return EXTENSIONS.get(path.suffix.lower())


def refuse_unsupported(p: Path) -> None:
    """A clear "convert it" for extensions we know we cannot read."""
    suffix = p.suffix.lower()
    if suffix in UNSUPPORTED:
        raise DataError(f"{p}: unknown format: this looks like {UNSUPPORTED[suffix]}; convert it "
                        f"to csv, jsonl or parquet (tunedeck reads {', '.join(FORMATS)})")


def sniff_bytes(head: bytes) -> str | None:
    """Guess a format from the first bytes of a file; None means "binary, unknown"."""
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"ARROW1") or head.startswith(b"\xff\xff\xff\xff"):
        return "arrow"
    if head[:2] in _UTF16_BOMS:
        head = head.decode("utf-16", errors="replace").encode("utf-8")
    if b"\x00" in head:
        return None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    if text.lstrip()[:1] in ("{", "["):
        return "json"  # the JSON reader tells a JSON array from JSON Lines itself
    lines = _sample_lines(text, partial=len(head) >= SNIFF_BYTES)
    if not lines:
        return "text"
    delimiter = sniff_delimiter(lines)
    if delimiter is None:
        return "text"
    return "tsv" if delimiter == "\t" else "csv"


def _sample_lines(text: str, partial: bool) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if partial and len(lines) > 1:
        lines = lines[:-1]  # the last line of a partial read may be cut short
    return lines[:_SNIFF_LINES]


def sniff_delimiter(lines: list[str]) -> str | None:
    """The first delimiter that splits the lines into a steady number (>= 2) of fields."""
    for delimiter in DELIMITERS:
        if _consistent_fields(lines, delimiter):
            return delimiter
    return None


def _consistent_fields(lines: list[str], delimiter: str) -> bool:
    """True when the first line has >= 2 fields and most lines have as many.

    Counting fields (not characters) with the csv module keeps a delimiter inside a quoted value
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
    same = sum(1 for r in rows[1:] if len(r) == width)
    return same >= 0.8 * (len(rows) - 1)


def sniff_dialect(head_text: str, fmt: str, partial: bool) -> Dialect:
    """Delimiter, header and column names of a CSV/TSV from its first (decoded) bytes."""
    lines = _sample_lines(head_text, partial)
    if fmt == "tsv":
        delimiter = "\t"
    else:
        delimiter = sniff_delimiter(lines) or ","
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    text = head_text
    if partial:
        text = text[: text.rfind("\n") + 1] or text
    rows: list[list[str]] = []
    try:
        for rec in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting):
            if any(f.strip() for f in rec):
                rows.append(rec)
            if len(rows) > _SNIFF_LINES:
                break
    except csv.Error:
        rows = rows or [next(csv.reader(lines[:1], delimiter=delimiter), [])]
    first = rows[0] if rows else []
    if looks_like_header(first, rows[1:]):
        names = tuple(h if h else f"column_{i + 1}" for i, h in enumerate(first))
        return Dialect(delimiter, True, names)
    return Dialect(delimiter, False, tuple(f"column_{i + 1}" for i in range(len(first))))


def looks_like_header(first: list[str], rest: list[list[str]]) -> bool:
    """A header holds names: no numbers, nothing long, no value that recurs below it."""
    if not first:
        return False
    for i, cell in enumerate(first):
        c = cell.strip()
        if len(c) > _HEADER_MAX_CHARS:
            return False
        if c and _is_number(c):
            return False
        if c and any(i < len(r) and r[i].strip() == c for r in rest):
            return False
    return True


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


# --- encodings ----------------------------------------------------------------------------

def check_encoding_name(name: str) -> str:
    """The canonical codec name, or ValueError naming a few that exist."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}; use e.g. 'utf-8', 'latin-1', 'cp1252'") \
            from None


def declared_encoding(head: bytes, encoding: str | None) -> str:
    """The encoding a file is read with: the profile's, else UTF-8 (a UTF-8 BOM is dropped).

    A UTF-16 file is read only when ``data.encoding`` says so: its BOM alone is not trusted,
    because a binary file can start with the same two bytes.
    """
    if encoding:
        return check_encoding_name(encoding)
    return "utf-8-sig" if head.startswith(UTF8_BOM) else "utf-8"


def not_utf8_error(p: Path, data: bytes, offset: int) -> DataError:
    """The one message for a file that is not UTF-8 (training and the browser alike)."""
    line = data.count(b"\n", 0, offset) + 1
    byte = data[offset:offset + 1].hex()
    if data[:2] in _UTF16_BOMS:
        return DataError(f"{p}:{line}: is UTF-16 text, not UTF-8 (it starts with a UTF-16 "
                         "byte-order mark); save it as UTF-8 or set data.encoding = 'utf-16'")
    return DataError(f"{p}:{line}: is not UTF-8 text (byte 0x{byte} at offset {offset}); save "
                     "it as UTF-8 or set data.encoding = 'latin-1' (or the file's encoding) in "
                     "the profile")


def bad_encoding_error(p: Path, data: bytes, offset: int, encoding: str) -> DataError:
    line = data.count(b"\n", 0, offset) + 1
    return DataError(f"{p}:{line}: cannot be decoded as {encoding} (byte "
                     f"0x{data[offset:offset + 1].hex()} at offset {offset}); save it as UTF-8 "
                     "or set data.encoding to the file's encoding")
