"""The ``RUN/evals/<name>/`` contract: one evaluation's metrics and per-example predictions.

Torch-free (pyarrow, json): ``tunedeck eval`` writes it, the TUI and error analysis read it.

``RUN/evals/<name>/`` holds

- ``metrics.json``: task, split (or null), data (file path or null), checkpoint
  ("final" | "best" | "step-N"), step (int or null), rows, label_names (classification), the
  metric keys of ``RUN/metrics.json`` (accuracy, f1_macro, ..., eval_loss, perplexity, generation
  metrics where asked) and created (unix time).
- ``predictions.parquet``: one row per example, columns as ``PREDICTIONS_SCHEMA``.

The folder is built under a temporary name beside it and renamed into place, so a reader sees a
whole evaluation or none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from tunedeck.core.errors import UserError
from tunedeck.core.fsutil import read_json

EVALS_DIR = "evals"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.parquet"

PREDICTIONS_SCHEMA = pa.schema([
    pa.field("source", pa.string()),            # the data file the example came from
    pa.field("row", pa.int64()),                # 1-based record number in that file; null if unknown
    pa.field("text", pa.string()),              # input text, or the prompt
    pa.field("gold", pa.string()),              # gold label name, or the reference response
    pa.field("predicted", pa.string()),         # predicted label name, or the generation
    pa.field("probability", pa.float64()),      # of the predicted label; null for LM / seq2seq
    pa.field("gold_probability", pa.float64()),  # of the gold label; null for LM / seq2seq
    pa.field("probabilities", pa.list_(pa.float64())),  # label_names order; null for LM / seq2seq
    pa.field("loss", pa.float64()),             # per-example loss (mean token loss / cross-entropy)
    pa.field("tokens", pa.int64()),             # input length in tokens
])
PREDICTION_COLUMNS = tuple(PREDICTIONS_SCHEMA.names)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class EvalResult:
    """One evaluation folder as read back."""
    name: str
    path: Path
    metrics: dict[str, Any]

    @property
    def predictions_path(self) -> Path:
        return self.path / PREDICTIONS_FILE


def evals_dir(run_dir: Path) -> Path:
    return Path(run_dir) / EVALS_DIR


def check_eval_name(name: str) -> str:
    """``name`` if it is a safe folder name (letters, digits, . _ -), else a UserError."""
    if not _SAFE_NAME.match(name) or name in (".", ".."):
        raise UserError(f"evaluation name {name!r} is not a safe folder name: use letters, digits, "
                        f"'.', '_' and '-' (at most 100 characters), e.g. --name test-final.")
    return name


def default_eval_name(split_or_file: str, checkpoint: str) -> str:
    """``<split-or-file-stem>-<checkpoint>``, e.g. ``test-final``, ``new_tickets-step-40``."""
    stem = Path(split_or_file).stem if ("/" in split_or_file or "." in split_or_file) else split_or_file
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-") or "data"
    return f"{stem}-{checkpoint}"


def predictions_table(columns: Mapping[str, Sequence[Any]]) -> pa.Table:
    """A table in ``PREDICTIONS_SCHEMA`` from column lists; missing nullable columns are nulls."""
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"prediction columns differ in length: {sorted(lengths)}")
    n_rows = lengths.pop() if lengths else 0
    unknown = set(columns) - set(PREDICTION_COLUMNS)
    if unknown:
        raise ValueError(f"unknown prediction columns: {sorted(unknown)}")
    arrays = [pa.array(list(columns.get(field.name, [None] * n_rows)), type=field.type)
              for field in PREDICTIONS_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=PREDICTIONS_SCHEMA)


def write_eval(run_dir: Path, name: str, metrics: Mapping[str, Any],
               predictions: pa.Table | Mapping[str, Sequence[Any]]) -> Path:
    """Write ``RUN/evals/<name>/`` whole (temp folder, then rename); replaces an older one."""
    table = predictions if isinstance(predictions, pa.Table) else predictions_table(predictions)
    table = table.select(list(PREDICTION_COLUMNS)).cast(PREDICTIONS_SCHEMA)
    parent = evals_dir(run_dir)
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / check_eval_name(name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))
    try:
        record = {"created": time.time(), **dict(metrics)}
        (tmp / METRICS_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n",
                                        encoding="utf-8")
        pq.write_table(table, tmp / PREDICTIONS_FILE)
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _replace_dir(new: Path, final: Path) -> None:
    # A directory cannot be os.replace'd over a non-empty one: move the old aside first, so
    # that at every moment ``final`` is the old whole evaluation, absent, or the new one.
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}-{time.time_ns()}")
        os.rename(final, old)
    os.rename(new, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_eval(eval_dir: Path) -> EvalResult | None:
    """The evaluation in ``eval_dir``, or None when it has no readable metrics.json."""
    eval_dir = Path(eval_dir)
    metrics = read_json(eval_dir / METRICS_FILE)
    if not isinstance(metrics, dict):
        return None
    return EvalResult(name=eval_dir.name, path=eval_dir, metrics=metrics)


def read_predictions(eval_dir: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """``predictions.parquet`` of one evaluation (all columns, or those named)."""
    return pq.read_table(Path(eval_dir) / PREDICTIONS_FILE,
                         columns=list(columns) if columns is not None else None)


def list_evals(run_dir: Path) -> list[EvalResult]:
    """The run's evaluations, newest first (temporary and half-removed folders skipped)."""
    parent = evals_dir(run_dir)
    if not parent.is_dir():
        return []
    found = [read_eval(child) for child in parent.iterdir()
             if child.is_dir() and not child.name.startswith(".")]
    results = [result for result in found if result is not None]
    return sorted(results, key=lambda r: float(r.metrics.get("created") or 0), reverse=True)
