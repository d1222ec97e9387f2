"""Promise 5: out of memory. A CUDA OOM in a training step retries it with half the per-device
micro-batch and twice the accumulation (same effective batch), records that in the run (status,
an event, the checkpoints: resume keeps it) and gives up with a clear message at one row; an
OOM in evaluation lowers only the evaluation batch. The OOM is injected on CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tunedeck.core.engine.loop import TrainingLoop
from test_reliability_support import (  # noqa: F401 - fixtures
    checkpoint_steps, clean_hooks, cli, cls_setup, events, of_type, one_thread, resume_fg, run_ids,
    runs_dir, status, step_losses, train_fg)

pytestmark = pytest.mark.usefixtures("one_thread", "clean_hooks")


def _oom_above(monkeypatch, max_rows: int, calls: list[int] | None = None):
    """Make a training forward raise CUDA's OOM error for micro-batches over ``max_rows``."""
    import torch

    orig = TrainingLoop.forward_loss

    def forward_loss(self, idx):
        if calls is not None:
            calls.append(len(idx))
        if len(idx) > max_rows:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return orig(self, idx)

    monkeypatch.setattr(TrainingLoop, "forward_loss", forward_loss)


@pytest.fixture(scope="module")
def prof(tmp_path_factory):
    # No dropout: splitting a micro-batch must change nothing but float summation order.
    return cls_setup(tmp_path_factory.mktemp("oom"), batching="rows", batch_size=16,
                     save_every_steps=4, keep_checkpoints=10, dropout=0.0)


@pytest.fixture(scope="module")
def baseline(prof):
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_fg(prof)
    finally:
        torch.set_num_threads(n)


def test_oom_halves_micro_batch_keeps_effective_batch(prof, baseline, monkeypatch):
    calls: list[int] = []
    _oom_above(monkeypatch, 5, calls)
    run = train_fg(prof)
    st = status(run)
    assert st["state"] == "finished"
    # 16 rows -> 8 -> 4: two back-offs, recorded everywhere.
    assert st["batch_scale"] == 4 and st["micro_batch_rows"] == 4
    assert st["gradient_accumulation"] == 4
    backoffs = [d for d in of_type(run, "log") if d.get("kind") == "oom_backoff"]
    assert [d["batch_scale"] for d in backoffs] == [2, 4]
    assert "same effective batch" in backoffs[0]["message"]
    assert backoffs[0]["step"] == 1
    ck = run / "checkpoints" / f"step-{max(checkpoint_steps(run))}"
    assert json.loads((ck / "trainer_state.json").read_text())["batch_scale"] == 4
    assert max(calls[-20:]) <= 4
    # Same effective batch: the same steps, and the same losses up to float summation order.
    got, want = step_losses(run), step_losses(baseline)
    assert [s for s, _ in got] == [s for s, _ in want]
    np.testing.assert_allclose([x for _, x in got], [x for _, x in want], rtol=1e-4, atol=1e-5)


def test_resume_keeps_the_lowered_batch(prof, monkeypatch, clean_hooks):
    calls: list[int] = []
    _oom_above(monkeypatch, 10, calls)
    clean_hooks.setenv("TUNEDECK_TEST_HOOKS", "step:6=TERM")
    run = train_fg(prof)
    assert status(run)["state"] == "stopped"
    clean_hooks.delenv("TUNEDECK_TEST_HOOKS")
    monkeypatch.undo()  # plenty of memory now: the resumed run must still use the lowered batch
    import tunedeck.core.engine.loop as L

    calls.clear()
    orig = L.TrainingLoop.forward_loss
    monkeypatch.setattr(L.TrainingLoop, "forward_loss", lambda self, idx: calls.append(len(idx)) or orig(self, idx))
    assert resume_fg(run) == 0
    assert status(run)["state"] == "finished"
    assert calls and max(calls) == 8
    evs = events(run)
    resumed_at = max(i for i, e in enumerate(evs) if e["type"] == "run_resumed")
    assert [e for e in evs[:resumed_at] if e["data"].get("kind") == "oom_backoff"]
    assert not [e for e in evs[resumed_at:] if e["data"].get("kind") == "oom_backoff"]


def test_oom_at_one_row_gives_up_clearly(prof, monkeypatch, capsys):
    _oom_above(monkeypatch, 0)
    run = train_fg(prof)
    st = status(run)
    assert st["state"] == "failed"
    msg = st["message"]
    assert "out of device memory" in msg and "one row" in msg and "max_length" in msg, msg
    assert "Traceback" not in msg
    assert of_type(run, "run_failed")[-1]["error"] == msg
    assert [d["batch_scale"] for d in of_type(run, "log") if d.get("kind") == "oom_backoff"] == [2, 4, 8, 16]
    assert checkpoint_steps(run) == []
    assert msg in capsys.readouterr().err


def test_oom_in_evaluation_lowers_only_eval_batch(tmp_path, monkeypatch):
    import torch

    prof = cls_setup(tmp_path, eval_every_steps=3, save_every_steps=3, eval_batch_size=12)
    orig = TrainingLoop.eval_forward
    sizes: list[int] = []

    def eval_forward(self, batch):
        n = int(batch["input_ids"].shape[0])
        sizes.append(n)
        if n > 3:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return orig(self, batch)

    monkeypatch.setattr(TrainingLoop, "eval_forward", eval_forward)
    run = train_fg(prof)
    st = status(run)
    assert st["state"] == "finished"
    assert st["eval_batch_size"] == 3 and "batch_scale" not in st
    logs = [d for d in of_type(run, "log") if d.get("kind") == "oom_eval_backoff"]
    assert [d["eval_batch_size"] for d in logs] == [6, 3]
    assert "training batch unchanged" in logs[0]["message"]
    assert of_type(run, "eval") and json.loads((run / "metrics.json").read_text())["accuracy"] >= 0
    ck = run / "checkpoints" / f"step-{max(checkpoint_steps(run))}"
    state = json.loads((ck / "trainer_state.json").read_text())
    assert state["eval_batch_size"] == 3 and state["batch_scale"] == 1


def test_oom_in_evaluation_at_one_row_fails_clearly(tmp_path, monkeypatch):
    import torch

    prof = cls_setup(tmp_path, eval_every_steps=2, eval_batch_size=2)

    def eval_forward(self, batch):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(TrainingLoop, "eval_forward", eval_forward)
    run = train_fg(prof)
    st = status(run)
    assert st["state"] == "failed" and "evaluating" in st["message"] and "one row" in st["message"]
