"""Error analysis over a run's saved evaluation (``RUN/evals/<name>/``): torch-free.

Reads ``metrics.json`` and ``predictions.parquet`` (the shared contract: one row per example with
source, row, text, gold, predicted, probability, gold_probability, probabilities, loss, tokens)
with pyarrow only, so the TUI can call it in its own process.

Classification: confusion-matrix cells and their examples, the most confidently wrong and the
least confident right examples, per-class precision/recall/F1/support (scikit-learn), and a
reliability table over 10 confidence bins with the expected calibration error. Causal LM /
seq2seq: mean loss by input-length bucket, the worst examples by loss, and by ROUGE-L when the
predictions hold generations beside references.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunedeck.core.errors import RunError

CALIBRATION_BINS = 10
EXAMPLE_FIELDS = ("source", "row", "text", "gold", "predicted", "probability",
                  "gold_probability", "loss", "tokens")


@dataclass
class SavedEval:
    """One ``RUN/evals/<name>/``: its metrics and its per-example predictions (as dict rows)."""

    name: str
    path: Path
    metrics: dict[str, Any]
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def task(self) -> str:
        return str(self.metrics.get("task") or "")

    @property
    def label_names(self) -> list[str]:
        names = self.metrics.get("label_names")
        if names:
            return [str(n) for n in names]
        # Older or hand-made evals: the labels that occur, in a stable order.
        return sorted({str(e["gold"]) for e in self.examples} | {str(e["predicted"]) for e in self.examples})


def list_evals(run_path: Path) -> list[str]:
    """The names of a run's saved evaluations, newest first (half-written ones skipped)."""
    from tunedeck.core.eval.predictions import list_evals as _list

    return [r.name for r in _list(Path(run_path))]


def load_eval(run_path: Path, name: str) -> SavedEval:
    """Read one saved evaluation; a missing or damaged file is a RunError naming it and the fix."""
    from tunedeck.core.eval.predictions import (METRICS_FILE, PREDICTIONS_FILE, read_eval,
                                                read_predictions)

    d = Path(run_path) / "evals" / name
    redo = f"run 'tunedeck eval {Path(run_path).name}' to evaluate the run again"
    found = read_eval(d)
    if found is None:
        raise RunError(f"{d / METRICS_FILE}: missing or unreadable; {redo}")
    try:
        rows = read_predictions(d).to_pylist()
    except FileNotFoundError:
        raise RunError(f"{d / PREDICTIONS_FILE}: no such file; {redo}") from None
    except Exception as e:  # pyarrow raises ArrowInvalid & co. for a damaged file
        raise RunError(f"{d / PREDICTIONS_FILE}: unreadable ({e}); {redo}") from None
    examples = [{**{k: r.get(k) for k in EXAMPLE_FIELDS}, "index": i} for i, r in enumerate(rows)]
    return SavedEval(name, d, found.metrics, examples)


# --- classification ------------------------------------------------------------------------

def confusion_counts(ev: SavedEval) -> list[list[int]]:
    """counts[gold][predicted] in label_names order."""
    names = ev.label_names
    at = {n: i for i, n in enumerate(names)}
    counts = [[0] * len(names) for _ in names]
    for e in ev.examples:
        g, p = at.get(str(e["gold"])), at.get(str(e["predicted"]))
        if g is not None and p is not None:
            counts[g][p] += 1
    return counts


def cell_examples(ev: SavedEval, gold: str, predicted: str) -> list[dict[str, Any]]:
    """The examples of one confusion-matrix cell, most confident first."""
    hits = [e for e in ev.examples if str(e["gold"]) == gold and str(e["predicted"]) == predicted]
    return sorted(hits, key=lambda e: (-_prob(e), e["index"]))


def confidently_wrong(ev: SavedEval, k: int = 20) -> list[dict[str, Any]]:
    """Wrong predictions, highest probability of the (wrong) predicted label first."""
    wrong = [e for e in ev.examples if str(e["gold"]) != str(e["predicted"])]
    return sorted(wrong, key=lambda e: (-_prob(e), e["index"]))[:k]


def least_confident_right(ev: SavedEval, k: int = 20) -> list[dict[str, Any]]:
    """Right predictions, lowest probability first: the ones that almost went wrong."""
    right = [e for e in ev.examples if str(e["gold"]) == str(e["predicted"])]
    return sorted(right, key=lambda e: (_prob(e), e["index"]))[:k]


