"""``tunedeck data split``: train/validation/test files in a folder, stratified, seeded, grouped.

Rows are assigned by ``tunedeck.core.data.split.assign_splits`` (the same code training uses to
carve splits, so the same seed gives the same rows). With ``group_by`` whole groups are
assigned (stratified by each group's first label): the fractions then count groups, and no
group is ever cut across two splits. The folder holds ``train.EXT``, ``validation.EXT`` and
``test.EXT`` in the input's format (a ``save_to_disk`` DatasetDict for Arrow input), written
under a temp name and renamed whole; the leakage check runs on the result.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tunedeck.core.data.split import TEST, TRAIN, VALIDATION, assign_splits
from tunedeck.core.data.table_stats import guess_columns
from tunedeck.core.errors import DataError
from tunedeck.core.prepare.leakage import leakage
from tunedeck.core.prepare.recipe import write_recipe
from tunedeck.core.prepare.report import OpReport
from tunedeck.core.prepare.runner import resolve_output
from tunedeck.core.prepare.streaming import (Progress, Writer, check_output, open_source,
                                             replace_path, temp_beside)

CODES = (("train", TRAIN), ("validation", VALIDATION), ("test", TEST))


def parse_fractions(text: str) -> tuple[float, float, float]:
    """"80/10/10", "0.8,0.1,0.1" or "8:1:1" -> fractions summing to 1."""
    parts = [p for p in text.replace("/", ",").replace(":", ",").split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or any(v < 0 for v in values) or values[0] <= 0:
        raise DataError(f"--fractions {text!r}: give three non-negative shares, train first, "
                        "e.g. 80/10/10 or 0.8,0.1,0.1")
    total = sum(values)
    return values[0] / total, values[1] / total, values[2] / total


def _ids(col: pa.ChunkedArray) -> np.ndarray:
    """Dense ids of a column's values (nulls are a value of their own)."""
    col = pc.fill_null(pc.cast(col, pa.string()), "\0null")
    return pc.index_in(col, value_set=pc.unique(col)).to_numpy().astype(np.int64)


def split_codes(table: pa.Table, label: str | None, group_by: str | None,
                fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    n = table.num_rows
    labels = _ids(table.column(label)) if label else None
    if not group_by:
        return assign_splits(labels, n, fractions[1], fractions[2], seed)
    groups = _ids(table.column(group_by))
    n_groups = int(groups.max()) + 1 if n else 0
    first_row = np.full(n_groups, n, dtype=np.int64)
    np.minimum.at(first_row, groups, np.arange(n))
    group_labels = labels[first_row] if labels is not None else None
    if group_labels is not None:  # re-number the labels groups actually carry
        group_labels = np.unique(group_labels, return_inverse=True)[1]
    return assign_splits(group_labels, n_groups, fractions[1], fractions[2], seed)[groups]


def split_file(src: str | Path, out: str | Path | None = None,
               fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 42,
               label: str | None = None, group_by: str | None = None, text: str | None = None,
               stratify: bool = True, fmt: str | None = None, dry_run: bool = False,
               progress: Progress | None = None) -> OpReport:
    """Split ``src`` into a folder (default ``NAME.split/``) of train/validation/test files."""
    src = Path(src)
    source = open_source(src)
    table = pa.Table.from_batches(list(source.batches(progress)))
    guess_t, guess_l = guess_columns(table)
    text = text or guess_t
    label = (label or guess_l) if stratify else None
    for what, col in (("--label", label), ("--group-by", group_by), ("--text", text)):
        if col and col not in table.column_names:
            raise DataError(f"{src}: has no column {col!r} ({what}); its columns are: "
                            f"{', '.join(table.column_names)}")
    codes = split_codes(table, label, group_by, fractions, seed)
    parts = {name: table.filter(pa.array(codes == code)) for name, code in CODES}
    report = OpReport("split", str(src), rows_in=table.num_rows, rows_out=table.num_rows)
    report.extra["splits"] = {k: v.num_rows for k, v in parts.items()}
    if label:
        report.extra["label_counts"] = {k: _counts(v.column(label)) for k, v in parts.items()}
    if text:
        report.extra["leakage"] = leakage({k: v.column(text) for k, v in parts.items()})
    report.extra["columns"] = {"text": text, "label": label, "group_by": group_by}
    folder, out_fmt = resolve_output(src, out, "split", source.format, fmt)
    if folder.suffix in (".csv", ".tsv", ".jsonl", ".json", ".parquet") and out is None:
        folder = folder.with_suffix("")
        check_output(src, folder)
    if not dry_run:
        _write_folder(folder, out_fmt, parts)
        report.output = str(folder)
        options = {"fractions": list(fractions), "label_column": label, "group_by": group_by,
                   "text_column": text, "stratify": stratify, "format": out_fmt}
        write_recipe(folder, report, options, [src], seed)
    return report


def _counts(col: pa.ChunkedArray) -> dict[str, int]:
    vc = pc.value_counts(pc.cast(col, pa.string()))
    return {str(v["values"]): int(v["counts"]) for v in vc.to_pylist()}


def _write_folder(folder: Path, fmt: str, parts: dict[str, pa.Table]) -> None:
    tmp = temp_beside(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name, table in parts.items():
            target = tmp / (name if fmt == "arrow" else f"{name}.{fmt}")
            w = Writer(target, fmt)
            w.write(table)
            w.commit(table.schema)
        if fmt == "arrow":
            (tmp / "dataset_dict.json").write_text(json.dumps({"splits": list(parts)}))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_path(tmp, folder)


def split_summary(report: OpReport) -> list[str]:
    lines = ["splits: " + ", ".join(f"{k} {v:,}" for k, v in report.extra["splits"].items())]
    for name, counts in (report.extra.get("label_counts") or {}).items():
        lines.append(f"  labels in {name}: " + ", ".join(f"{k} {v:,}" for k, v in
                                                        sorted(counts.items())))
    return lines


