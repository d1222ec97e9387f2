"""Promise 1: exact resume. A worker SIGKILLed at step N and resumed ends exactly like a run
that was never interrupted: same steps, same per-step loss after the resume point, same data
position, bit-identical final weights (CPU, fp32)."""

from __future__ import annotations

import json
import signal

import pytest

from test_reliability_support import (  # noqa: F401 - fixtures
    checkpoint_steps, clean_hooks, cls_setup, fork_call, lm_setup, of_type, one_thread,
    resume_fg, same_weights, status, step_losses, train_fg, train_killed)

pytestmark = pytest.mark.usefixtures("one_thread", "clean_hooks")

_VOLATILE = {"train_time_s", "history"}  # wall time, and log lines written before the kill


def _trainer_state(ck):
    d = json.loads((ck / "trainer_state.json").read_text())
    return {k: v for k, v in d.items() if k not in _VOLATILE}


def assert_same_run(base, resumed, kill_step):
    import torch

    from tunedeck.core.engine.checkpoint import list_complete

    sb, sr = status(base), status(resumed)
    assert sr["state"] == "finished", sr
    assert sr["step"] == sb["step"] == sb["total_steps"]
    resumes = of_type(resumed, "run_resumed")
    assert len(resumes) == 1
    start = resumes[0]["step"]
    assert 0 < start <= kill_step
    # The loss of every step after the resume point, bit for bit.
    base_loss = dict(step_losses(base))
    after = [(s, loss) for s, loss in step_losses(resumed)[-(sb["step"] - start):]]
    assert [s for s, _ in after] == list(range(start + 1, sb["step"] + 1))
    assert after == [(s, base_loss[s]) for s, _ in after]
    # Data position, accumulators, best-metric tracking and optimizer state at the same step.
    ck_b = {p.name: p for p in list_complete(base / "checkpoints")}
    ck_r = {p.name: p for p in list_complete(resumed / "checkpoints")}
    common = sorted(set(ck_b) & set(ck_r))
    assert common, (ck_b, ck_r)
    for name in common:
        assert _trainer_state(ck_b[name]) == _trainer_state(ck_r[name]), name
        ob = torch.load(ck_b[name] / "optimizer.pt", weights_only=True)
        orr = torch.load(ck_r[name] / "optimizer.pt", weights_only=True)
        for k, v in ob["state"].items():
            for kk, t in v.items():
                assert torch.equal(t, orr["state"][k][kk]), (name, k, kk)
    # Final weights, and the final evaluation.
    assert same_weights(base / "model", resumed / "model")
    mb = json.loads((base / "metrics.json").read_text())
    mr = json.loads((resumed / "metrics.json").read_text())
    for k in ("eval_loss", "accuracy", "perplexity", "steps", "tokens_seen"):
        assert mb.get(k) == mr.get(k), k


@pytest.fixture(scope="module")
def cls_profile(tmp_path_factory):
    # 96 training rows, 2 epochs of ~6 token-budget micro-batches; checkpoints every 3 steps.
    return cls_setup(tmp_path_factory.mktemp("resume-cls"), save_every_steps=3, keep_checkpoints=3,
                     eval_every_steps=4)


@pytest.fixture(scope="module")
def cls_baseline(cls_profile):
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_fg(cls_profile)
    finally:
        torch.set_num_threads(n)


@pytest.mark.parametrize("kill_step", [4, 11], ids=["mid-epoch-0", "epoch-1"])
def test_sigkill_then_resume_is_exact(cls_profile, cls_baseline, kill_step):
    total = status(cls_baseline)["total_steps"]
    assert kill_step < total
    run, outcome = train_killed(cls_profile, {"TUNEDECK_TEST_KILL_AT_STEP": str(kill_step)})
    assert outcome == ("signal", signal.SIGKILL)
    assert max(checkpoint_steps(run)) <= kill_step
    assert status(run)["state"] == "running"  # it never got to say anything: killed
    assert resume_fg(run) == 0
    assert_same_run(cls_baseline, run, kill_step)