def per_class(ev: SavedEval) -> list[dict[str, Any]]:
    """precision, recall, f1, support per label (scikit-learn; 0 where undefined)."""
    from sklearn.metrics import precision_recall_fscore_support

    names = ev.label_names
    gold = [str(e["gold"]) for e in ev.examples]
    pred = [str(e["predicted"]) for e in ev.examples]
    if not gold:
        return [{"label": n, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for n in names]
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=names, zero_division=0)
    return [{"label": n, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
             "support": int(s[i])} for i, n in enumerate(names)]


def calibration(ev: SavedEval, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Reliability table over equal-width confidence bins and the expected calibration error.

    Bin i holds confidences in (i/bins, (i+1)/bins]; the first bin also holds 0. ECE is
    sum over bins of (count / n) * |accuracy - mean confidence|."""
    table = [{"low": i / bins, "high": (i + 1) / bins, "count": 0, "confidence": None,
              "accuracy": None} for i in range(bins)]
    members: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    scored = [e for e in ev.examples if e["probability"] is not None]
    for e in scored:
        conf = float(e["probability"])
        # round(): 0.7 * 10 is 7.000000000000001 in floating point, and 0.7 belongs to (0.6, 0.7].
        i = min(bins - 1, max(0, math.ceil(round(conf * bins, 9)) - 1))
        members[i].append((conf, str(e["gold"]) == str(e["predicted"])))
    ece = 0.0
    for i, m in enumerate(members):
        if not m:
            continue
        conf = sum(c for c, _ in m) / len(m)
        acc = sum(1 for _, ok in m if ok) / len(m)
        table[i].update(count=len(m), confidence=conf, accuracy=acc)
        ece += len(m) / len(scored) * abs(acc - conf)
    return {"bins": table, "ece": ece if scored else None, "n": len(scored)}


def _prob(e: dict[str, Any]) -> float:
    return float(e["probability"]) if e["probability"] is not None else 0.0


# --- causal LM / seq2seq -------------------------------------------------------------------

def length_buckets(ev: SavedEval) -> list[dict[str, Any]]:
    """Mean loss by input length in tokens, in power-of-two buckets (1-8, 9-16, 17-32, ...)."""
    groups: dict[int, list[float]] = {}
    for e in ev.examples:
        if e["loss"] is None or e["tokens"] is None:
            continue
        high = 8
        while high < int(e["tokens"]):
            high *= 2
        groups.setdefault(high, []).append(float(e["loss"]))
    out = []
    for high in sorted(groups):
        losses = groups[high]
        mean = sum(losses) / len(losses)
        out.append({"low": 1 if high == 8 else high // 2 + 1, "high": high, "count": len(losses),
                    "mean_loss": mean, "perplexity": math.exp(min(mean, 700.0))})
    return out


def worst_by_loss(ev: SavedEval, k: int = 20) -> list[dict[str, Any]]:
    scored = [e for e in ev.examples if e["loss"] is not None]
    return sorted(scored, key=lambda e: (-float(e["loss"]), e["index"]))[:k]


def worst_by_rouge(ev: SavedEval, k: int = 20) -> list[dict[str, Any]]:
    """Lowest per-example ROUGE-L F1 of the generation against the reference (rouge-score, the
    scorer behind core/eval's rouge module); empty when the predictions hold no generations."""
    pairs = [e for e in ev.examples if e["predicted"] and e["gold"] is not None]
    if not pairs:
        return []
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    scored = [{**e, "rouge_l": scorer.score(str(e["gold"]), str(e["predicted"]))["rougeL"].fmeasure}
              for e in pairs]
    return sorted(scored, key=lambda e: (e["rouge_l"], e["index"]))[:k]


def is_classification(ev: SavedEval) -> bool:
    return ev.task == "classification"


def summary(ev: SavedEval, k: int = 10) -> dict[str, Any]:
    """Everything above for one saved evaluation, as JSON-ready data (``tunedeck errors --json``)."""
    head = {"eval": ev.name, "task": ev.task, "rows": len(ev.examples),
            "checkpoint": ev.metrics.get("checkpoint"), "split": ev.metrics.get("split"),
            "data": ev.metrics.get("data")}
    if is_classification(ev):
        return {**head, "label_names": ev.label_names, "confusion_matrix": confusion_counts(ev),
                "confidently_wrong": confidently_wrong(ev, k),
                "least_confident_right": least_confident_right(ev, k),
                "per_class": per_class(ev), "calibration": calibration(ev)}
    return {**head, "length_buckets": length_buckets(ev), "worst_by_loss": worst_by_loss(ev, k),
            "worst_by_rouge_l": worst_by_rouge(ev, k)}
