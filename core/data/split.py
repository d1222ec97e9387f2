"""Seeded, stratified train/validation/test splits, written with numpy.

Why our own and not ``train_test_split``: we need three splits in one pass, exact global sizes,
every class proportionally represented (±1 row), classes too small to share staying whole in
train (a label seen only in validation could never be learned), and the same rows for the same
seed on every machine and library version. Stratification is also vectorised (one lexsort), so
a million rows take well under a second.
"""

from __future__ import annotations

import numpy as np

TRAIN, VALIDATION, TEST = 0, 1, 2


def split_sizes(n: int, f_val: float, f_test: float) -> tuple[int, int]:
    """Rows for validation and test out of ``n``, rounding half up.

    A non-zero fraction gets at least one row when the data allows it, so that a small file
    still has something to evaluate on; train always keeps at least one row.
    """
    n_val = int(n * f_val + 0.5)
    n_test = int(n * f_test + 0.5)
    if f_val > 0:
        n_val = max(n_val, 1)
    if f_test > 0:
        n_test = max(n_test, 1)
    excess = n_val + n_test - max(n - 1, 0)
    if excess > 0:
        cut = min(excess, n_test)
        n_test -= cut
        n_val -= excess - cut
    return n_val, n_test


def assign_splits(labels: np.ndarray | None, n: int, f_val: float, f_test: float,
                  seed: int) -> np.ndarray:
    """Split code (TRAIN/VALIDATION/TEST) for each of ``n`` rows.

    ``labels`` (class ids 0..C-1, or None for no stratification) decides the strata. Within a
    class, rows are taken in a seeded random order: the first go to test, the next to
    validation, the rest to train.
    """
    if labels is None:
        labels = np.zeros(n, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    n_val, n_test = split_sizes(n, f_val, f_test)
    counts = np.bincount(labels, minlength=int(labels.max(initial=-1)) + 1)
    cap = np.maximum(counts - 1, 0)  # each class keeps a row in train
    per_val = _apportion(counts * (n_val / n if n else 0.0), n_val, cap)
    per_test = _apportion(counts * (n_test / n if n else 0.0), n_test, cap - per_val)

    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(n), labels))
    sorted_labels = labels[order]
    class_start = np.searchsorted(sorted_labels, np.arange(counts.size))
    rank = np.arange(n) - class_start[sorted_labels]
    t, v = per_test[sorted_labels], per_val[sorted_labels]
    code_sorted = np.where(rank < t, TEST, np.where(rank < t + v, VALIDATION, TRAIN))
    codes = np.empty(n, dtype=np.int8)
    codes[order] = code_sorted
    return codes


def _apportion(quota: np.ndarray, total: int, cap: np.ndarray) -> np.ndarray:
    """Integers close to ``quota`` summing to ``total`` (largest remainder), each <= ``cap``."""
    base = np.minimum(np.floor(quota).astype(np.int64), cap)
    left = total - int(base.sum())
    if left <= 0:
        return base
    frac = quota - np.floor(quota)
    order = np.lexsort((np.arange(quota.size), -frac))  # biggest remainder first, ties by id
    while left > 0:
        room = cap - base
        takers = order[room[order] > 0][:left]
        if takers.size == 0:
            break
        base[takers] += 1
        left -= takers.size
    return base
