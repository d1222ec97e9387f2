"""training.load_best_model_at_end: model/ and the test metrics use the best validation
evaluation's weights (its checkpoint), not the last step's; off, the last step's."""

from __future__ import annotations

import json

import pytest

from test_reliability_support import (  # noqa: F401 - fixtures
    checkpoint_steps, clean_hooks, cls_setup, of_type, one_thread, same_weights, train_fg)

pytestmark = pytest.mark.usefixtures("one_thread", "clean_hooks")


@pytest.fixture
def validation_gets_worse(monkeypatch):
    """The validation metric falls with every evaluation after the baseline: the first real
    evaluation is the best, deterministically (the model itself trains as usual)."""
    from tunedeck.core.engine.loop import TrainingLoop

    real = TrainingLoop.evaluate

    def evaluate(self, split="validation"):
        m = real(self, split)
        if m is not None and split == "validation" and self.state.step > 0:
            m["f1_macro"] = 1.0 / (1 + self.state.step)
        return m
    monkeypatch.setattr(TrainingLoop, "evaluate", evaluate)


@pytest.mark.parametrize("load_best", [True, False])
def test_model_dir_holds_the_best_evaluation_when_asked(tmp_path, validation_gets_worse, load_best):
    prof = cls_setup(tmp_path, epochs=2, eval_every_steps=3, keep_checkpoints=1)
    run = train_fg(prof, f"training.load_best_model_at_end={str(load_best).lower()}")
    metrics = json.loads((run / "metrics.json").read_text())
    best, last = metrics["best"]["step"], metrics["steps"]
    assert best == 3 and last > best
    assert best in checkpoint_steps(run)  # rotation keeps the best checkpoint
    ckpt = run / "checkpoints" / f"step-{best}"
    if load_best:
        assert metrics["weights_step"] == best
        assert same_weights(run / "model", ckpt)
        assert any("best validation weights: step 3" in e["message"] for e in of_type(run, "log"))
    else:
        assert metrics["weights_step"] == last
        assert not same_weights(run / "model", ckpt)


def test_without_a_checkpoint_of_the_best_step_the_final_weights_stay(tmp_path,
                                                                      validation_gets_worse):
    prof = cls_setup(tmp_path, epochs=2, eval_every_steps=3, save_every_steps=5)
    run = train_fg(prof, "training.load_best_model_at_end=true")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best"]["step"] == 3 and metrics["weights_step"] == metrics["steps"]
    assert any("has no checkpoint" in e["message"] for e in of_type(run, "log"))
