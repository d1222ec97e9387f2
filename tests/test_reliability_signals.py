"""Promise 3: signals. SIGTERM/SIGINT: checkpoint at the next step boundary (also when they
arrive during evaluation or data preparation), state stopped; a second signal corrupts nothing;
SIGHUP (the SSH session ending) does not stop training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tunedeck.core.engine import checkpoint as C
from test_reliability_support import (  # noqa: F401 - fixtures
    TUNEDECK, checkpoint_steps, cli_env, clean_hooks, cli, cls_setup, fork_call, of_type, one_thread, resume_fg,
    run_ids, runs_dir, status, train_killed)

pytestmark = pytest.mark.usefixtures("one_thread", "clean_hooks")


@pytest.fixture(scope="module")
def prof(tmp_path_factory):
    return cls_setup(tmp_path_factory.mktemp("signals"), save_every_steps=3, eval_every_steps=4)


def _no_leftovers(run):
    return not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


def test_sigint_mid_training(prof):
    run, outcome = train_killed(prof, {"TUNEDECK_TEST_HOOKS": "step:7=INT"})
    assert outcome == ("exit", 0)
    st = status(run)
    assert st["state"] == "stopped" and "step 7" in st["message"]
    assert max(checkpoint_steps(run)) == 7
    assert of_type(run, "run_stopped")[-1]["step"] == 7
    assert _no_leftovers(run)


def test_sigint_during_evaluation(prof):
    """The signal lands while step 4's evaluation runs: the evaluation stops at its next batch
    (a stop is seen within a batch, not after the whole split), the checkpoint at that same
    boundary is written, then stopped; the resumed run evaluates step 4 first."""
    run, outcome = train_killed(prof, {"TUNEDECK_TEST_HOOKS": "eval@4=INT"})
    assert outcome == ("exit", 0)
    assert status(run)["state"] == "stopped"
    assert [e["step"] for e in of_type(run, "eval") if e["step"] > 0] == []  # 0: baseline
    assert [c["step"] for c in of_type(run, "checkpoint")][-1] == 4
    assert max(checkpoint_steps(run)) == 4
    assert resume_fg(run) == 0
    assert status(run)["state"] == "finished"
    assert [e["step"] for e in of_type(run, "eval") if e["step"] > 0][:2] == [4, 8]


def test_sigterm_during_data_preparation(prof):
    """A detached worker (``python -m tunedeck.core.runs.worker RUN``) signalled while it prepares data:
    stopped, nothing trained, nothing half-written; resume then trains from step 0."""
    from tunedeck.core.runs.lifecycle import load_profile as _load_profile
    from tunedeck.core.profile import dumps
    from tunedeck.core.runs.rundir import create_run
    from tunedeck.core.runs.worker import main as worker_main

    p = _load_profile(str(prof), None)
    run = create_run(runs_dir(prof), p.name, dumps(p))
    outcome = fork_call(lambda: worker_main([str(run.path)]),
                        env={"TUNEDECK_TEST_HOOKS": "prepare=TERM"})
    assert outcome == ("exit", 0)
    st = status(run.path)
    assert st["state"] == "stopped" and "before training" in st["message"]
    assert checkpoint_steps(run.path) == []
    assert not of_type(run.path, "step")
    assert resume_fg(run.path) == 0
    assert status(run.path)["state"] == "finished"


def test_second_signal_during_the_stop_checkpoint(prof):
    """TERM at step 5, then TERM and INT again while that checkpoint is being written: one
    clean stop, one complete loadable checkpoint, no leftovers."""
    hooks = "step:5=TERM;ckpt:model@5=TERM;ckpt:before-rename@5=INT"
    run, outcome = train_killed(prof, {"TUNEDECK_TEST_HOOKS": hooks})
    assert outcome == ("exit", 0)
    assert status(run)["state"] == "stopped"
    assert max(checkpoint_steps(run)) == 5
    assert len(of_type(run, "run_stopped")) == 1
    assert _no_leftovers(run)
    assert C.load_train_state(run / "checkpoints" / "step-5")["step"] == 5


def test_sighup_is_ignored_in_process(prof):
    run, outcome = train_killed(prof, {"TUNEDECK_TEST_HOOKS": "step:2=HUP;step:9=HUP"})
    assert outcome == ("exit", 0)
    assert status(run)["state"] == "finished"


def test_in_process_handlers_are_restored(prof):
    """The foreground worker gives the caller its SIGINT/SIGTERM handlers back."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    from test_reliability_support import train_fg

    train_fg(prof, "training.max_steps=2")
    assert {s: signal.getsignal(s) for s in before} == before


def test_detached_start_survives_sighup_and_never_writes_the_token(tmp_path):
    """`tunedeck start`, then SIGHUP to the worker's whole process group (what an SSH drop
    sends): it finishes. A hub token planted in its environment appears in no artifact."""
    token = "hf_" + "Zq7" * 10
    prof = cls_setup(tmp_path, epochs=3, save_every_steps=4)
    env = dict(os.environ, HF_TOKEN=token, HUGGING_FACE_HUB_TOKEN=token,
               TUNEDECK_TEST_HOOKS="step:3=HUP")
    out = subprocess.run(TUNEDECK + ["start", str(prof)], env=env, capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = runs_dir(prof) / out.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
    deadline = time.time() + 300
    hupped = False
    while time.time() < deadline:
        st = status(run)
        if not hupped and st.get("state") == "running" and st.get("pid"):
            os.killpg(os.getpgid(int(st["pid"])), signal.SIGHUP)
            hupped = True
        if st.get("state") in ("finished", "failed", "stopped", "diverged"):
            break
        time.sleep(0.2)
    assert hupped
    assert status(run)["state"] == "finished", (run / "worker.log").read_text()[-2000:]
    # The token is nowhere in the run directory: profile, events, status, log, checkpoints, model.
    leaks = [str(p) for p in run.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert leaks == []
    listed = json.loads(subprocess.run(
        TUNEDECK + ["runs", "--json", "--runs-dir", str(run.parent)], env=env,
        capture_output=True, text=True, timeout=60).stdout)
    assert [r["state"] for r in listed] == ["finished"]
    assert token not in json.dumps(listed)
    assert set(run_ids(prof)) == {run.name}
