"""The evaluate metric modules shipped in tunedeck.core.eval: each equals the library it wraps
(scikit-learn, rouge-score, sacrebleu) on random inputs, loads and computes with the network
off, and an unshipped metric is a clear error offline."""

from __future__ import annotations

import ast
import math
import socket
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from tunedeck.core.errors import UserError
from tunedeck.core.eval import metrics as eval_metrics
from tunedeck.core.eval.metrics import (MODULES_DIR, SHIPPED_METRICS, classification_metrics,
                                        generation_metrics, load_metric, perplexity)

ROOT = Path(__file__).resolve().parents[1]
# The first load of each module imports datasets/evaluate (seconds): no per-example deadline.
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "Cat", "running", "ran", "runs", "3", "x-ray"]
sentences = st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)
# Any text Arrow can store (no lone surrogates), mixed with overlapping word sentences.
texts = st.one_of(sentences, st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))


def class_pairs(max_class: int = 5):
    return st.lists(st.tuples(st.integers(0, max_class), st.integers(0, max_class)), min_size=1, max_size=40)


@PROPERTY
@given(pairs=class_pairs())
def test_classification_module_equals_sklearn(pairs):
    y_true = np.array([t for t, _ in pairs])
    y_pred = np.array([p for _, p in pairs])
    got = load_metric("classification").compute(predictions=y_pred, references=y_true)
    labels = np.union1d(y_true, y_pred).tolist()
    present = np.unique(y_true).tolist()
    assert got["labels"] == labels
    assert got["accuracy"] == accuracy_score(y_true, y_pred)
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=present,
                                                     average=average, zero_division=0)
        assert (got[f"precision_{average}"], got[f"recall_{average}"], got[f"f1_{average}"]) == (p, r, f)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
    assert got["per_class_precision"] == p.tolist() and got["per_class_recall"] == r.tolist()
    assert got["per_class_f1"] == f.tolist() and got["per_class_support"] == s.tolist()
    with warnings.catch_warnings():  # sklearn's "single label" warning, labels passed or not
        warnings.simplefilter("ignore", UserWarning)
        assert got["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=labels).tolist()


@PROPERTY
@given(pairs=class_pairs())
def test_classification_average_over_all_labels_equals_sklearn(pairs):
    y_true = np.array([t for t, _ in pairs])
    y_pred = np.array([p for _, p in pairs])
    got = load_metric("classification").compute(predictions=y_pred, references=y_true,
                                                labels=list(range(7)), average_over="all")
    _, _, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=list(range(7)),
                                                 average="macro", zero_division=0)
    assert got["f1_macro"] == f
    assert len(got["confusion_matrix"]) == 7


def test_classification_of_an_empty_split_is_zeros_not_an_error():
    got = classification_metrics([], [], ["neg", "pos"])
    assert got["accuracy"] == 0.0 and got["f1_macro"] == 0.0
    assert got["confusion_matrix"] == {"labels": ["neg", "pos"], "matrix": [[0, 0], [0, 0]]}


@PROPERTY
@given(rows=st.lists(st.tuples(st.floats(0, 50), st.integers(1, 64)), min_size=1, max_size=20))
def test_perplexity_module_is_exp_of_the_mean_token_loss(rows):
    sums = [s for s, _ in rows]
    counts = [c for _, c in rows]
    got = load_metric("perplexity").compute(loss_sums=sums, token_counts=counts)
    mean = np.sum(sums) / np.sum(counts)
    assert got["mean_loss"] == pytest.approx(mean, rel=1e-12)
    assert got["perplexity"] == pytest.approx(math.exp(mean), rel=1e-12)


def test_perplexity_of_a_mean_loss_and_its_cap():
    assert perplexity(0.0) == 1.0
    assert perplexity(2.5) == pytest.approx(math.exp(2.5), rel=1e-12)
    assert perplexity(1e6) == pytest.approx(math.exp(700.0))  # finite: JSON has no infinity
    with pytest.raises(ValueError, match="target token"):
        load_metric("perplexity").compute(loss_sums=[1.0], token_counts=[0])


@PROPERTY
@given(pairs=st.lists(st.tuples(texts, texts), min_size=1, max_size=12), stem=st.booleans())
def test_rouge_module_equals_rouge_score(pairs, stem):
    preds = [p for p, _ in pairs]
    refs = [r for _, r in pairs]
    got = load_metric("rouge").compute(predictions=preds, references=refs,
                                       rouge_types=["rougeL", "rouge1"], use_stemmer=stem)
    scorer = rouge_scorer.RougeScorer(["rougeL", "rouge1"], use_stemmer=stem)
    scores = [scorer.score(r, p) for p, r in pairs]
    for kind in ("rougeL", "rouge1"):
        assert got[kind] == pytest.approx(np.mean([s[kind].fmeasure for s in scores]), rel=1e-12, abs=1e-15)


