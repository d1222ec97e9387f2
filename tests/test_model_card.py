"""model/README.md written at the end of a real tiny training run."""

from __future__ import annotations

import json
from pathlib import Path

from tdhelpers import tiny_cls_profile
from test_eval_run import train
from tunedeck.core.eval.model_card import confusion_table


def test_model_card_after_training(tmp_path, cls_csv, capsys):
    run_dir = train(tiny_cls_profile(tmp_path, cls_csv, epochs=1), capsys)
    card = (run_dir / "model" / "README.md").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    status = json.loads((run_dir / "status.json").read_text())
    assert "**Task:** classification" in card and "fresh model from [model.config]" in card
    assert f"`{status['data_fingerprint']}`" in card
    assert f"| accuracy | {metrics['accuracy']:.4f} |" in card
    assert confusion_table(metrics["confusion_matrix"]) in card
    assert "**Hardware:** cpu; CPU " in card
    assert (run_dir / "profile.toml").read_text().strip() in card
    assert "AutoModelForSequenceClassification.from_pretrained" in card
    from tunedeck.core.runs.events import read_all

    sizes = next(e.data["dataset_sizes"] for e in read_all(run_dir / "events.jsonl")
                 if e.type == "run_started")
    assert "**Data:** " + ", ".join(f"{k} {v:,} rows" for k, v in sizes.items()) in card


def test_confusion_table_markdown():
    table = confusion_table({"labels": ["a", "b"], "matrix": [[3, 1], [0, 2]]})
    assert table.splitlines() == ["| gold \\ predicted | a | b |", "|---|---:|---:|",
                                  "| a | 3 | 1 |", "| b | 0 | 2 |"]
