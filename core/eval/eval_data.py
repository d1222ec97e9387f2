"""The rows an evaluation or a batch prediction reads, through the training data layer.

``--split``: ``read_splits`` on the run's frozen profile, so the split is the run's own (the
data's fingerprint must match the one the run recorded). ``--data FILE``: the same reader,
column mapping and cleaning rules on one file; labels are the run's classes.
Tokenized with the task's own ``tokenize_batch`` (what training cached), into the engine's
``TokenizedSet``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tunedeck.core.engine.examples import TokenizedSet
from tunedeck.core.errors import DataError, UserError

TOKENIZE_CHUNK = 1000  # rows per tokenizer call, as the training map's batch_size


@dataclass
class EvalRows:
    """Standard columns (text/label or prompt/response) + ``row``, and the file they came from."""

    table: pa.Table
    source: str
    split: str | None
    packed: bool = False  # a packed text corpus: documents, evaluated as max_length blocks

    def column(self, name: str) -> list[Any]:
        return self.table.column(name).to_pylist() if name in self.table.column_names else []


def split_rows(run: Any, profile: Any, split: str) -> EvalRows:
    """The run's ``split`` exactly as training drew it."""
    from tunedeck.core.data import read_splits

    data = read_splits(profile)
    recorded = run.read_status().get("data_fingerprint")
    if recorded and data.fingerprint != recorded:
        raise DataError(f"the data of run {run.id} changed since it trained (a data file, or the "
                        f"split/cleaning settings in {run.profile_path}, differ): its {split} "
                        f"split would not be the one it was tested on. Restore the data, or "
                        f"evaluate a file with --data FILE")
    dataset = data.splits.get(split)
    if dataset is None or len(dataset) == 0:
        raise UserError(f"run {run.id} has no {split} split (data.{split} is not set and "
                        f"data.split gives it no rows); use --split validation|test or --data FILE")
    carved = split in (data.stats.get("carved_from_train") or [])
    source = profile.data.train if carved else getattr(profile.data, split)
    packed = bool(data.stats["files"]["train"].get("packed"))
    return EvalRows(dataset.data.table, str(source), split, packed)


def file_rows(profile: Any, path: Path, label_names: list[str] | None,
              with_targets: bool = True) -> EvalRows:
    """``path`` read, mapped and cleaned like training data; labels as the run's class ids.
    Without targets (predict) only the input column is needed and no row is dropped."""
    from tunedeck.core.data.reader import read_source
    from tunedeck.core.data.splits_reader import rows_like_training

    if not Path(path).exists():
        raise UserError(f"--data {path}: no such file; check the path")
    src = read_source(path, profile.data.format, key=None, encoding=profile.data.encoding)
    if with_targets and corpus_file(profile, src):
        from tunedeck.core.data.packing import corpus_table

        table = rows_like_training(profile, src, "eval", inputs_only=True)
        return EvalRows(corpus_table(table, src.format, profile.data.documents), str(path),
                        None, True)
    table = rows_like_training(profile, src, "eval", inputs_only=not with_targets)
    if not with_targets:
        table = _normalised(table, profile.data.clean)
    if with_targets and label_names is not None:
        table = _encode_labels(table, src, label_names)
    return EvalRows(table, str(path), None)


def _normalised(table: pa.Table, clean: bool) -> pa.Table:
    """Inputs cleaned as training cleans them, every row kept (a null becomes "")."""
    from tunedeck.core.data.cleaning import normalise

    for name in table.column_names:
        if name == "row":
            continue
        col = pc.fill_null(table.column(name), "")
        table = table.set_column(table.column_names.index(name), name,
                                 normalise(col) if clean else col)
    return table


def _encode_labels(table: pa.Table, src: Any, label_names: list[str]) -> pa.Table:
    ids = pc.index_in(table.column("label"), value_set=pa.array(label_names, type=pa.string()))
    missing = pc.is_null(ids).to_numpy(zero_copy_only=False)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        row = int(table.column("row")[i].as_py())
        where = f"{src.path}:{row}" if src.unit == "line" else f"{src.path} ({src.unit} {row})"
        raise DataError(f"{where}: label {table.column('label')[i].as_py()!r} is not one of the "
                        f"run's classes ({', '.join(label_names[:20])}); fix the label or drop "
                        f"the row ({int(missing.sum())} row(s) of this file have such labels)")
    return table.set_column(table.column_names.index("label"), "label", pc.cast(ids, pa.int64()))


def corpus_file(profile: Any, src: Any) -> bool:
    """Whether training would read ``src`` as a packed text corpus (``packing.packing_on``)."""
    from tunedeck.core.data.packing import packing_on

    d = profile.data
    return (profile.task.type == "causal-lm" and not d.prompt_column and not d.messages_column
            and packing_on(profile, src.format))


def tokenize_rows(task: Any, rows: EvalRows, tokenizer: Any, max_length: int) -> TokenizedSet:
    """The task's tokenization of every row, as the engine's example store; a packed corpus's
    documents as training cut them, EOS-joined blocks of ``max_length`` tokens."""
    if rows.packed:
        from datasets import Dataset
        from datasets.table import InMemoryTable

        from tunedeck.core.data.packing import pack_corpus

        docs = Dataset(InMemoryTable(rows.table))
        return TokenizedSet.from_dataset(pack_corpus(docs, tokenizer, max_length))
    columns = [c for c in rows.table.column_names if c != "row"]
    ids: list[list[int]] = []
    labels: list[Any] = []
    n_targets: list[int] = []
    for start in range(0, rows.table.num_rows, TOKENIZE_CHUNK):
        chunk = rows.table.slice(start, TOKENIZE_CHUNK)
        batch = {c: chunk.column(c).to_pylist() for c in columns}
        encoded = task.tokenize_batch(batch, tokenizer, max_length)
        ids += encoded["input_ids"]
        labels += encoded["labels"]
        n_targets += encoded["n_targets"]
    row_numbers = np.asarray(rows.table.column("row").to_numpy(zero_copy_only=False), dtype=np.int64)
    return _as_tokenized_set(ids, labels, n_targets, row_numbers)


def _flat(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in lists])
    values = np.fromiter((v for x in lists for v in x), dtype=np.int64, count=int(offsets[-1]))
    return values, offsets


def _as_tokenized_set(ids: list[list[int]], labels: list[Any], n_targets: list[int],
                      rows: np.ndarray) -> TokenizedSet:
    flat_ids, offsets = _flat(ids)
    if labels and isinstance(labels[0], list):
        flat_labels, label_offsets = _flat(labels)
    else:
        flat_labels, label_offsets = np.asarray(labels, dtype=np.int64), None
    return TokenizedSet(flat_ids, offsets, flat_labels, label_offsets,
                        np.asarray(n_targets, dtype=np.int64), rows)
