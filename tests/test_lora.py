"""LoRA through PEFT, end to end on tiny models built from configs (CPU, fp32): a causal LM and
a BERT classifier train with only their adapters (+ the classifier head) trainable, checkpoints
hold only those, a killed LoRA run resumes to the same adapter bit for bit, ``export --merged``
writes full weights that plain transformers loads and that give the adapter model's logits,
predict/eval work on adapter runs, and QLoRA on a machine without CUDA is refused before any
run directory exists."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from test_reliability_support import (  # noqa: F401 - fixtures
    clean_hooks, cli, cls_setup, lm_setup, of_type, one_thread, resume_fg, status, step_losses,
    train_fg, train_killed)

pytestmark = pytest.mark.usefixtures("one_thread", "clean_hooks")

R = 8
# LoRA parameters of the tiny models at rank R, counted by hand from tdhelpers' configs:
# GPT-2 (n_embd 32, 2 layers): c_attn 32->96, attn c_proj 32->32, c_fc 32->128, mlp c_proj
# 128->32: r*(128 + 64 + 160 + 160) a layer.
LM_TRAINABLE = 2 * R * (128 + 64 + 160 + 160)
# BERT (hidden 32, intermediate 64, 2 layers): query/key/value/attention output 32->32,
# intermediate 32->64, output 64->32, and the pooler 32->32; plus the classifier head (32x2 + 2)
# trained in full (modules_to_save).
CLS_TRAINABLE = R * (2 * (4 * 64 + 96 + 96) + 64) + (32 * 2 + 2)
LORA = {"enabled": True, "r": R, "alpha": 2 * R}


def with_sections(profile: Path, **sections: dict) -> Path:
    import tomllib

    import tomli_w

    doc = tomllib.loads(profile.read_text(encoding="utf-8"))
    for name, table in sections.items():
        doc.setdefault(name, {}).update(table)
    profile.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return profile


def adapter_weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.fixture(scope="module")
def lm_profile(tmp_path_factory):
    prof = lm_setup(tmp_path_factory.mktemp("lora-lm"), epochs=3, learning_rate=1e-2,
                    save_every_steps=3, keep_checkpoints=5)
    return with_sections(prof, lora=LORA)


@pytest.fixture(scope="module")
def lm_run(lm_profile):
    return train_fg(lm_profile)


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory):
    prof = cls_setup(tmp_path_factory.mktemp("lora-cls"), n=160, epochs=8, learning_rate=1e-2,
                     gradient_checkpointing=True)
    return train_fg(with_sections(prof, lora=LORA))


def test_causal_lm_trains_only_its_adapter(lm_run):
    started = of_type(lm_run, "run_started")[0]
    assert started["trainable_params"] == LM_TRAINABLE
    assert started["model_params"] > 5 * LM_TRAINABLE
    logs = [d["message"] for d in of_type(lm_run, "log")]
    assert any(f"{LM_TRAINABLE:,} of {started['model_params']:,} parameters trainable" in m
               and "c_attn, c_fc, c_proj" in m for m in logs), logs
    # A random-init base with rank-8 adapters learns slowly; the loss still falls steadily.
    losses = [loss for _, loss in step_losses(lm_run)]
    assert losses[-1] < losses[0] * 0.95, losses
    evals = [d["metrics"]["eval_loss"] for d in of_type(lm_run, "eval") if d["split"] == "validation"]
    assert evals[-1] < evals[0] - 0.2, evals
    assert status(lm_run)["state"] == "finished"
    # model/ is the adapter (+ tokenizer); the frozen base was built from [model.config], so
    # the run keeps it in base/ and the adapter names it.
    model = lm_run / "model"
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= \
        {p.name for p in model.iterdir()}
    assert not (model / "model.safetensors").exists()
    cfg = json.loads((model / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str((lm_run / "base").resolve())
    assert cfg["r"] == R and cfg["task_type"] == "CAUSAL_LM"


def test_checkpoints_hold_only_the_adapter(lm_run):
    from tunedeck.core.engine.checkpoint import list_complete

    ckpt = list_complete(lm_run / "checkpoints")[-1]
    saved = adapter_weights(ckpt / "model.safetensors")
    assert saved and all(".lora_A." in k or ".lora_B." in k for k in saved), list(saved)[:5]
    assert sum(t.numel() for t in saved.values()) == LM_TRAINABLE
    import torch

    optim = torch.load(ckpt / "optimizer.pt", weights_only=True)
    assert sum(t.numel() for s in optim["state"].values() for k, t in s.items()
               if k == "exp_avg") == LM_TRAINABLE


def test_loadable_with_peft_and_merged_export_gives_the_same_logits(lm_run, capsys):
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = lm_run.parent.parent / "merged-lm"
    assert cli("export", lm_run.name, "--merged", str(out), "--runs-dir", str(lm_run.parent)) == 0
    assert "LoRA adapter merged into its base" in capsys.readouterr().out
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok(["add 3 and 4", "add 9 and 9 = 18"], return_tensors="pt", padding=True)
    adapter = AutoPeftModelForCausalLM.from_pretrained(lm_run / "model").eval()
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    assert not hasattr(plain, "peft_config")
    with torch.no_grad():
        a, b = adapter(**ids).logits, plain(**ids).logits
    # fp32 on CPU: merging folds B·A·alpha/r into the weight; only rounding differs.
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    # The adapter changed the model: the merged weights are not the base's.
    base = AutoModelForCausalLM.from_pretrained(lm_run / "base").eval()
    with torch.no_grad():
        assert (base(**ids).logits - b).abs().max() > 1e-3
    # Nothing is overwritten.
    assert cli("export", lm_run.name, "--merged", str(out), "--runs-dir", str(lm_run.parent)) == 2
    assert "already exists" in capsys.readouterr().err


def test_killed_lora_run_resumes_to_the_same_adapter(lm_profile, lm_run):
    total = status(lm_run)["total_steps"]
    kill = total - 4  # checkpoints every 3 steps: resumes from the one before, re-trains some
    run, outcome = train_killed(lm_profile, {"TUNEDECK_TEST_KILL_AT_STEP": str(kill)})
    assert outcome == ("signal", signal.SIGKILL)
    assert resume_fg(run) == 0
    assert status(run)["state"] == "finished" and status(run)["step"] == total
    resumed = of_type(run, "run_resumed")
    assert len(resumed) == 1 and 0 < resumed[0]["step"] < kill
    after = total - resumed[0]["step"]
    assert step_losses(run)[-after:] == step_losses(lm_run)[-after:]  # bit for bit
    import torch

    a = adapter_weights(lm_run / "model" / "adapter_model.safetensors")
    b = adapter_weights(run / "model" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_classifier_lora_trains_head_and_adapters(cls_run):
    started = of_type(cls_run, "run_started")[0]
    assert started["trainable_params"] == CLS_TRAINABLE
    logs = [d["message"] for d in of_type(cls_run, "log")]
    assert any("classifier (trained in full)" in m and "query" in m for m in logs), logs
    losses = [loss for _, loss in step_losses(cls_run)]
    assert losses[-1] < losses[0] * 0.8, losses
    metrics = json.loads((cls_run / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.7, metrics
    cfg = json.loads((cls_run / "model" / "adapter_config.json").read_text())
    assert "classifier" in cfg["modules_to_save"] and cfg["task_type"] == "SEQ_CLS"


def test_classifier_predict_eval_and_merged_export(cls_run, capsys):
    import torch
    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    runs = str(cls_run.parent)
    capsys.readouterr()
    assert cli("predict", cls_run.name, "excellent fantastic happy film", "--json",
               "--runs-dir", runs) == 0
    pred = json.loads(capsys.readouterr().out)
    assert pred["label"] == "pos", pred
    assert cli("predict", cls_run.name, "awful terrible sad film", "--checkpoint", "best",
               "--json", "--runs-dir", runs) == 0
    assert json.loads(capsys.readouterr().out)["label"] == "neg"
    assert cli("eval", cls_run.name, "--json", "--runs-dir", runs) == 0
    report = json.loads(capsys.readouterr().out)
    final = json.loads((cls_run / "metrics.json").read_text())
    assert report["metrics"]["accuracy"] == pytest.approx(final["accuracy"])

    out = cls_run.parent.parent / "merged-cls"
    assert cli("export", cls_run.name, "--merged", str(out), "--runs-dir", runs) == 0
    plain = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert set(plain.config.id2label.values()) == {"neg", "pos"}
    adapter = AutoPeftModelForSequenceClassification.from_pretrained(cls_run / "model").eval()
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok(["great wonderful movie", "the plot was bad"], return_tensors="pt", padding=True)
    with torch.no_grad():
        a, b = adapter(**ids).logits, plain(**ids).logits
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


@pytest.fixture
def local_base(tmp_path):
    """A tiny pretrained-style GPT-2 directory (save_pretrained), named by model.name."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model("gpt2", n_embd=32, n_layer=2, n_head=2, vocab_size=400,
                               n_positions=128, bos_token_id=0, eos_token_id=0)
    path = tmp_path / "tiny-gpt2"
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    return path


