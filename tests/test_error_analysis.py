"""Error analysis on crafted saved evaluations whose answers are known by hand.

``write_saved_eval`` writes ``RUN/evals/<name>/`` exactly as the shared contract says (pyarrow,
the same column types), so these tests and the TUI's do not depend on a trained model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tunedeck.core.errors import RunError
from tunedeck.core.eval import error_analysis as ea
from tunedeck.core.eval.predictions import PREDICTION_COLUMNS, write_eval

# index: (gold, predicted, probability of the predicted label)
CLS_CASES = [("a", "a", 0.95), ("a", "a", 0.55), ("a", "b", 0.90), ("b", "b", 0.85),
             ("b", "a", 0.60), ("c", "c", 0.70), ("c", "a", 0.75), ("b", "b", 0.65),
             ("c", "c", 0.35), ("a", "c", 0.45)]
# index: (tokens, loss, reference, generation)
LM_CASES = [(5, 1.0, "the cat sat", "the cat sat"), (8, 3.0, "a b c d", "x y z"),
            (9, 2.0, "one two three four", "one two"), (20, 4.0, "red blue", "red green"),
            (30, 0.5, "hello world", "hello world again")]


def write_saved_eval(run_path: Path, name: str, task: str, rows: list[dict], label_names=None,
                     created: float | None = None) -> Path:
    """RUN/evals/<name>/ through the contract's own writer (core/eval/predictions.py)."""
    metrics = {"task": task, "split": "test", "data": None, "checkpoint": "final", "step": None,
               "rows": len(rows), "created": created or time.time()}
    if label_names:
        metrics["label_names"] = label_names
    columns = {k: [r.get(k) for r in rows] for k in PREDICTION_COLUMNS}
    return write_eval(Path(run_path), name, metrics, columns)


def crafted_cls_rows(source: str = "data/test.csv") -> list[dict]:
    rows = []
    for i, (gold, pred, p) in enumerate(CLS_CASES):
        rows.append({"source": source, "row": i + 2, "text": f"text {i} ({gold}->{pred})",
                     "gold": gold, "predicted": pred, "probability": p,
                     "gold_probability": p if gold == pred else 0.05,
                     "probabilities": None, "loss": 0.1, "tokens": 4 + i})
    return rows


def crafted_lm_rows() -> list[dict]:
    return [{"source": "data/val.jsonl", "row": i + 1, "text": f"prompt {i}", "gold": ref,
             "predicted": gen, "loss": loss, "tokens": tok}
            for i, (tok, loss, ref, gen) in enumerate(LM_CASES)]


@pytest.fixture
def cls_eval(tmp_path: Path) -> ea.SavedEval:
    write_saved_eval(tmp_path, "test-final", "classification", crafted_cls_rows(), ["a", "b", "c"])
    return ea.load_eval(tmp_path, "test-final")


@pytest.fixture
def lm_eval(tmp_path: Path) -> ea.SavedEval:
    write_saved_eval(tmp_path, "validation-final", "causal-lm", crafted_lm_rows())
    return ea.load_eval(tmp_path, "validation-final")


def idx(examples):
    return [e["index"] for e in examples]


def test_confusion_cells_list_their_examples(cls_eval):
    assert ea.confusion_counts(cls_eval) == [[2, 1, 1], [1, 2, 0], [1, 0, 2]]
    assert idx(ea.cell_examples(cls_eval, "a", "b")) == [2]
    assert idx(ea.cell_examples(cls_eval, "a", "a")) == [0, 1]  # most confident first
    assert idx(ea.cell_examples(cls_eval, "b", "c")) == []
    (ex,) = ea.cell_examples(cls_eval, "c", "a")
    assert (ex["text"], ex["probability"], ex["source"], ex["row"]) == (
        "text 6 (c->a)", 0.75, "data/test.csv", 8)


def test_confidently_wrong_and_least_confident_right(cls_eval):
    assert idx(ea.confidently_wrong(cls_eval)) == [2, 6, 4, 9]
    assert idx(ea.confidently_wrong(cls_eval, k=2)) == [2, 6]
    assert idx(ea.least_confident_right(cls_eval)) == [8, 1, 7, 5, 3, 0]


def test_per_class_matches_hand_counts(cls_eval):
    got = {r["label"]: r for r in ea.per_class(cls_eval)}
    assert got["a"] == {"label": "a", "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 4}
    for lab in ("b", "c"):
        assert got[lab]["precision"] == pytest.approx(2 / 3)
        assert got[lab]["recall"] == pytest.approx(2 / 3)
        assert got[lab]["support"] == 3


def test_calibration_table_and_ece_by_hand(cls_eval):
    cal = ea.calibration(cls_eval)
    counts = [b["count"] for b in cal["bins"]]
    # 0.60 sits in (0.5, 0.6] and 0.70 in (0.6, 0.7]: edges belong to the lower bin.
    assert counts == [0, 0, 0, 1, 1, 2, 2, 1, 2, 1]
    b5, b8 = cal["bins"][5], cal["bins"][8]
    assert (b5["confidence"], b5["accuracy"]) == (pytest.approx(0.575), 0.5)
    assert (b8["confidence"], b8["accuracy"]) == (pytest.approx(0.875), 0.5)
    assert cal["bins"][0]["confidence"] is None
    # sum of count/n * |acc - conf|: .065 + .045 + .015 + .065 + .075 + .075 + .005
    assert cal["ece"] == pytest.approx(0.345)
    assert cal["n"] == 10


def test_lm_loss_by_length_and_worst_examples(lm_eval):
    buckets = ea.length_buckets(lm_eval)
    assert [(b["low"], b["high"], b["count"]) for b in buckets] == [(1, 8, 2), (9, 16, 1), (17, 32, 2)]
    assert [b["mean_loss"] for b in buckets] == [pytest.approx(2.0), pytest.approx(2.0), pytest.approx(2.25)]
    assert idx(ea.worst_by_loss(lm_eval)) == [3, 1, 2, 0, 4]
    worst = ea.worst_by_rouge(lm_eval)
    assert idx(worst) == [1, 3, 2, 4, 0]
    assert [round(e["rouge_l"], 3) for e in worst] == [0.0, 0.5, 0.667, 0.8, 1.0]


def test_summary_is_json_ready(cls_eval, lm_eval):
    s = json.loads(json.dumps(ea.summary(cls_eval)))
    assert s["label_names"] == ["a", "b", "c"] and s["calibration"]["ece"] == pytest.approx(0.345)
    s = json.loads(json.dumps(ea.summary(lm_eval)))
    assert [e["index"] for e in s["worst_by_rouge_l"]][:1] == [1]


def test_list_evals_newest_first_and_damaged_files(tmp_path):
    write_saved_eval(tmp_path, "old", "classification", crafted_cls_rows(), ["a", "b", "c"], created=100)
    write_saved_eval(tmp_path, "new", "classification", crafted_cls_rows(), ["a", "b", "c"], created=200)
    (tmp_path / "evals/.tmp-half").mkdir()  # a half-written eval is not listed
    assert ea.list_evals(tmp_path) == ["new", "old"]
    assert ea.list_evals(tmp_path / "nowhere") == []
    (tmp_path / "evals/new/predictions.parquet").write_bytes(b"not parquet")
    with pytest.raises(RunError, match="predictions.parquet: unreadable"):
        ea.load_eval(tmp_path, "new")
    with pytest.raises(RunError, match="tunedeck eval"):
        ea.load_eval(tmp_path, "missing")