def test_kill_mid_checkpoint_then_resume_is_exact(cls_profile, cls_baseline):
    """Killed while writing the step-6 checkpoint: resume cleans the leftover, restarts from
    step 3 and still ends bit-identical."""
    run, outcome = train_killed(cls_profile, {"TUNEDECK_TEST_HOOKS": "ckpt:optimizer@6=KILL"})
    assert outcome == ("signal", signal.SIGKILL)
    assert checkpoint_steps(run) == [3]
    assert any(p.name.startswith(".tmp-step-6") for p in (run / "checkpoints").iterdir())
    assert resume_fg(run) == 0
    logs = [d["message"] for d in of_type(run, "log")]
    assert any("leftovers" in m and ".tmp-step-6" in m for m in logs), logs
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert_same_run(cls_baseline, run, 6)


def test_lm_with_accumulation_resumes_exactly(tmp_path):
    """Causal LM, 2 micro-batches per step, loss logged every 2 steps (so the pending loss
    accumulators are part of the checkpoint), killed in the second epoch."""
    prof = lm_setup(tmp_path, gradient_accumulation_steps=2, log_every_steps=2,
                    save_every_steps=3, batch_size=8)
    base = train_fg(prof)
    total = status(base)["total_steps"]
    kill = total - 2
    run, outcome = train_killed(prof, {"TUNEDECK_TEST_KILL_AT_STEP": str(kill)})
    assert outcome == ("signal", signal.SIGKILL)
    ck = max(checkpoint_steps(run))
    assert ck % 2 == 1  # a checkpoint between two log lines: pending accumulators restored
    assert resume_fg(run) == 0
    assert status(run)["step"] == total
    # Logged every 2 steps: compare the log lines after the resume point.
    base_loss = dict(step_losses(base))
    after = [x for x in step_losses(run) if x[0] > ck]
    assert after and after == [(s, base_loss[s]) for s, _ in after]
    assert same_weights(base / "model", run / "model")


def test_resume_without_checkpoint_starts_over_identically(cls_profile, cls_baseline):
    """Killed before the first checkpoint: resume starts from step 0 and still matches."""
    run, outcome = train_killed(cls_profile, {"TUNEDECK_TEST_KILL_AT_STEP": "2"})
    assert outcome == ("signal", signal.SIGKILL)
    assert checkpoint_steps(run) == []
    assert resume_fg(run) == 0
    assert status(run)["state"] == "finished"
    assert same_weights(cls_baseline / "model", run / "model")


def test_stopped_run_resumes_exactly(cls_profile, cls_baseline):
    """SIGTERM at step 5 (a boundary without a periodic save): checkpoint, stopped, then exact."""
    run, outcome = train_killed(cls_profile, {"TUNEDECK_TEST_HOOKS": "step:5=TERM"})
    assert outcome == ("exit", 0)
    assert status(run)["state"] == "stopped"
    assert max(checkpoint_steps(run)) == 5
    assert resume_fg(run) == 0
    assert_same_run(cls_baseline, run, 5)


def test_resume_refuses_a_live_run(cls_profile, capsys):
    """While a worker holds the run, 'resume' is refused (exit 2), and the run is untouched."""
    from tunedeck.core.runs.rundir import RunDir, RunLock

    run, _ = train_killed(cls_profile, {"TUNEDECK_TEST_KILL_AT_STEP": "1"})
    lock = RunLock(RunDir(run))
    lock.acquire()  # as a live worker would
    try:
        RunDir(run).write_status(state="running")
        before = (run / "events.jsonl").read_bytes()
        assert resume_fg(run) == 2
        assert "stop it first" in capsys.readouterr().err
        assert (run / "events.jsonl").read_bytes() == before
    finally:
        lock.release()
