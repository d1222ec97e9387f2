"""The shape every row-wise operation shares: read batches, transform, write, recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa

from tunedeck.core.prepare.recipe import write_recipe
from tunedeck.core.prepare.report import OpReport
from tunedeck.core.prepare.streaming import (Progress, Writer, check_output, default_output,
                                             open_source, output_format)

Transform = Callable[[Iterator[pa.RecordBatch], OpReport], Iterator[pa.RecordBatch]]


def resolve_output(src: Path, out: str | Path | None, suffix: str, in_format: str,
                   fmt: str | None) -> tuple[Path, str]:
    """The output path and format: ``--out`` (its extension names the format unless ``fmt``
    does), else ``NAME.<suffix>.EXT`` beside the input in the input's format."""
    if out is None:
        fmt = output_format(Path("x"), in_format, fmt)
        path = default_output(src, suffix, fmt)
        if path == src:  # e.g. convert without a format change
            path = default_output(src, suffix or "converted", fmt)
    else:
        path = Path(out)
        fmt = output_format(path, in_format, fmt)
    check_output(src, path)
    return path, fmt


def run_streaming(op: str, src: Path, out: str | Path | None, fmt: str | None, dry_run: bool,
                  progress: Progress | None, transform: Transform, options: dict[str, Any],
                  seed: int | None = None, suffix: str | None = None) -> OpReport:
    """Stream ``src`` through ``transform`` into ``out``; nothing is written on a dry run, and
    nothing is left under the output's name when anything fails."""
    source = open_source(src)
    report = OpReport(op, str(src))
    path, out_fmt = resolve_output(src, out, suffix if suffix is not None else op,
                                   source.format, fmt)
    writer = None if dry_run else Writer(path, out_fmt)
    schema = None
    try:
        for batch in transform(source.batches(progress), report):
            schema = batch.schema
            if writer is not None and batch.num_rows:
                writer.write(batch)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.commit(schema)
        report.output = str(path)
        write_recipe(path, report, options, [src], seed)
    return report
