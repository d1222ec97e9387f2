"""`tunedeck eval` on really trained tiny runs: it reproduces the run's own test metrics, works
on new files for all three tasks, and writes the evals/<name>/ contract."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import tomli_w

from tdhelpers import tiny_cls_profile, tiny_lm_profile
from tunedeck.core.eval.predictions import (PREDICTIONS_SCHEMA, list_evals, read_predictions,
                                            write_eval)


def cli(args, capsys, code=0):
    from tunedeck.core.cli import main

    capsys.readouterr()
    rc = main(args)
    out = capsys.readouterr()
    assert rc == code, out.err
    return out


def train(profile: Path, capsys) -> Path:
    return Path(cli(["train", str(profile)], capsys).out.strip().splitlines()[-1])


def eval_json(run_dir: Path, capsys, *args) -> dict:
    return json.loads(cli(["eval", str(run_dir), "--json", *args], capsys).out)


def test_eval_reproduces_classification_metrics(tmp_path, cls_csv, capsys):
    run_dir = train(tiny_cls_profile(tmp_path, cls_csv, epochs=2), capsys)
    recorded = json.loads((run_dir / "metrics.json").read_text())
    got = eval_json(run_dir, capsys, "--split", "test", "--checkpoint", "final", "--errors", "3")
    assert got["name"] == "test-final"
    for key in ("accuracy", "f1_macro", "precision_macro", "recall_weighted", "eval_loss"):
        assert got["metrics"][key] == pytest.approx(recorded[key], rel=1e-6), key
    assert got["metrics"]["confusion_matrix"] == recorded["confusion_matrix"]
    eval_dir = run_dir / "evals" / "test-final"
    written = json.loads((eval_dir / "metrics.json").read_text())
    assert written["split"] == "test" and written["checkpoint"] == "final"
    assert written["label_names"] == ["neg", "pos"] and written["per_class"] == recorded["per_class"]
    table = read_predictions(eval_dir)
    assert table.schema.equals(PREDICTIONS_SCHEMA)
    assert table.num_rows == written["rows"] == sum(recorded["per_class"][c]["support"] for c in ("neg", "pos"))
    rows = table.to_pylist()
    lines = cls_csv.read_text().splitlines()
    for r in rows:  # row numbers point at the example's line of the source file
        assert r["source"] == str(cls_csv) and lines[r["row"] - 1] == f"{r['text']},{r['gold']}"
        assert r["probability"] == pytest.approx(max(r["probabilities"]))
        assert r["predicted"] == ["neg", "pos"][r["probabilities"].index(max(r["probabilities"]))]
    accuracy = sum(r["predicted"] == r["gold"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(recorded["accuracy"])
    wrong = [r for r in rows if r["predicted"] != r["gold"]]
    assert len(got["errors"]) == min(3, len(wrong))
    assert [e["probability"] for e in got["errors"]] == sorted((r["probability"] for r in wrong), reverse=True)[:3]


def test_eval_reproduces_lm_loss_and_generates(tmp_path, lm_jsonl, capsys):
    prof = tiny_lm_profile(tmp_path, lm_jsonl, epochs=2)
    doc = __import__("tomllib").loads(prof.read_text())
    doc["evaluation"] = {"metrics": ["exact_match"], "max_new_tokens": 3}
    prof.write_text(tomli_w.dumps(doc))
    run_dir = train(prof, capsys)
    recorded = json.loads((run_dir / "metrics.json").read_text())
    assert "exact_match" in recorded  # asked for: the end-of-training test evaluation generated
    out = cli(["eval", str(run_dir), "--errors", "2"], capsys).out
    assert "perplexity" in out and "highest loss:" in out
    written = json.loads((run_dir / "evals" / "test-final" / "metrics.json").read_text())
    assert written["eval_loss"] == pytest.approx(recorded["eval_loss"], rel=1e-6)
    assert written["perplexity"] == pytest.approx(recorded["perplexity"], rel=1e-5)
    assert written["exact_match"] == pytest.approx(recorded["exact_match"])
    rows = read_predictions(run_dir / "evals" / "test-final").to_pylist()
    assert all(r["probability"] is None and r["probabilities"] is None for r in rows)
    assert all(isinstance(r["predicted"], str) and r["gold"].isdigit() for r in rows)
    assert all(r["text"].startswith("add ") and r["loss"] > 0 and r["tokens"] > 0 for r in rows)


def test_eval_new_file_seq2seq_and_checkpoints(tmp_path, lm_jsonl, capsys):
    t5 = {"model_type": "t5", "d_model": 32, "d_ff": 64, "num_layers": 2, "num_heads": 2,
          "d_kv": 16, "vocab_size": 400}
    doc = {"name": "tiny-s2s", "task": {"type": "seq2seq"}, "model": {"config": t5},
           "data": {"train": str(lm_jsonl), "prompt_column": "prompt", "response_column": "response"},
           "training": {"epochs": 2, "learning_rate": 3e-3, "batch_size": 16, "max_length": 32,
                        "precision": "fp32"},
           "evaluation": {"max_new_tokens": 3}, "output": {"runs_dir": str(tmp_path / "runs")}}
    prof = tmp_path / "s2s.toml"
    prof.write_text(tomli_w.dumps(doc))
    run_dir = train(prof, capsys)
    new = tmp_path / "new_pairs.jsonl"
    new.write_text("".join(json.dumps({"prompt": f"add {a} and 1", "response": str(a + 1)}) + "\n"
                           for a in range(6)))
    got = eval_json(run_dir, capsys, "--data", str(new), "--metric", "exact_match")
    assert got["name"] == "new_pairs-final" and got["metrics"]["rows"] == 6
    assert got["metrics"]["data"] == str(new) and "exact_match" in got["metrics"]
    step = sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("step-"))[-1]
    got = eval_json(run_dir, capsys, "--data", str(new), "--checkpoint", step, "--name", "mine")
    assert got["metrics"]["checkpoint"] == step and got["metrics"]["step"] == int(step[5:])
    assert {e.name for e in list_evals(run_dir)} == {"new_pairs-final", "mine"}
    err = cli(["eval", str(run_dir), "--checkpoint", "step-999"], capsys, code=2).err
    assert "step-999" in err and step in err


def test_eval_file_errors_name_the_problem(tmp_path, cls_csv, capsys):
    run_dir = train(tiny_cls_profile(tmp_path, cls_csv, epochs=1), capsys)
    bad = tmp_path / "bad.csv"
    bad.write_text("body,label\nhello there,pos\n")
    err = cli(["eval", str(run_dir), "--data", str(bad)], capsys, code=2).err
    assert "'text'" in err and "body" in err
    unseen = tmp_path / "unseen.csv"
    unseen.write_text("text,label\ngood film,pos\nodd film,meh\n")
    err = cli(["eval", str(run_dir), "--data", str(unseen)], capsys, code=2).err
    assert f"{unseen}:3" in err and "'meh'" in err
    assert not (run_dir / "evals").exists() or not list((run_dir / "evals").iterdir())


def test_unloadable_metric_is_exit_2_before_training(tmp_path, cls_csv, capsys):
    prof = tiny_cls_profile(tmp_path, cls_csv)
    err = cli(["profile", "check", str(prof), "--set", 'evaluation.metrics=["no_such_metric"]'],
              capsys, code=2).err
    assert "evaluation.metrics" in err and "no_such_metric" in err
    err = cli(["start", str(prof), "--set", 'evaluation.metrics=["no_such_metric"]'], capsys, code=2).err
    assert "no_such_metric" in err and not (tmp_path / "runs").exists()


def test_predictions_contract_replaces_whole(tmp_path):
    cols = {"source": ["a.csv"], "row": [3], "text": ["x"], "gold": ["a"], "predicted": ["b"],
            "probability": [0.7], "gold_probability": [0.3], "probabilities": [[0.3, 0.7]],
            "loss": [1.2], "tokens": [4]}
    first = write_eval(tmp_path, "test-final", {"task": "classification", "rows": 1}, cols)
    second = write_eval(tmp_path, "test-final", {"task": "causal-lm", "rows": 2},
                        {"source": ["a", "a"], "row": [None, 2], "text": ["p", "q"],
                         "gold": ["1", "2"], "predicted": ["1", "3"], "loss": [0.5, 2.0],
                         "tokens": [3, 3]})
    assert first == second
    assert [e.name for e in list_evals(tmp_path)] == ["test-final"]  # no temp or old folders
    assert sorted(p.name for p in (tmp_path / "evals").iterdir()) == ["test-final"]
    table = pq.read_table(second / "predictions.parquet")
    assert table.column("row").to_pylist() == [None, 2]
    assert table.column("probabilities").to_pylist() == [None, None]
    assert json.loads((second / "metrics.json").read_text())["task"] == "causal-lm"
