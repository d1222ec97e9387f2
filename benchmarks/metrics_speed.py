"""What metrics through Hugging Face `evaluate` cost per evaluation call, against the hand-rolled
NumPy report they replace, on one classification eval (5,000 rows by default), in one process.

    python benchmarks/metrics_speed.py                 # 5,000 rows, 4 classes, 20 repeats
    python benchmarks/metrics_speed.py --rows 50000 --classes 20

Rows of the table (median wall ms per call):
  hand-rolled          the old core/metrics.py classification_report (NumPy), copied below so the
                       baseline outlives that module
  sklearn only         the shipped module's _compute: scikit-learn, without evaluate's Arrow copy
  evaluate, cached     classification_metrics(): the process-cached module's compute()
  evaluate, load+call  evaluate.load(<shipped path>) then compute() on every call (no cache)
  first call           import evaluate/datasets + load + compute, once per process
The last line is the ratios to the hand-rolled report.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import numpy as np


def hand_rolled_report(labels: np.ndarray, preds: np.ndarray, names: list[str]) -> dict[str, Any]:
    # Verbatim logic of core/metrics.py classification_report (before tunedeck.core.eval).
    n = max(len(names), int(labels.max(initial=-1)) + 1, int(preds.max(initial=-1)) + 1)
    names = list(names) + [str(i) for i in range(len(names), n)]
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (labels.astype(np.int64), preds.astype(np.int64)), 1)
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
        "per_class": {names[i]: {"precision": float(precision[i]), "recall": float(recall[i]),
                                 "f1": float(f1[i]), "support": int(support[i])} for i in range(n)},
        "confusion_matrix": {"labels": names, "matrix": cm.tolist()},
    }


def median_ms(call: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(rows: int, classes: int, repeats: int) -> dict[str, float]:
    from tunedeck.core.eval import metrics as eval_metrics

    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, rows)
    # ~70% right, like a half-trained classifier: every cell of the matrix gets counts.
    preds = np.where(rng.random(rows) < 0.7, labels, rng.integers(0, classes, rows))
    names = [f"class_{i}" for i in range(classes)]
    path = str(eval_metrics.shipped_metric_path("classification"))

    start = time.perf_counter()
    eval_metrics.classification_metrics(labels, preds, names)
    first_ms = (time.perf_counter() - start) * 1000

    import evaluate

    module = eval_metrics.load_metric("classification")

    def load_and_compute() -> Any:
        fresh = evaluate.load(path, keep_in_memory=True)
        return fresh.compute(predictions=preds, references=labels, labels=list(range(classes)))

    return {
        "hand-rolled": median_ms(lambda: hand_rolled_report(labels, preds, names), repeats),
        "sklearn only": median_ms(lambda: module._compute(predictions=preds, references=labels,
                                                          labels=list(range(classes))), repeats),
        "evaluate, cached": median_ms(lambda: eval_metrics.classification_metrics(labels, preds, names),
                                      repeats),
        "evaluate, load+call": median_ms(load_and_compute, repeats),
        "first call": first_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    results = measure(args.rows, args.classes, args.repeats)
    base = results["hand-rolled"]
    print(f"classification eval: {args.rows} rows, {args.classes} classes, median of {args.repeats}")
    print("| path | ms/call | × hand-rolled |")
    print("|---|---:|---:|")
    for name, ms in results.items():
        print(f"| {name} | {ms:.2f} | {ms / base:.1f}x |")
    print("ratios: " + "  ".join(f"{name}/hand-rolled={results[name] / base:.1f}x"
                                 for name in ("sklearn only", "evaluate, cached", "evaluate, load+call")))


if __name__ == "__main__":
    main()