@PROPERTY
@given(pairs=st.lists(st.tuples(texts, texts), min_size=1, max_size=12))
def test_sacrebleu_module_equals_sacrebleu(pairs):
    preds = [p for p, _ in pairs]
    refs = [r for _, r in pairs]
    got = load_metric("sacrebleu").compute(predictions=preds, references=refs)
    assert got["bleu"] == sacrebleu.corpus_bleu(preds, [refs]).score
    assert got["chrf"] == sacrebleu.corpus_chrf(preds, [refs]).score


@PROPERTY
@given(rows=st.lists(st.tuples(sentences, sentences, sentences), min_size=1, max_size=8))
def test_sacrebleu_module_with_two_references_each_equals_sacrebleu(rows):
    preds = [p for p, _, _ in rows]
    refs = [[a, b] for _, a, b in rows]
    got = load_metric("sacrebleu").compute(predictions=preds, references=refs)
    streams = [[a for _, a, _ in rows], [b for _, _, b in rows]]
    assert got["bleu"] == sacrebleu.corpus_bleu(preds, streams).score
    assert got["chrf"] == sacrebleu.corpus_chrf(preds, streams).score


@PROPERTY
@given(pairs=st.lists(st.tuples(texts, texts), min_size=1, max_size=20), ignore_case=st.booleans())
def test_exact_match_module_equals_the_share_of_equal_strings(pairs, ignore_case):
    preds = [p for p, _ in pairs]
    refs = [r for _, r in pairs]
    got = load_metric("exact_match").compute(predictions=preds, references=refs, ignore_case=ignore_case)
    norm = (lambda s: s.strip().lower()) if ignore_case else str.strip
    assert got["exact_match"] == pytest.approx(np.mean([norm(p) == norm(r) for p, r in pairs]), rel=1e-12)


def test_generation_metrics_merges_the_named_modules():
    got = generation_metrics(["the cat sat", "hello"], ["the cat sat", "hello there"],
                             ["rouge", "sacrebleu", "exact_match"])
    assert set(got) == {"rougeL", "bleu", "chrf", "exact_match"}
    assert got["exact_match"] == 0.5


@pytest.fixture
def fresh_loads():
    load_metric.cache_clear()
    yield
    load_metric.cache_clear()


def test_unshipped_metric_offline_is_a_user_error_naming_the_shipped_ones(monkeypatch, fresh_loads):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        load_metric("bleurt")
    assert "'bleurt'" in str(err.value) and "offline" in str(err.value)
    for name in SHIPPED_METRICS:
        assert name in str(err.value)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "true")
    with pytest.raises(UserError):
        load_metric("bleurt")


def test_unshipped_metric_online_goes_to_the_hub_id(monkeypatch, fresh_loads):
    import evaluate

    asked = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_EVALUATE_OFFLINE", raising=False)
    monkeypatch.setattr(evaluate, "load", lambda path, **kw: asked.append(path) or "hub module")
    assert load_metric("bleurt") == "hub module"
    assert asked == ["bleurt"]


def _no_network(*args, **kwargs):
    raise AssertionError(f"network access attempted: {args[1:]!r}")


def test_every_shipped_metric_loads_and_computes_without_the_network(monkeypatch, fresh_loads):
    # Online environment on purpose: the shipped modules must not need the offline flags.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_EVALUATE_OFFLINE", raising=False)
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)
    assert classification_metrics([0, 1, 1], [0, 1, 0], ["a", "b"])["accuracy"] == pytest.approx(2 / 3)
    assert perplexity(1.0) == pytest.approx(math.e)
    got = generation_metrics(["a b c"], ["a b c"], ["rouge", "sacrebleu", "exact_match"])
    assert got["rougeL"] == 1.0 and got["exact_match"] == 1.0


def test_the_shipped_metric_names_are_the_module_folders():
    folders = sorted(p.name for p in MODULES_DIR.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == sorted(SHIPPED_METRICS)
    for name in SHIPPED_METRICS:
        assert (MODULES_DIR / name / f"{name}.py").is_file()
        assert not (MODULES_DIR / name / "__init__.py").exists()


def test_metric_module_files_have_one_import_per_line_and_import_evaluate_whole():
    # evaluate.loading.get_imports reads the first name of `import a, b` only; and evaluate.load
    # takes the first EvaluationModule subclass in the namespace, so never `from evaluate import`.
    from evaluate.loading import get_imports

    for path in MODULES_DIR.glob("*/*.py"):
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                assert len(node.names) == 1, f"{path.name}:{node.lineno}: one import per line"
            if isinstance(node, ast.ImportFrom):
                assert node.module != "evaluate" and node.level == 0, f"{path.name}:{node.lineno}"
        kinds = {kind for kind, *_ in get_imports(str(path))}
        assert kinds <= {"library"}, f"{path.name}: evaluate would try to fetch {kinds}"


def test_pyproject_ships_the_modules_and_their_libraries():
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "metric_modules/*/*.py" in doc["tool"]["setuptools"]["package-data"]["tunedeck.core.eval"]
    deps = " ".join(doc["project"]["dependencies"])
    for lib in ("evaluate", "scikit-learn", "rouge-score", "sacrebleu"):
        assert lib in deps
    assert eval_metrics.MODULES_DIR.is_relative_to(ROOT / "core" / "eval")
