"""Distributed runs on this CPU: torchrun with the gloo backend, 2 processes (docs/distributed.md).

A tiny BERT trains 30 steps in one process and in two: the loss curves agree; a two-process run
is stopped (both ranks checkpoint together), resumed, one rank is killed with kill -9 (the run
ends failed naming the rank), resumed again, and ends with the same weights as the uninterrupted
two-process run; two "machines" (two supervisors, node ranks 0 and 1, a rendezvous on
127.0.0.1) train together.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from tdhelpers import make_classification_rows, tiny_cls_profile
from tunedeck.core.engine.distributed import deal_by_tokens
from tunedeck.core.runs.events import read_all
from tunedeck.core.runs.rundir import RunDir

STEPS = 30
LOSS_TOLERANCE = 1e-5  # float sums in another order (two ranks' gradients averaged): ~1e-7 seen
SLOW_STEPS = {"TUNEDECK_TEST_HOOKS": "step:*=SLEEP0.2"}  # time to act on a live run


def test_deal_by_tokens_splits_a_batch_evenly():
    lengths = np.array([30, 5, 12, 12, 7, 28, 3, 19, 22, 9])
    idx = np.array([6, 1, 4, 9, 2, 3, 7, 8, 5, 0])  # a length-sorted micro-batch, as planned
    shares = deal_by_tokens(idx, lengths, 2)
    assert sorted(np.concatenate(shares).tolist()) == sorted(idx.tolist())
    tokens = [int(lengths[s].sum()) for s in shares]
    assert abs(tokens[0] - tokens[1]) <= lengths.max()
    for s in shares:  # each share keeps the batch's order
        assert [int(np.where(idx == i)[0][0]) for i in s] == sorted(
            int(np.where(idx == i)[0][0]) for i in s)
    assert [len(s) for s in deal_by_tokens(idx[:1], lengths, 2)] == [1, 0]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("dist")
    data = d / "reviews.csv"
    with data.open("w", encoding="utf-8") as f:
        f.write("text,label\n")
        for text, label in make_classification_rows(240):
            f.write(f"{text},{label}\n")
    # dropout 0: one process and two draw different dropout masks; everything else is equal.
    prof = tiny_cls_profile(d, data, max_steps=STEPS, log_every_steps=1, dropout=0.0,
                            save_every_steps=10, learning_rate=1e-2)
    base = prof.read_text(encoding="utf-8")
    (d / "one.toml").write_text(base + "\n[distributed]\nprocesses = 1\n", encoding="utf-8")
    (d / "two.toml").write_text(base + "\n[distributed]\nprocesses = 2\n",
                                encoding="utf-8")
    return d


@contextlib.contextmanager
def environ(**values: str):
    """The environment the detached supervisor (and its ranks) inherit from this process."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def start(profile: Path, *sets: str, **env: str) -> RunDir:
    """`tunedeck start` in this process (torch is imported once): check, run dir, supervisor."""
    from tunedeck.core.runs.lifecycle import profile_for_new_run, start_run

    # Its own token cache: the module-scoped runs start before conftest's per-test cache is set.
    with environ(TUNEDECK_CACHE_DIR=str(profile.parent / "token-cache"), **env):
        return RunDir(start_run(profile_for_new_run(profile, list(sets))).run_dir)


def resume(run: RunDir, **env: str) -> None:
    from tunedeck.core.runs.lifecycle import resume_run

    with environ(TUNEDECK_CACHE_DIR=str(run.path.parents[1] / "token-cache"), **env):
        resume_run(run)


def wait_until(pred, timeout: float = 240.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


def wait_ended(run: RunDir) -> str:
    """The end state, once the supervisor has let go of the run (it records the outcome)."""
    return wait_until(lambda: (lambda s: s if s not in ("starting", "running")
                               and run.worker_alive() is False else None)(run.effective_state()[0]))


def losses(run: RunDir) -> dict[int, float]:
    return {e.data["step"]: e.data["loss"] for e in read_all(run.events_path) if e.type == "step"}


def weights(run: RunDir) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run.model_dir / "model.safetensors"))


@pytest.fixture(scope="module")
def two_process_run(work) -> RunDir:
    run = start(work / "two.toml")
    assert wait_ended(run) == "finished", run.read_status()
    return run


@pytest.mark.slow
def test_two_processes_follow_the_single_process_loss_curve(work, two_process_run, capsys,
                                                            monkeypatch):
    from tunedeck.core.cli import main

    monkeypatch.setenv("TUNEDECK_CACHE_DIR", str(work / "token-cache"))
    capsys.readouterr()
    rc = main(["train", str(work / "one.toml")])  # one process, in this one
    out = capsys.readouterr()
    assert rc == 0, out.out[-1500:] + out.err[-1500:]
    one = losses(RunDir(Path(out.out.strip().splitlines()[-1])))
    two = losses(two_process_run)
    assert sorted(one) == sorted(two) == list(range(1, STEPS + 1))  # same optimizer steps
    diff = max(abs(one[s] - two[s]) for s in one)
    print(f"max abs loss difference over {STEPS} steps, 1 vs 2 processes: {diff:.3g}")
    assert diff < LOSS_TOLERANCE
    assert one[STEPS] < one[1] - 0.01  # it learned something: the curve is not flat
    st = two_process_run.read_status()
    assert st["distributed"]["processes"] == 2 and st["total_steps"] == STEPS


