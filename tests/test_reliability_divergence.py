"""Promise 4: divergence. A NaN/Inf loss or gradient stops the run within one step with state
diverged and a message naming the step and the likely cause; no checkpoint with non-finite
weights is ever written."""

from __future__ import annotations

import pytest

from test_reliability_support import (  # noqa: F401 - fixtures
    all_weights_finite, checkpoint_steps, clean_hooks, cli, cls_setup, lm_setup, of_type,
    one_thread, run_ids, runs_dir, status, step_losses)

pytestmark = pytest.mark.usefixtures("one_thread", "clean_hooks")


def _train(prof, *sets):
    before = run_ids(prof)
    argv = ["train", str(prof)]
    for s in sets:
        argv += ["--set", s]
    rc = cli(*argv)
    run = runs_dir(prof) / (run_ids(prof) - before).pop()
    return rc, run


@pytest.mark.parametrize("log_every", [1, 5])
def test_nan_loss_stops_within_one_step(tmp_path, clean_hooks, capsys, log_every):
    """NaN loss at step 4 with a checkpoint due at every step: diverged at step 4 or 5, and
    the checkpoints end at step 3 (the last finite one)."""
    clean_hooks.setenv("TUNEDECK_TEST_HOOKS", "step:4=NAN")
    prof = cls_setup(tmp_path, save_every_steps=1, keep_checkpoints=10, log_every_steps=log_every)
    rc, run = _train(prof)
    assert rc == 1
    st = status(run)
    assert st["state"] == "diverged"
    msg = st["message"]
    assert "step 4" in msg and "NaN" in msg and "learning rate" in msg, msg
    assert "training.learning_rate" in msg
    assert checkpoint_steps(run) == [1, 2, 3]
    assert all_weights_finite(run)
    assert of_type(run, "run_diverged")[-1]["message"] == msg
    assert all(s < 4 for s, _ in step_losses(run))  # no non-finite loss was ever logged
    assert not (run / "model").exists()  # no final model from a diverged run
    assert "diverged" in capsys.readouterr().err


def test_nonfinite_gradient_with_finite_loss(tmp_path, monkeypatch):
    """A gradient that turns NaN while the loss value stays finite is caught too, and named."""
    import torch

    from tunedeck.core.engine.loop import TrainingLoop

    orig = TrainingLoop.forward_loss

    def poisoned(self, idx):
        loss = orig(self, idx)
        if self.state.step + 1 == 3:
            prm = next(self.model.parameters())
            loss = loss + torch.sqrt((prm.sum() * 0).clamp(min=0))  # value +0, gradient NaN
        return loss

    monkeypatch.setattr(TrainingLoop, "forward_loss", poisoned)
    prof = cls_setup(tmp_path, save_every_steps=2, keep_checkpoints=10)
    rc, run = _train(prof)
    st = status(run)
    assert st["state"] == "diverged"
    assert "gradient" in st["message"] and "step 3" in st["message"], st["message"]
    assert checkpoint_steps(run) == [2]
    assert all_weights_finite(run)


def test_huge_learning_rate_on_lm_diverges_cleanly(tmp_path):
    """No hook: lr at the schema's maximum without clipping, fp32. Either the run stays finite
    (then it finishes) or it diverges; in both cases no checkpoint holds non-finite weights and
    a diverged run names its step."""
    prof = lm_setup(tmp_path, learning_rate=1.0, max_grad_norm=0.0, warmup_ratio=0.0,
                    save_every_steps=1, keep_checkpoints=100, epochs=1)
    rc, run = _train(prof)
    st = status(run)
    assert st["state"] in ("diverged", "finished")
    if st["state"] == "diverged":
        assert "step" in st["message"] and "learning rate" in st["message"]
    assert all_weights_finite(run)
