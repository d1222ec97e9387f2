"""Read a dataset as a stream of Arrow record batches, and write one back the same way.

CSV/TSV stream block by block through ``delimited.stream_delimited`` (same dialect and options as
training reads them), so a million-row file never exists as Python objects: memory is one block
plus what an operation keeps per row (8-byte hashes for dedup). Other formats are read whole by
``reader.read_source`` (JSON and Parquet are columnar already) and handed out in slices.

Writers write to a hidden temp name beside the output and rename it into place on ``commit``: a
crash or an error leaves no half-written dataset under the user's name.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from tunedeck.core.data.delimited import StreamFailed, stream_delimited
from tunedeck.core.data.formats import SNIFF_BYTES, UTF8_BOM, format_from_name, refuse_unsupported
from tunedeck.core.data.head import sniffed_format
from tunedeck.core.data.reader import read_source, stat_source
from tunedeck.core.errors import DataError

BLOCK_BYTES = 1 << 20  # 1 MiB of CSV per batch (pyarrow reads a few blocks ahead: memory ~ blocks)
BATCH_ROWS = 1 << 16  # rows per batch for formats read whole
OUT_FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "arrow")
Progress = Callable[[int, int], None]


@dataclass
class Source:
    """An input dataset: its format, and its batches (``progress(done, total)`` as they go)."""

    path: Path
    format: str
    streamed: bool  # True: read block by block (done/total in bytes), else rows

    def batches(self, progress: Progress | None = None) -> Iterator[pa.RecordBatch]:
        progress = progress or (lambda d, t: None)
        if self.streamed:
            yield from _stream_csv(self.path, self.format, progress)
            return
        table = read_source(self.path, "auto" if self.format == "arrow" else self.format).table
        total, done = table.num_rows, 0
        for batch in table.to_batches(max_chunksize=BATCH_ROWS):
            done += batch.num_rows
            yield batch
            progress(done, total)

    def read_all(self) -> pa.Table:
        batches = list(self.batches())
        return pa.Table.from_batches(batches) if batches else pa.table({})


def open_source(path: str | os.PathLike[str], fmt: str = "auto") -> Source:
    """The dataset at ``path``; errors are the data layer's (file, line, fix)."""
    p = Path(path)
    st = stat_source(p, fmt, None, "check the path")
    if p.is_dir():
        return Source(p, "arrow", False)
    if fmt == "auto":
        refuse_unsupported(p)
        fmt = format_from_name(p) or "auto"
    if fmt == "auto":
        with p.open("rb") as f:
            fmt = sniffed_format(p, f.read(SNIFF_BYTES))
    streamed = fmt in ("csv", "tsv") and st.st_size > 0
    return Source(p, fmt, streamed)


def _stream_csv(p: Path, fmt: str, progress: Progress) -> Iterator[pa.RecordBatch]:
    size = p.stat().st_size
    with p.open("rb") as f:
        head = f.read(SNIFF_BYTES)
        start = len(UTF8_BOM) if head.startswith(UTF8_BOM) else 0
        try:
            head[start:].decode("utf-8", errors="strict")
        except UnicodeDecodeError as e:
            if e.reason != "unexpected end of data":
                read_source(p, fmt)  # raises the data layer's "not UTF-8" message with the line
        f.seek(start)
        done = start
        try:
            for batch in stream_delimited(f, head[start:], size, fmt, BLOCK_BYTES):
                # pyarrow reads ahead of the batches it hands out, so f.tell() runs early: the
                # bytes a batch came from are estimated from its values (+ a separator each).
                done += _text_bytes(batch)
                yield batch
                progress(min(done, size - 1), size)
            progress(size, size)
        except (StreamFailed, UnicodeDecodeError):
            read_source(p, fmt)  # the whole-file reader names the line and the fix
            raise DataError(f"{p}: cannot be read as {fmt.upper()}; check the file") from None


def _text_bytes(batch: pa.RecordBatch) -> int:
    import pyarrow.compute as pc

    values = sum(pc.sum(pc.binary_length(c)).as_py() or 0 for c in batch.columns)
    return int(values) + batch.num_rows * batch.num_columns


# --- writing ------------------------------------------------------------------------------

def output_format(out: Path, fallback: str, fmt: str | None = None) -> str:
    """The format to write: asked for, else the output's extension, else the input's."""
    if fmt:
        if fmt not in OUT_FORMATS:
            raise DataError(f"unknown output format {fmt!r}; use one of {', '.join(OUT_FORMATS)}")
        return fmt
    named = format_from_name(out)
    if named in OUT_FORMATS:
        return named
    if named == "text" or fallback not in OUT_FORMATS:
        return "jsonl"
    return fallback


def temp_beside(out: Path) -> Path:
    return out.with_name(f".{out.name}.tmp-{os.getpid()}")


