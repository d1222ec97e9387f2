"""``tunedeck data stats``: the dataset browser's statistics (``table_stats``) in the CLI, plus
token lengths for a tokenizer and the share of rows ``max_length`` would truncate.

Token lengths count what the model sees (special tokens included). Files over
``TOKEN_SAMPLE`` rows are measured on an evenly spaced sample of that many rows (said in the
output): percentiles of a 100k sample are within a token of the whole file's.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tunedeck.core.data.table_stats import compute_stats, guess_columns
from tunedeck.core.errors import DataError
from tunedeck.core.prepare.streaming import open_source

TOKEN_SAMPLE = 100_000
DEFAULT_MAX_LENGTH = 128


def load_tokenizer_ref(ref: str, runs_dir: Path | None = None) -> tuple[Any, str, int | None]:
    """(tokenizer, what it is, the run's max_length or None) for a run, folder or hub id."""
    from transformers import AutoTokenizer

    from tunedeck.core.models import resolve_model_path

    p = Path(ref)
    max_length = None
    if not p.is_dir() and runs_dir is not None and runs_dir.is_dir():
        from tunedeck.core.errors import RunError
        from tunedeck.core.runs.rundir import find_run

        try:  # a run id or a unique prefix of one
            p = find_run(runs_dir, ref).path
        except RunError:
            pass
    if p.is_dir() and (p / "profile.toml").is_file():  # a run directory
        from tunedeck.core.runs.lifecycle import load_profile

        prof = load_profile(p / "profile.toml")
        max_length = prof.training.max_length
        source = str(p / "model") if (p / "model").is_dir() else \
            resolve_model_path(prof.model.tokenizer or prof.model.name)
    else:
        source = str(p) if p.is_dir() else resolve_model_path(ref)
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    try:
        tok = AutoTokenizer.from_pretrained(source, local_files_only=offline)
    except Exception as e:  # noqa: BLE001 - transformers raises OSError/ValueError/...
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"--tokenizer {ref}: cannot load a tokenizer from {source} ({why}); give a "
                        "run, a model folder, or a hub id that is cached (offline)") from None
    return tok, source, max_length


def token_lengths(texts: pa.ChunkedArray, tokenizer: Any) -> tuple[np.ndarray, int]:
    """Token counts of (a sample of) the texts, and how many rows were measured."""
    n = len(texts)
    idx = np.arange(n) if n <= TOKEN_SAMPLE else \
        np.linspace(0, n - 1, TOKEN_SAMPLE).astype(np.int64)
    values = texts.take(pa.array(idx)).to_pylist()
    lengths = []
    for start in range(0, len(values), 1024):
        chunk = [v or "" for v in values[start:start + 1024]]
        enc = tokenizer(chunk, add_special_tokens=True, truncation=False)
        lengths.extend(len(ids) for ids in enc["input_ids"])
    return np.asarray(lengths, dtype=np.int64), len(values)


def token_summary(lengths: np.ndarray, max_length: int) -> dict[str, Any]:
    if lengths.size == 0:
        return {"rows": 0}
    q = np.percentile(lengths, [50, 90, 95, 99], method="nearest")
    over = int((lengths > max_length).sum())
    return {"rows": int(lengths.size), "min": int(lengths.min()), "mean": float(lengths.mean()),
            "p50": int(q[0]), "p90": int(q[1]), "p95": int(q[2]), "p99": int(q[3]),
            "max": int(lengths.max()), "max_length": max_length, "truncated": over,
            "truncated_share": over / lengths.size}


def data_stats(path: str | Path, text: str | None = None, label: str | None = None,
               tokenizer: str | None = None, max_length: int | None = None,
               runs_dir: Path | None = None) -> dict[str, Any]:
    table = open_source(Path(path)).read_all()
    if table.num_rows == 0:
        raise DataError(f"{path}: has no rows")
    for flag, col in (("--text", text), ("--label", label)):
        if col and col not in table.column_names:
            raise DataError(f"{path}: has no column {col!r} ({flag}); its columns are: "
                            f"{', '.join(table.column_names)}")
    t, lab = guess_columns(table, text, label)
    st = compute_stats(table, text or t, label or lab)
    out: dict[str, Any] = {"path": str(path), **asdict(st)}
    if tokenizer:
        if not (text or t):
            raise DataError(f"{path}: no text column to tokenize; name it with --text")
        tok, source, run_max = load_tokenizer_ref(tokenizer, runs_dir)
        lengths, measured = token_lengths(table.column(text or t), tok)
        out["tokens"] = token_summary(lengths, max_length or run_max or DEFAULT_MAX_LENGTH)
        out["tokens"]["sampled"] = measured < table.num_rows
        out["tokenizer"] = source
    return out


def stats_lines(s: dict[str, Any]) -> list[str]:
    lines = [f"{s['path']}: {s['num_rows']:,} rows; columns: "
             + ", ".join(f"{n} ({t})" for n, t in s["columns"]),
             f"text column: {s['text_column']}, label column: {s['label_column']}",
             f"empty text: {s['empty_text']:,}; missing label: {s['missing_label']:,}; "
             f"duplicates: {s['duplicates']:,}; rows training keeps: {s['kept']:,}"]
    if s.get("labels"):
        lines.append(f"labels ({s['n_labels']}): "
                     + ", ".join(f"{k} {v:,}" for k, v in s["labels"][:12]))
    if s.get("length"):
        L = s["length"]
        lines.append(f"characters: min {L['min']}, mean {L['mean']:.1f}, p50 {L['p50']}, "
                     f"p90 {L['p90']}, p99 {L['p99']}, max {L['max']}")
    tok = s.get("tokens")
    if tok and tok.get("rows"):
        sample = f" (sample of {tok['rows']:,} rows)" if tok.get("sampled") else ""
        lines.append(f"tokens ({s['tokenizer']}){sample}: mean {tok['mean']:.1f}, p50 "
                     f"{tok['p50']}, p90 {tok['p90']}, p95 {tok['p95']}, p99 {tok['p99']}, max "
                     f"{tok['max']}")
        lines.append(f"max_length {tok['max_length']} truncates {tok['truncated']:,} rows "
                     f"({100 * tok['truncated_share']:.1f}%)")
    return lines
