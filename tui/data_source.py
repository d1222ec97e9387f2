"""The dataset browser's view of a data file: training's reader, memory-mapped for paging.

Parsing (formats, delimiter, header, encoding, malformed rows) is ``tunedeck.core.data``'s, the
same code training runs, so the browser shows exactly the rows training reads. What is the
browser's own is the view: the rows are written batch by batch into an uncompressed Arrow IPC file in a scratch folder
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

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from tunedeck.core.data.batches import BatchReader
from tunedeck.core.data.delimited import StreamFailed
from tunedeck.core.data.formats import FORMATS
from tunedeck.core.data.split import split_sizes
from tunedeck.core.data.table_stats import (Stats,  # noqa: F401 - the browser's names for them
                                            compute_stats, guess_columns, is_text_type, length_summary,
                                            type_name)
from tunedeck.core.errors import DataError
from tunedeck.tui.fmt import cell_text, full_text  # noqa: F401  (re-exported; pyarrow-free)
from tunedeck.core.data.head import arrow_files, dataset_splits, source_format

Progress = Callable[[float], None]
Cancelled = Callable[[], bool]


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
        return [(f.name, type_name(f.type)) for f in self.table.schema]


class Loader:
    """Streams a data file into a memory-mapped Arrow file, parsed by training's own reader.

    The batches are ``tunedeck.core.data.batches``' (CSV/TSV streamed with training's dialect,
    Parquet batch by batch, the rest through training's whole-file reader); when the stream
    gives up, the whole-file reader is asked, so the rows and the message are training's, word
    for word. What is the browser's is the scratch file and its mapping. ``run()`` yields progress
    fractions; ``head`` holds the first batch as soon as it is parsed, and ``result`` the
    complete, mapped table when ``run()`` is exhausted.
    """

    def __init__(self, path: str | os.PathLike[str], scratch: Path, fmt: str | None = None,
                 split: str | None = None, encoding: str | None = None):
        self.path = Path(path).expanduser()
        self.scratch = Path(scratch)
        self.format = fmt or source_format(self.path)
        if self.format not in FORMATS:
            raise DataError(f"{self.path}: unknown format {self.format!r}; one of {', '.join(FORMATS)}")
        self.encoding = encoding
        self.split = split
        self.splits: list[str] = []
        self.head: pa.Table | None = None
        self.result: Opened | None = None
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
            files = arrow_files(path)
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
        self.result = Opened(self.path, "arrow", table, True, self.notes, self.splits, self.split)

    def _convert(self) -> Iterator[float]:
        self.scratch.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="browse-", suffix=".arrow", dir=self.scratch)
        os.close(fd)
        dest = Path(tmp)
        reader = BatchReader(self.path, self.format, self.encoding)
        try:
            try:
                yield from self._write(dest, reader.fast_batches())
            except StreamFailed:
                # Training's reader names the line and the fix (or reads what the stream
                # could not, e.g. a row longer than a parse block).
                self.head = None
                yield from self._write(dest, reader.whole_file_batches())
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        self.format = reader.format  # "json" that was JSON Lines says so
        table = _map_arrow(dest)
        self.result = Opened(self.path, self.format, table, True, self.notes, scratch=dest)

    def _write(self, dest: Path, batches: Iterator[tuple[pa.RecordBatch, float]]
               ) -> Iterator[float]:
        writer = None
        try:
            for batch, done in batches:
                if self.cancelled():
                    raise DataError(f"{self.path}: loading cancelled")
                if self.head is None:
                    self.head = pa.Table.from_batches([batch])
                if writer is None:
                    writer = pa.ipc.new_file(str(dest), batch.schema)
                if batch.num_rows:
                    writer.write_batch(batch)
                yield min(done, 0.999)
        finally:
            if writer is not None:
                writer.close()
        yield 1.0

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
    summary, hist = length_summary(lens)
    return summary, hist, str(p)


def split_preview(n_rows: int, fractions: list[float] | tuple[float, ...]) -> tuple[int, int, int]:
    """Rows per split for ``n_rows`` kept rows: the sizes training's split produces."""
    n_val, n_test = split_sizes(n_rows, fractions[1], fractions[2])
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


__all__ = ["FORMATS", "Loader", "Opened", "Stats", "TableSource", "cell_text", "compute_stats",
           "dataset_splits", "filter_rows", "full_text", "guess_columns", "source_format",
           "split_preview", "token_lengths"]
