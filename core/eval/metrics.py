"""Metrics through Hugging Face ``evaluate``, from modules shipped in this package (offline).

``load_metric(name)`` resolves a shipped name (see ``SHIPPED_METRICS``) to its module file and
loads it with ``evaluate.load(<local path>)``: no network. Any other name is a hub metric id:
offline (HF_HUB_OFFLINE / HF_EVALUATE_OFFLINE set) it is a UserError naming the shipped ones;
online it goes to ``evaluate.load(name)``.

Loaded modules are cached per process: ``evaluate.load`` hashes, copies and imports the script
each call (milliseconds, see benchmarks/metrics_speed.py), an eval loop calls it every
evaluation. A cached module is stateful between add_batch and compute, so one thread at a time.

The helpers below are what tasks call; their keys are those of the old core/metrics.py.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tunedeck.core.errors import UserError

MODULES_DIR = Path(__file__).resolve().parent / "metric_modules"

# name -> what it reports; the folder metric_modules/<name>/<name>.py holds the module.
SHIPPED_METRICS: dict[str, str] = {
    "classification": "accuracy; precision/recall/F1 macro, weighted, per class; confusion matrix",
    "perplexity": "exp(mean token loss)",
    "rouge": "ROUGE-L F-measure (rouge-score)",
    "sacrebleu": "corpus BLEU and chrF (sacrebleu)",
    "exact_match": "share of predictions equal to the reference",
}

_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}


def is_offline() -> bool:
    """True when the environment says not to reach the Hugging Face Hub. Read on each call
    (evaluate reads its own flag once, at import)."""
    return any(os.environ.get(var, "").upper() in _TRUE_VALUES
               for var in ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE"))


def shipped_metric_path(name: str) -> Path | None:
    """The module file of a shipped metric, or None when ``name`` is not shipped."""
    if name not in SHIPPED_METRICS:
        return None
    return MODULES_DIR / name / f"{name}.py"


@functools.lru_cache(maxsize=None)
def load_metric(name: str) -> Any:
    """An ``evaluate.EvaluationModule`` for ``name``: shipped (local, offline) or a hub id."""
    import evaluate  # heavy (datasets, pyarrow): only when a metric is wanted

    path = shipped_metric_path(name)
    if path is not None:
        # keep_in_memory: the inputs stay in an in-memory Arrow buffer, not a cache file
        # under ~/.cache/huggingface/metrics with its file locks.
        return evaluate.load(str(path), keep_in_memory=True)
    if is_offline():
        shipped = ", ".join(sorted(SHIPPED_METRICS))
        raise UserError(f"metric {name!r} is not shipped with tunedeck and the Hugging Face Hub is "
                        f"offline (HF_HUB_OFFLINE / HF_EVALUATE_OFFLINE is set). Shipped metrics: "
                        f"{shipped}. Use one of those, or unset the offline variables to load "
                        f"{name!r} from the hub.")
    return evaluate.load(name, keep_in_memory=True)


def classification_metrics(labels: Any, preds: Any, label_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro F1, per-class scores and the confusion matrix, keyed as the old
    ``core.metrics.classification_report`` (plus precision/recall/F1 macro and weighted).

    Classes: every name in ``label_names``, and ids past its end (named by their number) when
    the data holds them. The macro/weighted averages cover the classes present in ``labels``.
    """
    y_true = np.asarray(labels, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(preds, dtype=np.int64).reshape(-1)
    n_classes = max(len(label_names), int(y_true.max(initial=-1)) + 1, int(y_pred.max(initial=-1)) + 1)
    names = list(label_names) + [str(i) for i in range(len(label_names), n_classes)]
    result = load_metric("classification").compute(
        predictions=y_pred, references=y_true, labels=list(range(n_classes)))
    per_class = {
        names[i]: {"precision": result["per_class_precision"][i],
                   "recall": result["per_class_recall"][i],
                   "f1": result["per_class_f1"][i],
                   "support": int(result["per_class_support"][i])}
        for i in range(n_classes)
    }
    averages = {f"{kind}_{avg}": result[f"{kind}_{avg}"]
                for kind in ("precision", "recall", "f1") for avg in ("macro", "weighted")}
    return {"accuracy": result["accuracy"], **averages, "per_class": per_class,
            "confusion_matrix": {"labels": names, "matrix": result["confusion_matrix"]}}


def perplexity(mean_loss: float) -> float:
    """exp(mean token loss), capped to stay finite: the perplexity of an eval loss."""
    result = load_metric("perplexity").compute(loss_sums=[float(mean_loss)], token_counts=[1.0])
    return result["perplexity"]


def generation_metrics(predictions: Sequence[str], references: Sequence[Any],
                       names: Sequence[str]) -> dict[str, Any]:
    """Each named metric on generated texts, merged into one dict (a shipped name, or a hub id
    when online). Keys are the modules' own (rougeL, bleu, chrf, exact_match); a key that two
    metrics share is prefixed with the metric's name rather than overwritten."""
    merged: dict[str, Any] = {}
    for name in names:
        result = load_metric(name).compute(predictions=list(predictions), references=list(references))
        for key, value in (result or {}).items():
            merged[f"{name}_{key}" if key in merged else key] = value
    return merged
