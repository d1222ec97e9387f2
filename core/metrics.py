"""Classification metrics computed locally (no hub download): accuracy, macro-F1, per-class
precision/recall/F1 and the confusion matrix."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, n: int) -> np.ndarray:
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (labels.astype(np.int64), preds.astype(np.int64)), 1)
    return cm


def classification_report(labels: np.ndarray, preds: np.ndarray, names: list[str]) -> dict[str, Any]:
    n = max(len(names), int(labels.max(initial=-1)) + 1, int(preds.max(initial=-1)) + 1)
    names = list(names) + [str(i) for i in range(len(names), n)]
    cm = confusion_matrix(labels, preds, n)
    tp = np.diag(cm).astype(float)
    support = cm.sum(1).astype(float)
    predicted = cm.sum(0).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    total = max(1, int(support.sum()))
    return {
        "accuracy": float(tp.sum() / total),
        "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            names[i]: {"precision": float(precision[i]), "recall": float(recall[i]),
                       "f1": float(f1[i]), "support": int(support[i])}
            for i in range(n)
        },
        "confusion_matrix": {"labels": names, "matrix": cm.tolist()},
    }
