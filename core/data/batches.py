"""A data file as record batches, with the share read so far: the browser's way in to the rows
training reads (torch-free; the TUI imports it).

``fast_batches`` streams what can be streamed: UTF-8 CSV/TSV block by block with the dialect
and options of ``delimited`` (training's), Parquet batch by batch. When the stream gives up it
raises ``StreamFailed``, and the caller asks ``whole_file_batches``: training's whole-file
reader, whose rows, refusals and messages (file, line, fix) are the ones training gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from tunedeck.core.data.delimited import StreamFailed, stream_delimited
from tunedeck.core.data.formats import SNIFF_BYTES, UTF8_BOM, declared_encoding
from tunedeck.core.data.reader import read_source

BLOCK = 1 << 20  # bytes per parsed block: ~10k rows of short text, parsed in a few ms
TEXT_BATCH = 65536
PARQUET_FIRST = 1000  # a small first read of a big Parquet file, so its first rows show at once

Batches = Iterator[tuple[pa.RecordBatch, float]]  # (batch, share of the file read so far)


class BatchReader:
    """``format`` may change once read: "json" that was JSON Lines says so."""

    def __init__(self, path: Path, fmt: str, encoding: str | None = None):
        self.path, self.format, self.encoding = path, fmt, encoding

    def fast_batches(self) -> Batches:
        if self.format in ("csv", "tsv") and self._utf8():
            yield from self._delimited()
        elif self.format == "parquet":
            yield from self._parquet()
        else:
            yield from self.whole_file_batches()

    def whole_file_batches(self) -> Batches:
        """Training's reader, whole: its rows, its refusals, its messages."""
        loaded = read_source(self.path, self.format, encoding=self.encoding)
        self.format = loaded.format
        batches = loaded.table.combine_chunks().to_batches(max_chunksize=TEXT_BATCH)
        for i, b in enumerate(batches):
            yield b, (i + 1) / len(batches)

    def _utf8(self) -> bool:
        """UTF-8 (with or without a BOM) streams; other encodings are decoded whole first."""
        with open(self.path, "rb") as f:
            head = f.read(4)
        return declared_encoding(head, self.encoding) in ("utf-8", "utf-8-sig")

    def _delimited(self) -> Batches:
        size = max(1, self.path.stat().st_size)
        rows = 0
        with open(self.path, "rb") as f:
            head = f.read(SNIFF_BYTES + len(UTF8_BOM))
            bom = len(UTF8_BOM) if head.startswith(UTF8_BOM) else 0
            f.seek(bom)
            for b in stream_delimited(f, head[bom:], size - bom, self.format, BLOCK):
                rows += b.num_rows
                yield b, f.tell() / size
        if not rows:
            raise StreamFailed("no rows")  # empty, or a header alone: training's reader says which

    def _parquet(self) -> Batches:
        try:
            pf = pq.ParquetFile(self.path)
        except pa.ArrowInvalid as e:
            raise StreamFailed(str(e)) from None
        total = max(1, pf.metadata.num_rows)
        done = skip = 0
        if total > 2 * PARQUET_FIRST:
            first = next(pf.iter_batches(batch_size=PARQUET_FIRST))
            done = skip = first.num_rows
            yield first, done / total
        for b in pf.iter_batches(batch_size=TEXT_BATCH):
            if skip:  # the rows of the small first read, already handed out
                cut = min(skip, b.num_rows)
                b, skip = b.slice(cut), skip - cut
                if not b.num_rows:
                    continue
            done += b.num_rows
            yield b, done / total