def replace_path(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out``; a folder replaces an older folder of that name whole."""
    if out.is_dir() and not out.is_symlink():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


class Writer:
    """Batches to ``out`` in ``fmt``, via a temp name; ``commit`` renames, ``abort`` removes."""

    def __init__(self, out: Path, fmt: str):
        self.out, self.fmt = out, fmt
        self.tmp = temp_beside(out)
        self.rows = 0
        self._impl: Any = None
        self._file: Any = None
        self._batches: list[pa.RecordBatch] = []  # arrow (save_to_disk) is written at the end
        self._json_first = True

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if isinstance(batch, pa.Table):
            for b in batch.to_batches():
                self.write(b)
            return
        try:
            if self._impl is None and self._file is None and self.fmt != "arrow":
                self._open(batch.schema)
            self._write(batch)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            self.abort()
            other = "jsonl or parquet" if self.fmt in ("csv", "tsv") else "jsonl"
            raise DataError(f"{self.out}: cannot write this data as {self.fmt} ({e}); write "
                            f"{other} instead (--to, or an --out name with that extension)") \
                from None
        self.rows += batch.num_rows

    def _open(self, schema: pa.Schema) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.fmt == "csv":
            self._impl = pa_csv.CSVWriter(str(self.tmp), schema)
        elif self.fmt == "parquet":
            self._impl = pq.ParquetWriter(str(self.tmp), schema)
        else:
            self._file = self.tmp.open("w", encoding="utf-8", newline="")
            if self.fmt == "json":
                self._file.write("[")
            if self.fmt == "tsv":
                self._file.write("\t".join(schema.names) + "\n")

    def _write(self, batch: pa.RecordBatch) -> None:
        if self.fmt == "arrow":
            self._batches.append(batch)
        elif self._impl is not None:
            self._impl.write(batch)
        elif self.fmt == "tsv":
            self._write_tsv(batch)
        else:
            for row in batch.to_pylist():
                text = json.dumps(row, ensure_ascii=False, default=str)
                if self.fmt == "json":
                    self._file.write(("\n" if self._json_first else ",\n") + text)
                    self._json_first = False
                else:
                    self._file.write(text + "\n")

    def _write_tsv(self, batch: pa.RecordBatch) -> None:
        """Tab-separated without quoting, as the reader reads TSV: a tab or newline inside a
        value cannot be written."""
        cols = [["" if v is None else str(v) for v in c.to_pylist()] for c in batch.columns]
        for i, row in enumerate(zip(*cols)):
            bad = next((v for v in row if "\t" in v or "\n" in v or "\r" in v), None)
            if bad is not None:
                raise pa.ArrowInvalid(f"row {self.rows + i + 1} holds a tab or a line break "
                                      f"({bad[:40]!r}), which TSV cannot hold")
            self._file.write("\t".join(row) + "\n")

    def commit(self, schema: pa.Schema | None = None) -> Path:
        """Finish the file and rename it into place; an empty result still gets its header."""
        if self.fmt == "arrow":
            self._save_to_disk(schema)
        else:
            if self._impl is None and self._file is None:
                self._open(schema or pa.schema([]))
            if self._impl is not None:
                self._impl.close()
            if self._file is not None:
                if self.fmt == "json":
                    self._file.write("\n]\n")
                self._file.close()
        replace_path(self.tmp, self.out)
        return self.out

    def _save_to_disk(self, schema: pa.Schema | None) -> None:
        from datasets import Dataset
        from datasets.table import InMemoryTable

        table = (pa.Table.from_batches(self._batches) if self._batches
                 else pa.table({n: pa.array([], t) for n, t in zip(schema.names, schema.types)})
                 if schema is not None else pa.table({}))
        Dataset(InMemoryTable(table)).save_to_disk(str(self.tmp))

    def abort(self) -> None:
        for h in (self._impl, self._file):
            try:
                if h is not None:
                    h.close()
            except Exception:  # noqa: BLE001 - cleaning up after an error already raised
                pass
        self._impl = self._file = None
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp.exists():
            self.tmp.unlink()


# --- progress -----------------------------------------------------------------------------

def progress_printer(op: str, machine: bool) -> Progress:
    """``progress DONE TOTAL`` lines (``--json``: for the TUI) or a bar for people, on stderr."""
    last = [-1]

    def show(done: int, total: int) -> None:
        if machine:
            print(f"progress {done} {total}", file=sys.stderr, flush=True)
            return
        pct = int(100 * done / total) if total else 0
        if pct == last[0]:
            return
        last[0] = pct
        bar = "#" * (pct // 4) + "." * (25 - pct // 4)
        end = "\n" if total and done >= total else ""
        print(f"\r{op} [{bar}] {pct:3d}%", end=end, file=sys.stderr, flush=True)

    return show


def default_output(src: Path, suffix: str, fmt: str) -> Path:
    """``tickets.csv`` -> ``tickets.<suffix>.csv``; no extension -> the format's; a folder ->
    ``folder.<suffix>`` (a folder again, for ``arrow``)."""
    ext = "" if fmt == "arrow" else f".{fmt}"
    stem = src.name if src.is_dir() else (src.stem if src.suffix else src.name)
    name = f"{stem}.{suffix}{ext}" if suffix else f"{stem}{ext}"
    return src.with_name(name)


def check_output(src: Path, out: Path) -> None:
    """Refuse to write over the input (the original is never modified)."""
    try:
        same = out.exists() and os.path.samefile(src, out)
    except OSError:
        same = False
    if same or out.resolve() == src.resolve():
        raise DataError(f"{out}: is the input itself; the original is never modified: give "
                        "--out another name")
    if out.is_dir() and src.resolve().is_relative_to(out.resolve()):
        raise DataError(f"{out}: is a folder holding the input; a folder output replaces the "
                        "folder whole, originals and all: give --out a new folder name")
    _refuse_foreign(out)


def _refuse_foreign(out: Path) -> None:
    """Replace only what ``tunedeck data`` wrote (its recipe is beside it) or an empty folder:
    an --out naming someone's file or folder must not delete it."""
    from tunedeck.core.prepare.recipe import recipe_path  # recipe imports this module

    if not (out.exists() or out.is_symlink()) or recipe_path(out).exists():
        return
    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        return
    raise DataError(f"{out}: already exists and was not written by `tunedeck data` (no "
                    f"{recipe_path(out).name} beside it); nothing is overwritten: give --out a "
                    "new name, or move it away first")