@pytest.mark.parametrize("command", ["train", "start", "profile-check"])
def test_quantization_without_cuda_is_exit_2_before_any_run(tmp_path, local_base, command,
                                                            capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal is for machines without it")
    import tomllib

    import tomli_w

    prof = lm_setup(tmp_path)
    doc = tomllib.loads(prof.read_text(encoding="utf-8"))
    doc.update(model={"name": str(local_base)}, lora=LORA, quantization={"bits": 4})
    prof.write_text(tomli_w.dumps(doc), encoding="utf-8")
    args = ["profile", "check", str(prof)] if command == "profile-check" else [command, str(prof)]
    capsys.readouterr()
    assert cli(*args) == 2
    err = capsys.readouterr().err
    assert "quantization.bits = 4" in err and "no CUDA GPU" in err and "bits = 0" in err, err
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_quantization_needs_lora(tmp_path, capsys):
    prof = with_sections(lm_setup(tmp_path), quantization={"bits": 8})
    capsys.readouterr()
    assert cli("train", str(prof)) == 2
    assert "quantization.bits needs lora.enabled = true" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_memory_estimate_counts_frozen_base_adapters_and_checkpointing():
    from tunedeck.core.engine.memory_estimate import memory_report
    from tunedeck.core.profile.schema import Profile

    llama = {"model_type": "llama", "hidden_size": 1024, "intermediate_size": 4096,
             "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 4,
             "vocab_size": 32000}
    dev = {"device": "cuda:0 (test)", "kind": "cuda", "free_bytes": 80 * 2**30,
           "total_bytes": 80 * 2**30, "bf16": True}

    def est(**sections):
        doc = {"task": {"type": "causal-lm"}, "model": {"config": llama},
               "training": {"batch_size": 4, "max_length": 512}}
        for k, v in sections.items():
            doc.setdefault(k, {}).update(v)
        rep = memory_report(Profile.model_validate(doc), device=dev)
        assert rep["error"] is None, rep["error"]
        return rep

    full, lora = est(), est(lora={"enabled": True, "r": 16})
    gc = est(lora={"enabled": True, "r": 16}, training={"gradient_checkpointing": True})
    n = lora["trainable_params"]
    assert 0 < n < full["params"] // 50
    assert full["trainable_params"] == full["params"]
    assert lora["estimate"]["gradients"] == 4 * n and lora["estimate"]["optimizer"] == 8 * n
    assert full["estimate"]["optimizer"] == 8 * full["params"]
    assert lora["estimate"]["weights"] == 4 * lora["params"]  # frozen fp32 base + adapters
    assert gc["estimate"]["activations"] < lora["estimate"]["activations"] / 3
    q = est(lora={"enabled": True, "r": 16}, quantization={"bits": 4})
    assert q["estimate"]["weights"] < lora["estimate"]["weights"] / 2


def test_try_it_server_answers_from_an_adapter_run(cls_run, tmp_path):
    """The TUI's try-it box talks to 'tunedeck serve-predict' (the same loader as predict)."""
    import subprocess

    from tdhelpers import TUNEDECK, cli_env

    lines = json.dumps({"text": "excellent fantastic happy film"}) + "\n" + \
        json.dumps({"text": "awful terrible sad film"}) + "\n"
    proc = subprocess.run(TUNEDECK + ["serve-predict", cls_run.name, "--runs-dir",
                                      str(cls_run.parent)], input=lines, text=True,
                          capture_output=True, env=cli_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(x) for x in proc.stdout.splitlines()]
    assert replies[0]["ready"] is True
    assert [r["label"] for r in replies[1:]] == ["pos", "neg"], replies


def test_seq2seq_lora_trains_predicts_and_merges(tmp_path, capsys):
    import tomli_w
    import torch
    from peft import AutoPeftModelForSeq2SeqLM
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from test_reliability_support import write_lm_jsonl

    doc = {"name": "tiny-s2s", "task": {"type": "seq2seq"},
           "model": {"config": {"model_type": "t5", "d_model": 32, "d_ff": 64, "num_layers": 2,
                                "num_heads": 2, "d_kv": 16, "vocab_size": 400}},
           "data": {"train": str(write_lm_jsonl(tmp_path / "pairs.jsonl")),
                    "prompt_column": "prompt", "response_column": "response"},
           "training": {"epochs": 3, "learning_rate": 1e-2, "batch_size": 16, "max_length": 32,
                        "log_every_steps": 1, "precision": "fp32"},
           "output": {"runs_dir": str(tmp_path / "runs")}, "lora": LORA}
    prof = tmp_path / "s2s.toml"
    prof.write_text(tomli_w.dumps(doc))
    run = train_fg(prof)
    started = of_type(run, "run_started")[0]
    assert 0 < started["trainable_params"] < started["model_params"] // 3
    losses = [loss for _, loss in step_losses(run)]
    assert losses[-1] < losses[0], losses
    assert json.loads((run / "model" / "adapter_config.json").read_text())["task_type"] == \
        "SEQ_2_SEQ_LM"
    capsys.readouterr()
    assert cli("predict", run.name, "add 1 and 2", "--json", "--runs-dir", str(run.parent)) == 0
    assert "continuation" in json.loads(capsys.readouterr().out)
    out = tmp_path / "merged"
    assert cli("export", run.name, "--merged", str(out), "--runs-dir", str(run.parent)) == 0
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok(["add 3 and 4"], return_tensors="pt")
    dec = torch.tensor([[0, 5, 6]])
    adapter = AutoPeftModelForSeq2SeqLM.from_pretrained(run / "model").eval()
    plain = AutoModelForSeq2SeqLM.from_pretrained(out).eval()
    with torch.no_grad():
        a = adapter(**ids, decoder_input_ids=dec).logits
        b = plain(**ids, decoder_input_ids=dec).logits
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def test_unknown_target_module_is_exit_2_before_any_run(tmp_path, capsys):
    prof = with_sections(lm_setup(tmp_path), lora={**LORA, "target_modules": ["q_proj"]})
    capsys.readouterr()
    assert cli("train", str(prof)) == 2
    err = capsys.readouterr().err
    assert "lora.target_modules" in err and "q_proj" in err and "c_attn" in err, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_lora_on_a_pretrained_model_names_it_and_keeps_no_copy(lm_run, tmp_path, capsys):
    """A base that from_pretrained loads again (a local directory here, a hub id alike) is
    recorded by its path in adapter_config.json; RUN/base/ is not written."""
    import tomllib

    import tomli_w
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pretrained = tmp_path / "pretrained"
    AutoModelForCausalLM.from_pretrained(lm_run / "base").save_pretrained(pretrained)
    AutoTokenizer.from_pretrained(lm_run / "model").save_pretrained(pretrained)
    prof = lm_setup(tmp_path / "p", epochs=1)
    doc = tomllib.loads(prof.read_text(encoding="utf-8"))
    doc.update(model={"name": str(pretrained)}, lora=LORA)
    prof.write_text(tomli_w.dumps(doc), encoding="utf-8")
    run = train_fg(prof)
    assert status(run)["state"] == "finished"
    assert not (run / "base").exists()
    cfg = json.loads((run / "model" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(pretrained.resolve())
    assert AutoPeftModelForCausalLM.from_pretrained(run / "model") is not None
    capsys.readouterr()
    assert cli("predict", run.name, "add 2 and 2", "--json", "--runs-dir", str(run.parent)) == 0
    assert "continuation" in json.loads(capsys.readouterr().out)


def test_gradient_checkpointing_is_on_and_changes_no_result(tmp_path):
    """training.gradient_checkpointing recomputes activations in the backward pass (switched on
    in the model) and, being non-reentrant with the RNG state kept, trains the same numbers."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from tdhelpers import TINY_BERT
    from tunedeck.core.engine.adapters import prepare_for_training
    from tunedeck.core.profile.schema import Profile

    cfg = {k: v for k, v in TINY_BERT.items() if k != "model_type"}
    model = AutoModelForSequenceClassification.from_config(AutoConfig.for_model("bert", **cfg))
    prof = Profile.model_validate({"training": {"gradient_checkpointing": True}})
    assert prepare_for_training(model, prof, tmp_path).is_activation_checkpointing
    base = train_fg(cls_setup(tmp_path / "off", epochs=1))
    checkpointed = train_fg(cls_setup(tmp_path / "on", epochs=1, gradient_checkpointing=True))
    assert step_losses(checkpointed) == step_losses(base)


def test_export_of_a_full_fine_tune_writes_its_weights(tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    run = train_fg(cls_setup(tmp_path, epochs=1))
    out = tmp_path / "exported"
    capsys.readouterr()
    assert cli("export", run.name, "--merged", str(out), "--json", "--runs-dir",
               str(run.parent)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["lora"] is False and report["out"] == str(out.resolve())
    a, b = load_file(str(run / "model" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