@pytest.mark.slow
def test_stop_kill_and_resume_reach_the_uninterrupted_weights(work, two_process_run):
    from tunedeck.core.runs.lifecycle import stop_run

    run = start(work / "two.toml", **SLOW_STEPS)
    wait_until(lambda: max(losses(run), default=0) >= 5)  # the event log: status lags ~2 s
    stop_run(run)  # what `tunedeck stop` and the TUI call
    assert wait_ended(run) == "stopped"
    ckpt = max((run.checkpoints_dir).glob("step-*"), key=lambda p: int(p.name[5:]))
    manifest = json.loads((ckpt / "COMPLETE").read_text())
    assert "rng-rank1.pt" in manifest["files"]  # both ranks' parts, then the marker
    for r in (0, 1):
        assert json.loads((run.path / ".dist" / f"rank-{r}.exit").read_text())["state"] == "stopped"

    resume(run, **SLOW_STEPS)
    wait_until(lambda: max(losses(run), default=0) >= 15
               and (run.path / ".dist" / "rank-1.pid").exists())
    pid = json.loads((run.path / ".dist" / "rank-1.pid").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: "rank 1" in run.read_status().get("message", ""), timeout=60)
    took = time.monotonic() - killed
    state, _ = run.effective_state()
    print(f"kill -9 of rank 1 -> failed naming it in {took:.2f} s")
    assert state == "failed" and "SIGKILL" in run.read_status()["message"]

    resume(run)
    assert wait_ended(run) == "finished", run.read_status()
    a, b = weights(run), weights(two_process_run)
    assert all(bool((a[k] == b[k]).all()) for k in b), "resumed weights differ"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_machines_on_one_host_train_together(work, two_process_run):
    text = (work / "one.toml").read_text(encoding="utf-8").replace(
        "processes = 1\n", f"processes = 1\nnodes = 2\nmain_port = {free_port()}\n")
    prof = work / "nodes.toml"
    prof.write_text(text, encoding="utf-8")
    # `tunedeck start PROFILE --node-rank K` on each "machine" (--set distributed.node_rank=K).
    main = start(prof, "distributed.node_rank=0")
    other = start(prof, "distributed.node_rank=1")
    assert wait_ended(main) == "finished", main.read_status()
    assert wait_ended(other) == "finished", other.read_status()
    assert "machine 1 of 2" in other.read_status()["message"]
    assert not other.events_path.exists() or not losses(other)  # rank 1 writes no events
    # World size 2 either way: the same loss curve as two processes on one machine.
    two, both = losses(two_process_run), losses(main)
    assert max(abs(two[s] - both[s]) for s in two) < LOSS_TOLERANCE


def test_start_refuses_a_bad_node_rank_before_making_a_run(work, capsys):
    from tunedeck.core.cli import main

    capsys.readouterr()
    runs_before = set((work / "runs").glob("*")) if (work / "runs").is_dir() else set()
    assert main(["start", str(work / "two.toml"), "--node-rank", "1"]) == 2
    assert "node_rank 1 needs nodes > 1" in capsys.readouterr().err
    assert (set((work / "runs").glob("*")) if (work / "runs").is_dir() else set()) == runs_before
    # strategy = "fsdp" is trained (tests/test_fsdp.py), no longer refused by the pre-flight.


@pytest.mark.slow
def test_resume_with_another_process_count_warns_and_finishes(work):
    from tunedeck.core.runs.lifecycle import stop_run

    run = start(work / "two.toml", **SLOW_STEPS)
    wait_until(lambda: max(losses(run), default=0) >= 3)
    stop_run(run)
    assert wait_ended(run) == "stopped"
    # processes = "auto" on a machine with another GPU count does this to a frozen profile.
    frozen = run.profile_path.read_text(encoding="utf-8")
    run.profile_path.write_text(frozen.replace("processes = 2", "processes = 3"), encoding="utf-8")
    resume(run)
    assert wait_ended(run) == "finished", run.read_status()
    warnings = [e.data["message"] for e in read_all(run.events_path)
                if e.type == "log" and e.data.get("level") == "warning"]
    assert any("written by 2 process(es), this run has 3" in w for w in warnings), warnings
    assert run.read_status()["distributed"]["processes"] == 3
    assert sorted(losses(run))[-1] == STEPS  # the same number of optimizer steps
