"""``tunedeck predict RUN --file in.csv --out preds.csv``: a whole file through a run's model.

Rows are read with the training reader and the profile's input column (cleaned as training
cleans it; no row is dropped), predicted in the evaluation's token-budget batches
(``run_eval``), and written with every input column plus ``predicted`` and ``probability``
(classification) or ``generation`` (causal LM, seq2seq). The output is written beside its name
and renamed into place; its format follows its extension (.csv, .tsv, .jsonl, .parquet).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np
import pyarrow as pa

from tunedeck.core.errors import UserError

OUT_FORMATS = (".csv", ".tsv", ".jsonl", ".parquet")


class ProgressBar:
    """``done/total`` on stderr: a redrawn bar on a terminal, a line per 10% otherwise."""

    def __init__(self, total: int, label: str = "predict", stream: TextIO | None = None):
        self.total, self.label, self.done = max(1, total), label, 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last_tenth = -1

    def __call__(self, n: int) -> None:
        self.done = min(self.total, self.done + n)
        share = self.done / self.total
        if self.tty:
            bar = "#" * int(share * 30)
            self.stream.write(f"\r{self.label} [{bar:<30}] {share:4.0%} {self.done}/{self.total}")
            if self.done >= self.total:
                self.stream.write("\n")
        elif int(share * 10) > self._last_tenth:
            self._last_tenth = int(share * 10)
            self.stream.write(f"{self.label}: {share:.0%} ({self.done}/{self.total} rows)\n")
        self.stream.flush()


def predict_file(run: Any, in_path: Path, out_path: Path, checkpoint: str = "final",
                 progress: Callable[[int], None] | None = None) -> int:
    """Predict every row of ``in_path`` into ``out_path``; returns the number of rows."""
    from tunedeck.core.data.reader import read_source
    from tunedeck.core.eval.eval_data import file_rows
    from tunedeck.core.eval.run_model import load_run_model

    suffix = out_path.suffix.lower()
    if suffix not in OUT_FORMATS:
        raise UserError(f"--out {out_path}: unknown format {suffix or '(no extension)'}; name it "
                        f"with one of {', '.join(OUT_FORMATS)}")
    rm = load_run_model(run, checkpoint)
    source = read_source(in_path, rm.profile.data.format, encoding=rm.profile.data.encoding)
    rows = file_rows(rm.profile, in_path, rm.label_names, with_targets=False)
    n = rows.table.num_rows
    bar = progress or ProgressBar(n)
    extra = _predict_rows(rm, rows, bar)
    table = source.table
    for name, values in extra.items():
        if name in table.column_names:  # the input's own "predicted" column stays as it was
            name = f"{name}_1"
        table = table.append_column(name, values)
    write_table(table, out_path)
    return n


def _predict_rows(rm: Any, rows: Any, progress: Callable[[int], None]) -> dict[str, pa.Array]:
    from tunedeck.core.eval.eval_data import tokenize_rows
    from tunedeck.core.eval.batch_generation import generate_texts
    from tunedeck.core.eval.run_eval import eval_batch_size, forward_pass

    column = rows.table.column_names[0]
    texts = rows.column(column)
    if rm.label_names is not None:
        # Labels are unknown here; class 0 stands in so that the task's tokenization applies.
        dummy = rows.table.append_column("label", pa.array(np.zeros(len(texts), dtype=np.int64)))
        examples = tokenize_rows(rm.task, type(rows)(dummy, rows.source, None), rm.tokenizer,
                                 rm.profile.training.max_length)
        probs = forward_pass(rm, examples, progress)["probs"]
        best = probs.argmax(-1)
        return {"predicted": pa.array([rm.label_names[i] for i in best], pa.string()),
                "probability": pa.array(probs[np.arange(len(best)), best], pa.float64())}
    max_length = rm.profile.training.max_length
    if column == "messages":  # chat rows: answer after the turns before the last answer
        prompts = rm.task.generation_prompts({"messages": texts}, rm.tokenizer, max_length)
    elif rm.profile.task.type == "causal-lm":
        prompts = [rm.task.prompt_ids(rm.tokenizer, t)[-max_length:] for t in texts]
    else:
        prompts = rm.task.generation_prompts({"prompt": texts}, rm.tokenizer, max_length)
    generations = generate_texts(rm, prompts, eval_batch_size(rm.profile), progress)
    return {"generation": pa.array(generations, pa.string())}


def write_table(table: pa.Table, path: Path) -> None:
    """``table`` to ``path`` in the format of its extension, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
        elif suffix == ".jsonl":
            with tmp.open("w", encoding="utf-8") as f:
                for record in table.to_pylist():
                    f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        else:
            import pyarrow.csv as pcsv

            options = pcsv.WriteOptions(delimiter="\t" if suffix == ".tsv" else ",")
            pcsv.write_csv(table, tmp, write_options=options)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
