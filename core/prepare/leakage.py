"""Texts that occur in more than one split: the leakage check.

A text counts as the same when its normalised key (``textops.normalised_key``: case,
punctuation and spacing ignored) is equal, so "Call me now!" in train and "call me now" in test
are reported: a model that saw one has as good as seen the other. ``tunedeck data leakage`` runs
it on a split folder or on files; ``profile check --data`` on the splits training would use.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tunedeck.core.data.table_stats import guess_columns
from tunedeck.core.errors import DataError
from tunedeck.core.prepare.dedup import hash_strings
from tunedeck.core.prepare.textops import as_text, normalised_key

SPLIT_NAMES = ("train", "validation", "test")
EXAMPLES = 10


def leakage(texts: dict[str, pa.Array | pa.ChunkedArray]) -> dict[str, Any]:
    """Shared texts between every pair of splits: counts and a few examples (1-based rows)."""
    keys = {name: hash_strings(normalised_key(as_text(col))) for name, col in texts.items()}
    pairs: dict[str, int] = {}
    examples: list[dict[str, Any]] = []
    leaked: set[int] = set()
    for a, b in combinations(keys, 2):
        shared = np.intersect1d(keys[a], keys[b])
        shared = shared[shared != hash_strings(pa.array([""]))[0]]  # empty texts are not leaks
        pairs[f"{a}/{b}"] = int(shared.size)
        leaked.update(int(h) for h in shared)
        for h in shared[: max(0, EXAMPLES - len(examples))]:
            ra, rb = int(np.flatnonzero(keys[a] == h)[0]), int(np.flatnonzero(keys[b] == h)[0])
            examples.append({"text": texts[a][ra].as_py(), "splits": [a, b],
                             "rows": [ra + 1, rb + 1]})
    return {"shared_texts": len(leaked), "pairs": pairs, "examples": examples}


def split_files(paths: list[Path]) -> dict[str, Path]:
    """Split name -> file: a split folder's train/validation/test files, or the files given
    (named by their stem)."""
    if len(paths) == 1 and paths[0].is_dir() and not (paths[0] / "state.json").exists():
        folder = paths[0]
        found: dict[str, Path] = {}
        for name in SPLIT_NAMES:
            hits = sorted(p for p in folder.iterdir() if p.name == name or
                          (p.is_file() and p.name.split(".")[0] == name))
            if hits:
                found[name] = hits[0]
        if len(found) < 2:
            raise DataError(f"{folder}: holds fewer than two of train/validation/test; give the "
                            "split files themselves: tunedeck data leakage TRAIN VALIDATION TEST")
        return found
    if len(paths) < 2:
        raise DataError("leakage needs two or more splits: a split folder (tunedeck data split "
                        "writes one) or two or more files")
    named = {p.name.split(".")[0] or p.name: p for p in paths}
    return named if len(named) == len(paths) else {str(p): p for p in paths}


def leakage_in_files(paths: list[Path], text_column: str | None = None) -> dict[str, Any]:
    from tunedeck.core.prepare.streaming import open_source

    texts: dict[str, pa.ChunkedArray] = {}
    for name, path in split_files(paths).items():
        table = open_source(path).read_all()
        col = text_column or guess_columns(table)[0]
        if col not in table.column_names:
            raise DataError(f"{path}: has no column {col!r}; its columns are: "
                            f"{', '.join(table.column_names)} (use --text)")
        texts[name] = table.column(col)
    out = leakage(texts)
    out["files"] = {k: str(v) for k, v in split_files(paths).items()}
    return out


def format_leakage(result: dict[str, Any]) -> str:
    lines = [f"leakage: {result['shared_texts']:,} text(s) occur in more than one split"]
    for pair, n in result["pairs"].items():
        lines.append(f"  {pair}: {n:,} shared")
    for ex in result["examples"]:
        text = ex["text"] if len(ex["text"]) <= 70 else ex["text"][:67] + "..."
        lines.append(f"  {ex['splits'][0]} row {ex['rows'][0]} = {ex['splits'][1]} row "
                     f"{ex['rows'][1]}: {text!r}")
    return "\n".join(lines)


def split_leakage(splits: dict[str, Any]) -> dict[str, Any] | None:
    """The check on ``read_splits``' datasets (their input column), or None without two splits
    or an input column (packed corpora are cut by documents, not compared by rows)."""
    texts = {}
    for name, ds in splits.items():
        cols = ds.column_names
        col = "text" if "text" in cols else "prompt" if "prompt" in cols else None
        if col is None:
            return None
        texts[name] = ds.data.column(col)
    return leakage(texts) if len(texts) >= 2 else None
