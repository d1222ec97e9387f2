"""training.compile (issue 14): what "auto" decides, the bounded batch shapes of a compiled run
(padding that changes neither loss nor gradients, a handful of shapes per run), and exact resume
of a really compiled (inductor, CPU, fp32) run."""

from __future__ import annotations

import numpy as np
import pytest

from test_reliability_support import (  # noqa: F401 - fixtures
    checkpoint_steps, clean_hooks, cls_setup, fork_call, of_type, one_thread, resume_fg,
    same_weights, status, step_losses, train_fg)
from tunedeck.core.engine.compile_shapes import (AUTO_MIN_STEPS, WIDTH_LADDER, BoundedShapes,
                                                 fixed_budget, ladder_width, resolve_compile)


def test_auto_is_off_on_cpu_and_on_for_long_gpu_runs() -> None:
    assert not resolve_compile("auto", "cpu", 10**6).on
    assert "CPU" in resolve_compile("auto", "cpu", 10**6).reason
    short = resolve_compile("auto", "cuda", AUTO_MIN_STEPS - 1)
    assert not short.on and "too short" in short.reason
    assert resolve_compile("auto", "cuda", AUTO_MIN_STEPS).on
    assert resolve_compile("on", "cpu", 1).on and not resolve_compile("off", "cuda", 10**6).on
    assert resolve_compile(True, "cpu", 1).on  # a profile from before "auto"


def test_old_boolean_profiles_still_load() -> None:
    from tunedeck.core.profile.schema import Profile

    def compile_of(v):
        doc = {"name": "x", "task": {"type": "classification"}, "training": {"compile": v}}
        return Profile.model_validate(doc).training.compile

    assert (compile_of(True), compile_of(False), compile_of("auto")) == ("on", "off", "auto")
    assert Profile.model_validate({"name": "x", "task": {"type": "classification"}}
                                  ).training.compile == "auto"


def test_a_run_has_few_shapes_over_several_epochs() -> None:
    from tunedeck.core.engine.batching import plan_epoch
    from tunedeck.core.engine.examples import TokenizedSet

    rng = np.random.default_rng(0)
    lengths = np.clip(np.exp(rng.normal(np.log(230), 0.5, 2000)).round(), 8, 512).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    data = TokenizedSet(rng.integers(5, 400, offsets[-1]), offsets, rng.integers(0, 2, 2000),
                        None, np.ones(2000, dtype=np.int64), np.arange(1, 2001))
    sh = BoundedShapes(lengths, 0)
    budget = fixed_budget(plan_epoch(sh.snapped, 1, 0, batching="tokens", batch_size=32,
                                     batch_tokens=0, multiple=8), sh.snapped)
    sh = BoundedShapes(lengths, budget)
    seen = set()
    for epoch in range(3):
        for b in plan_epoch(sh.snapped, 1, epoch, batching="tokens", batch_size=32,
                            batch_tokens=sh.budget, multiple=8):
            batch = sh.pad(data.collate(b, 0, 8), 0)
            seen.add(batch["input_ids"].shape)
            assert batch["labels"].shape[0] == batch["input_ids"].shape[0]
    assert seen <= set(sh.shapes())
    assert len(seen) <= len([w for w in WIDTH_LADDER if w <= 512])  # one graph per rung
    assert ladder_width(513) == 640 and ladder_width(9000) == 2 * WIDTH_LADDER[-1]


@pytest.mark.parametrize("task", ["classification", "causal-lm"])
def test_padding_rows_change_neither_loss_nor_gradients(task) -> None:
    import torch
    import transformers

    from tdhelpers import TINY_BERT, TINY_GPT
    from tunedeck.core.engine.examples import TokenizedSet
    from tunedeck.core.tasks import make_task

    torch.manual_seed(0)
    cfg = dict(TINY_BERT if task == "classification" else TINY_GPT)
    config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    cls = (transformers.AutoModelForSequenceClassification if task == "classification"
           else transformers.AutoModelForCausalLM)
    model = cls.from_config(config).eval()  # no dropout: the two passes must agree
    t = make_task(task, ["a", "b"] if task == "classification" else None)
    rng = np.random.default_rng(1)
    lengths = rng.integers(5, 40, 6)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = rng.integers(5, 400, offsets[-1])
    labels = rng.integers(0, 2, 6) if task == "classification" else ids.copy()
    data = TokenizedSet(ids, offsets, labels, None if task == "classification" else offsets,
                        np.ones(6, dtype=np.int64), np.arange(1, 7))
    sh = BoundedShapes(lengths, 16 * 64)  # 16 rows at width 64: ten padding rows

    def loss_and_grads(batch):
        model.zero_grad()
        b = {k: torch.from_numpy(v) for k, v in batch.items()}
        loss = t.loss_sum(model(**t.forward_kwargs(b)).logits, b["labels"])
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain = data.collate(np.arange(6), 0, 8)
    padded = sh.pad(plain, 0)
    assert padded["input_ids"].shape == (16, 64)
    loss_a, grads_a = loss_and_grads(plain)
    loss_b, grads_b = loss_and_grads(padded)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-6)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(gb, ga, rtol=1e-4, atol=1e-6)


@pytest.mark.usefixtures("one_thread", "clean_hooks")
def test_compiled_run_stops_and_resumes_exactly(tmp_path) -> None:
    """Inductor on CPU, fp32: stopped (SIGTERM) at step 5 in a forked worker, resumed here, it
    ends bit-identical to a compiled run that was never stopped. Rows of up to 32 tokens: one
    rung of the ladder, so one graph (compile is minutes on a busy 2-core box)."""
    import torch._inductor.config as inductor_config

    inductor_config.compile_threads = 1  # no compile worker pool across the fork below
    prof = cls_setup(tmp_path, n=80, compile="on", save_every_steps=4, epochs=2)
    runs = prof.parent / "runs"
    outcome = fork_call(lambda: __import__("tunedeck.core.cli", fromlist=["main"]).main(
        ["train", str(prof)]), env={"TUNEDECK_TEST_HOOKS": "step:5=TERM"}, timeout=900)
    assert outcome == ("exit", 0), outcome
    (stopped,) = list(runs.iterdir())
    assert status(stopped)["state"] == "stopped" and max(checkpoint_steps(stopped)) == 5
    base = train_fg(prof)
    started = of_type(base, "run_started")[0]
    assert (started["compile"], started["compile_setting"]) == ("on", "on")
    assert resume_fg(stopped) == 0
    assert status(stopped)["step"] == status(base)["step"] == status(base)["total_steps"]
    base_loss = dict(step_losses(base))
    after = [x for x in step_losses(stopped) if x[0] > 5]
    assert after and after == [(s, base_loss[s]) for s, _ in after]
    assert same_weights(base / "model", stopped / "model")
