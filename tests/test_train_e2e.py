"""A tiny BERT classifier and a tiny GPT causal LM train end to end through the CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tdhelpers import TUNEDECK, cli_env, tiny_cls_profile, tiny_lm_profile
from tunedeck.core.runs.events import read_all


def run_cli(args, tmp_path, check=True, timeout=300):
    proc = subprocess.run(TUNEDECK + args, cwd=tmp_path, env=cli_env(tmp_path), text=True,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def run_inproc(args, capsys, code=0):
    """The same CLI in this process (saves a torch import per call); returns stdout."""
    from tunedeck.core.cli import main

    capsys.readouterr()
    rc = main(args)
    out = capsys.readouterr()
    assert rc == code, out.err
    return out.out


def check_events(run_dir: Path) -> list:
    evs = read_all(run_dir / "events.jsonl")
    types = [e.type for e in evs if e.type != "log"]  # log lines may come before the start
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert [e.seq for e in evs] == list(range(1, len(evs) + 1))
    assert "step" in types and "eval" in types and "checkpoint" in types
    assert types.index("step") < types.index("run_finished")
    steps = [e.data for e in evs if e.type == "step"]
    for d in steps:
        for key in ("step", "total_steps", "epoch", "loss", "lr", "grad_norm", "tokens_per_s",
                    "samples_per_s", "elapsed_s", "eta_s"):
            assert key in d
    assert steps[-1]["step"] == steps[-1]["total_steps"]
    return evs


def test_classifier_trains_and_loads(tmp_path, cls_csv, capsys, monkeypatch):
    prof = tiny_cls_profile(tmp_path, cls_csv, epochs=6)
    proc = run_cli(["train", str(prof)], tmp_path)
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert run_dir.is_dir()
    assert "step " in proc.stdout and "loss" in proc.stdout and "tok/s" in proc.stdout
    evs = check_events(run_dir)
    losses = [e.data["loss"] for e in evs if e.type == "step"]
    assert losses[-1] < losses[0] * 0.8, losses
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("accuracy", "f1_macro", "per_class", "confusion_matrix", "eval_loss"):
        assert key in metrics
    assert metrics["accuracy"] > 0.7
    assert set(metrics["per_class"]) == {"neg", "pos"}
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished"
    evals = [e.data for e in read_all(run_dir / "events.jsonl") if e.type == "eval"]
    assert evals[0]["step"] == 0  # eval_at_start (default): the untrained baseline ...
    assert status["best"]["step"] > 0  # ... is never the run's "best"

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(run_dir / "model")
    tok = AutoTokenizer.from_pretrained(run_dir / "model")
    assert set(model.config.id2label.values()) == {"neg", "pos"}
    out = model(**tok(["great wonderful movie"], return_tensors="pt"))
    assert out.logits.shape == (1, 2)

    monkeypatch.chdir(tmp_path)
    pred = run_inproc(["predict", "--runs-dir", str(tmp_path / "runs"), run_dir.name,
                       "excellent fantastic happy film"], capsys)
    label, prob = pred.strip().split("\t")
    assert label in ("pos", "neg") and 0.0 <= float(prob) <= 1.0

    rows = json.loads(run_inproc(["runs", "--runs-dir", str(tmp_path / "runs"), "--json"], capsys))
    assert rows[0]["id"] == run_dir.name and rows[0]["state"] == "finished"
    assert rows[0]["best_metric"] == "f1_macro"

    # The second run on unchanged data does not tokenize again.
    out2 = run_inproc(["train", str(prof), "--set", "training.max_steps=2"], capsys)
    run2 = Path(out2.strip().splitlines()[-1])
    started = next(e for e in read_all(run2 / "events.jsonl") if e.type == "run_started")
    assert started.data["tokenize_cache_hit"] is True
    assert "cache hit" in out2


def test_causal_lm_trains_and_generates(tmp_path, lm_jsonl, capsys):
    prof = tiny_lm_profile(tmp_path, lm_jsonl, epochs=8)
    proc = run_cli(["train", str(prof)], tmp_path)
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    evs = check_events(run_dir)
    losses = [e.data["loss"] for e in evs if e.type == "step"]
    assert losses[-1] < losses[0] * 0.7, losses
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["perplexity"] > 1 and "eval_loss" in metrics

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(run_dir / "model")
    assert model.config.model_type == "gpt2"
    run_inproc(["predict", "--runs-dir", str(tmp_path / "runs"), run_dir.name, "add 2 and 3"], capsys)


def test_response_only_loss_masks_prompt(tmp_path, lm_jsonl):
    from tunedeck.core.profile import load, resolve_paths
    from tunedeck.core.engine.inputs import prepare_inputs

    prof = resolve_paths(load(tiny_lm_profile(tmp_path, lm_jsonl)), tmp_path)
    prep = prepare_inputs(prof)
    ts = prep.train
    for i in range(5):
        labels = ts.labels[ts.label_offsets[i]: ts.label_offsets[i + 1]]
        ids = ts.ids[ts.offsets[i]: ts.offsets[i + 1]]
        n_prompt = int((labels == -100).sum())
        assert n_prompt > 0
        assert (labels[n_prompt:] == ids[n_prompt:]).all()
        answer = prep.tokenizer.decode(ids[n_prompt:], skip_special_tokens=True).strip()
        assert answer.isdigit()


def test_bad_profile_exits_2_and_leaves_nothing(tmp_path, cls_csv):
    prof = tiny_cls_profile(tmp_path, cls_csv)
    proc = run_cli(["train", str(prof), "--set", "training.learnig_rate=1"], tmp_path, check=False)
    assert proc.returncode == 2
    assert "did you mean 'training.learning_rate'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()
    proc = run_cli(["train", str(prof), "--set", "data.text_column=body"], tmp_path, check=False)
    assert proc.returncode == 2 and "body" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_profile_new_and_check(tmp_path, capsys):
    for task in ("classification", "causal-lm"):
        (tmp_path / "p.toml").write_text(run_inproc(["profile", "new", "--task", task], capsys))
        assert "ok" in run_inproc(["profile", "check", str(tmp_path / "p.toml")], capsys)


def test_doctor_reports(tmp_path, capsys):
    rep = json.loads(run_inproc(["doctor", "--json"], capsys))
    for key in ("python", "torch", "cuda", "gpus", "disk_free_gb", "offline", "problems"):
        assert key in rep
    assert rep["offline"] is True  # the test environment sets HF_HUB_OFFLINE
    assert any("GPU" in p["what"] for p in rep["problems"]) or rep["gpus"]
    assert "fix:" in run_inproc(["doctor"], capsys)


def test_seq2seq_trains_and_generates(tmp_path, lm_jsonl, capsys):
    import tomli_w

    doc = {"name": "tiny-s2s", "task": {"type": "seq2seq"},
           "model": {"config": {"model_type": "t5", "d_model": 32, "d_ff": 64, "num_layers": 2,
                                "num_heads": 2, "d_kv": 16, "vocab_size": 400}},
           "data": {"train": str(lm_jsonl), "prompt_column": "prompt", "response_column": "response"},
           "training": {"epochs": 6, "learning_rate": 3e-3, "batch_size": 16, "max_length": 32,
                        "log_every_steps": 2, "precision": "fp32"},
           "output": {"runs_dir": str(tmp_path / "runs")}}
    prof = tmp_path / "s2s.toml"
    prof.write_text(tomli_w.dumps(doc))
    out = run_inproc(["train", str(prof)], capsys)
    run_dir = Path(out.strip().splitlines()[-1])
    evs = check_events(run_dir)
    losses = [e.data["loss"] for e in evs if e.type == "step"]
    assert losses[-1] < losses[0], losses
    from transformers import AutoModelForSeq2SeqLM

    assert AutoModelForSeq2SeqLM.from_pretrained(run_dir / "model").config.model_type == "t5"
    run_inproc(["predict", "--runs-dir", str(tmp_path / "runs"), run_dir.name, "add 1 and 2"], capsys)
