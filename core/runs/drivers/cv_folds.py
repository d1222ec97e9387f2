"""k-fold data: which training rows go in which fold, and each fold's files.

The pool is the training rows exactly as training reads them (``read_splits``: cleaned,
deduplicated, labelled), with the validation share folded back in (each fold validates on its
held-out fold); the test split, given or carved, is set aside once and every fold is tested on
it. Folds are stratified by label for classification (scikit-learn StratifiedKFold, seeded by
training.seed), plain KFold otherwise. Everything is written once, at `tunedeck cv`, into
``GROUP/data/`` as Parquet; a resume reads those files and never re-draws the folds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tunedeck.core.errors import DataError

# The fold's own profile needs three fractions that sum to 1 and carve nothing (its validation
# and test are files); the schema refuses [1, 0, 0], so the validation share is a placeholder.
FOLD_SPLIT = [0.5, 0.5, 0.0]


@dataclass
class FoldPlan:
    pool: pa.Table  # standard columns + source, source_row, fold (1-based)
    test: pa.Table | None
    columns: tuple[str, ...]  # the standard input columns ("text", "label") ...
    k: int
    stratified: bool

    def fold_counts(self) -> list[int]:
        folds = self.pool.column("fold").to_numpy()
        return [int((folds == i).sum()) for i in range(1, self.k + 1)]


def pool_profile(prof: Any) -> Any:
    """The profile whose train split is the whole cv pool: no validation file, no validation
    share (model_copy on purpose: [1, 0, 0] is a valid carve but not a valid profile value)."""
    s = prof.data.split
    data = prof.data.model_copy(update={"validation": None, "split": [s[0] + s[1], 0.0, s[2]]})
    return prof.model_copy(update={"data": data})


def plan_folds(prof: Any, k: int) -> FoldPlan:
    """Read the data as training does and assign each pool row a fold. DataError when K does
    not fit the data (more folds than rows, or a class with fewer rows than folds)."""
    from tunedeck.core.data.splits_reader import read_splits

    split = read_splits(pool_profile(prof))
    pool = _standard_table(split.train, split.label_names)
    test = _standard_table(split.test, split.label_names) if split.test is not None else None
    labels = split.train.data.column("label").to_numpy() if split.label_names else None
    folds = assign_folds(labels, pool.num_rows, k, prof.training.seed, prof.data.train,
                         split.label_names)
    pool = pool.append_column("fold", pa.array(folds, type=pa.int64()))
    return FoldPlan(pool, test, split.columns, k, labels is not None)


def assign_folds(labels: np.ndarray | None, n: int, k: int, seed: int, where: str,
                 label_names: list[str] | None = None) -> np.ndarray:
    """Fold number (1..k) of each of ``n`` rows."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if n < k:
        raise DataError(f"{where}: {n} training rows cannot make {k} folds; lower cv.folds "
                        f"(--folds) to at most {n}")
    if labels is not None:
        counts = np.bincount(labels, minlength=len(label_names or []))
        small = int(np.argmin(counts))
        if counts[small] < k:
            name = label_names[small] if label_names else small
            raise DataError(f"{where}: class {name!r} has {counts[small]} training row(s), fewer "
                            f"than cv.folds = {k}: every fold needs it in training; lower "
                            f"cv.folds (--folds) to at most {counts[small]} or add rows of it")
        splitter: Any = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        parts = splitter.split(np.zeros(n), labels)
    else:
        parts = KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n))
    folds = np.zeros(n, dtype=np.int64)
    for i, (_, held_out) in enumerate(parts, start=1):
        folds[held_out] = i
    return folds


def _standard_table(ds: Any, label_names: list[str] | None) -> pa.Table:
    """A split as written for a fold: the standard columns (labels by name, so the fold's data
    layer finds the same classes), plus where each row came from."""
    t = ds.data.table if hasattr(ds.data, "table") else ds.data
    cols = {c: t.column(c) for c in t.column_names if c not in ("row", "label")}
    if label_names is not None:
        ids = t.column("label").to_numpy()
        cols["label"] = pa.array(np.asarray(label_names, dtype=object)[ids], type=pa.string())
    cols["source_row"] = t.column("row")
    return pa.table(cols)


def write_fold_files(plan: FoldPlan, data_dir: Path) -> dict[str, Any]:
    """pool.parquet (the assignment), test.parquet, fold-K/{train,validation}.parquet. Written
    into ``data_dir`` (a temp folder the caller renames into place). Returns the files by fold."""
    data_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(plan.pool, data_dir / "pool.parquet")
    files: dict[str, Any] = {"test": None, "folds": {}}
    if plan.test is not None:
        pq.write_table(plan.test, data_dir / "test.parquet")
        files["test"] = "test.parquet"
    folds = plan.pool.column("fold").to_numpy()
    body = plan.pool.drop_columns(["fold"])
    for i in range(1, plan.k + 1):
        d = data_dir / f"fold-{i}"
        d.mkdir(exist_ok=True)
        pq.write_table(body.filter(pa.array(folds != i)), d / "train.parquet")
        pq.write_table(body.filter(pa.array(folds == i)), d / "validation.parquet")
        files["folds"][str(i)] = {"train": f"fold-{i}/train.parquet",
                                  "validation": f"fold-{i}/validation.parquet"}
    return files


def fold_profile(prof: Any, group_path: Path, k: int, has_test: bool) -> Any:
    """Fold ``k``'s own profile: the base profile pointed at the fold's files (standard column
    names, Parquet), its runs_dir the group, cv off (a fold is a plain run)."""
    data_dir = group_path / "data"
    columns = {"text_column": "text", "label_column": "label"}
    if prof.data.prompt_column:
        columns.update(prompt_column="prompt", response_column="response")
    data = prof.data.model_copy(update={
        "format": "parquet", "encoding": None, "split": list(FOLD_SPLIT),
        "train": str(data_dir / f"fold-{k}" / "train.parquet"),
        "validation": str(data_dir / f"fold-{k}" / "validation.parquet"),
        "test": str(data_dir / "test.parquet") if has_test else None, **columns})
    return prof.model_copy(update={
        "name": f"{prof.name}-fold{k}"[:100], "data": data,
        "cv": prof.cv.model_copy(update={"folds": 0}),
        "output": prof.output.model_copy(update={"runs_dir": str(group_path)})})
