"""Promise 6: pre-flight. Estimate memory (weights, gradients, AdamW state, activations for
batch x max_length, by precision) against the free memory of the device, and say plainly when
it will not fit and which setting to change."""

from __future__ import annotations

import pytest

from tunedeck.core.engine.memory_estimate import format_memory_report, memory_report
from test_reliability_support import cls_setup, lm_setup, of_type, one_thread, train_fg  # noqa: F401

GiB = 1024 ** 3
BERT_LARGE = {"model_type": "bert", "hidden_size": 1024, "num_hidden_layers": 24,
              "num_attention_heads": 16, "intermediate_size": 4096, "vocab_size": 30522,
              "max_position_embeddings": 512}


def _gpu(free_gib: float, bf16: bool = True) -> dict:
    return {"device": "cuda:0 (test)", "kind": "cuda", "free_bytes": int(free_gib * GiB),
            "total_bytes": int(80 * GiB), "bf16": bf16}


def _profile(tmp_path, sets=(), lm=False):
    from tunedeck.core.runs.lifecycle import load_profile as _load_profile

    path = (lm_setup if lm else cls_setup)(tmp_path)
    return _load_profile(str(path), list(sets))


def test_tiny_profile_fits_on_this_machine(tmp_path):
    rep = memory_report(_profile(tmp_path))
    assert rep["fits"] is True and rep["error"] is None
    assert rep["suggestions"] == []
    est = rep["estimate"]
    assert est["gradients"] == est["weights"] == 4 * rep["params"]
    assert est["optimizer"] == 8 * rep["params"]
    assert est["total"] >= sum(est[k] for k in ("weights", "gradients", "optimizer", "activations"))
    text = format_memory_report(rep)
    assert "fits" in text and "AdamW state" in text and "activations" in text


def test_param_count_matches_the_real_model(tmp_path):
    from tunedeck.core.engine.inputs import build_model, prepare_inputs

    prof = _profile(tmp_path, lm=True)
    model = build_model(prepare_inputs(prof))
    real = sum(p.numel() for p in model.parameters())
    # The estimate sizes the model from the config with a guessed vocabulary: close, not exact.
    assert abs(memory_report(prof)["params"] - real) / real < 0.35
    assert memory_report(prof, model=model)["params"] == real


def test_will_not_fit_names_the_setting_and_the_fix_fits(tmp_path):
    big = ["model.config=" + "{" + ", ".join(
        f"{k}={v!r}".replace("'", '"') for k, v in BERT_LARGE.items()) + "}",
        "training.batch_size=64", "training.max_length=512", "training.batching=\"rows\""]
    prof = _profile(tmp_path, big)
    rep = memory_report(prof, device=_gpu(24, bf16=False))
    assert rep["fits"] is False and rep["precision"] == "fp32"
    text = format_memory_report(rep)
    assert "WILL NOT FIT" in text
    first = rep["suggestions"][0]
    assert "training.batch_size" in first and "training.gradient_accumulation_steps" in first
    assert any("training.max_length" in s for s in rep["suggestions"])
    assert any("bf16" in s or "fp16" in s for s in rep["suggestions"])
    # Following the first suggestion makes it fit, with the same effective batch.
    import re

    bs, ga = map(int, re.findall(r"= (\d+)", first)[:2])
    assert bs * ga >= 64
    fixed = _profile(tmp_path / "b", big + [f"training.batch_size={bs}",
                                            f"training.gradient_accumulation_steps={ga}"])
    assert memory_report(fixed, device=_gpu(24, bf16=False))["fits"] is True


def test_bf16_at_most_halves_activations(tmp_path):
    prof32 = _profile(tmp_path, ["training.precision=\"fp32\""])
    prof16 = _profile(tmp_path / "b", ["training.precision=\"bf16\""])
    a32 = memory_report(prof32, device=_gpu(80))["estimate"]["activations"]
    a16 = memory_report(prof16, device=_gpu(80))["estimate"]["activations"]
    assert a16 * 2 <= a32  # half the bytes, and fused attention drops the s^2 scores


def test_model_too_big_for_any_batch(tmp_path):
    big = ["model.config=" + "{" + ", ".join(
        f"{k}={v!r}".replace("'", '"') for k, v in BERT_LARGE.items()) + "}"]
    rep = memory_report(_profile(tmp_path, big), device=_gpu(3))
    assert rep["fits"] is False
    assert "smaller model" in rep["suggestions"][0] and "cannot fix" in rep["suggestions"][0]


def test_unknown_model_is_reported_not_raised(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from tunedeck.core.runs.lifecycle import load_profile as _load_profile

    prof = _load_profile(str(cls_setup(tmp_path)), ["model.name=\"no-such-org/no-such-model-xyz\""])
    prof = prof.model_copy(update={"model": prof.model.model_copy(update={"config": None})})
    rep = memory_report(prof, device=_gpu(10))
    assert rep["fits"] is None and "no-such-model-xyz" in rep["error"]
    assert "cannot estimate" in format_memory_report(rep)


@pytest.mark.usefixtures("one_thread")
def test_worker_logs_the_estimate(tmp_path):
    run = train_fg(cls_setup(tmp_path, epochs=1))
    pre = [d for d in of_type(run, "log") if d.get("kind") == "memory_estimate"]
    assert len(pre) == 1 and pre[0]["fits"] is True and "memory estimate" in pre[0]["message"]
