"""A stop is seen within a second or two in every phase of a worker: data preparation,
tokenization, model load, evaluation (step 0 and periodic) and training. Each test holds a real
forked worker in one phase with a fault hook (engine/faults.py: SLEEP, and a mark file saying
the worker got there), stops it the way the CLI and the TUI do (``lifecycle.stop_run``: a
control file and SIGTERM), or with the control file alone, and times how long it takes to end.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from test_reliability_support import (  # noqa: F401 - fixtures
    checkpoint_steps, clean_hooks, cls_setup, of_type, one_thread, resume_fg, status)

pytestmark = pytest.mark.usefixtures("one_thread", "clean_hooks")

STOP_WITHIN_S = 2.0
# phase: (training settings, hooks, the mark that says the worker is in the phase)
PHASES = {
    "prepare": ({}, "prepare=SLEEP30", "prepare"),
    "tokenize": ({}, "tokenize=SLEEP30", "tokenize"),
    "load": ({}, "load=SLEEP30", "load"),
    "eval-start": ({"eval_at_start": True, "eval_batch_size": 1}, "eval-batch=SLEEP0.3",
                   "eval-batch"),
    "eval-periodic": ({"eval_at_start": False, "eval_every_steps": 2, "eval_batch_size": 1},
                      "eval-batch@2=SLEEP0.3", "eval-batch"),
    "training": ({"eval_at_start": False}, "step:*=SLEEP0.3;step:2=SLEEP0.3", "step_2"),
}
BEFORE_TRAINING = {"prepare", "tokenize", "load", "eval-start"}


def _start_worker(tmp: Path, phase: str) -> tuple[Path, int]:
    from tunedeck.core.runs.lifecycle import load_profile as _load_profile
    from tunedeck.core.profile import dumps
    from tunedeck.core.runs.rundir import create_run
    from tunedeck.core.runs.worker import main as worker_main

    training, hooks, _ = PHASES[phase]
    prof = cls_setup(tmp, save_every_steps=0, **training)
    p = _load_profile(str(prof), None)
    run = create_run(tmp / "runs", p.name, dumps(p))
    env = {"TUNEDECK_TEST_HOOKS": hooks, "TUNEDECK_TEST_MARKS": str(tmp / "marks"),
           "TUNEDECK_CACHE_DIR": str(tmp / "cache")}  # a cold cache: tokenization runs
    pid = os.fork()
    if pid == 0:  # the worker, as `python -m tunedeck.core.runs.worker RUN` runs it
        code = 70
        try:
            os.environ.update(env)
            code = worker_main([str(run.path)])
        finally:
            os._exit(code)
    return run.path, pid


def _wait_for(path: Path, pid: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        done, _ = os.waitpid(pid, os.WNOHANG)
        assert not done, "the worker ended before it reached the phase"
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the worker never reached {path.name}")
        time.sleep(0.02)


def _seconds_to_exit(pid: int, timeout: float = 30.0) -> float:
    t0 = time.monotonic()
    while True:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, st
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the worker did not stop within {timeout}s")
        time.sleep(0.01)


def _stop(run_path: Path, how: str) -> None:
    from tunedeck.core.runs.rundir import RunDir

    run = RunDir(run_path)
    if how == "stop_run":
        from tunedeck.core.runs.lifecycle import stop_run

        stop_run(run)
    else:
        run.request("stop")


@pytest.mark.parametrize("how", ["stop_run", "request-file"])
@pytest.mark.parametrize("phase", list(PHASES))
def test_stop_is_seen_in_every_phase(tmp_path, phase, how):
    run, pid = _start_worker(tmp_path, phase)
    _wait_for(tmp_path / "marks" / PHASES[phase][2], pid)
    time.sleep(0.1)  # well inside the phase
    _stop(run, how)
    took = _seconds_to_exit(pid)
    st = status(run)
    print(f"stop during {phase} ({how}): worker gone after {took:.2f}s")
    assert took < STOP_WITHIN_S, f"{phase}: {took:.2f}s"
    assert st["state"] == "stopped", st
    assert not (run / "control").is_dir() or not os.listdir(run / "control")
    if phase in BEFORE_TRAINING:
        assert "before training started" in st["message"] and "step 0" in st["message"], st
        assert checkpoint_steps(run) == [] and not of_type(run, "step")
    else:
        assert checkpoint_steps(run) == [2]  # the step boundary it stopped at
    assert not list((tmp_path / "cache" / "tokenized").glob(".tmp-*")) if (
        tmp_path / "cache" / "tokenized").is_dir() else True


def test_stopped_evaluation_is_redone_on_resume(tmp_path, monkeypatch):
    """A stop in step 2's evaluation abandons it; the checkpoint at step 2 resumes with that
    evaluation, so the run's evaluations are the same as an uninterrupted run's."""
    run, pid = _start_worker(tmp_path, "eval-periodic")
    _wait_for(tmp_path / "marks" / "eval-batch", pid)
    _stop(run, "request-file")
    _seconds_to_exit(pid)
    assert [e["step"] for e in of_type(run, "eval")] == []
    monkeypatch.setenv("TUNEDECK_CACHE_DIR", str(tmp_path / "cache"))
    assert resume_fg(run) == 0
    assert status(run)["state"] == "finished"
    evals = [e["step"] for e in of_type(run, "eval") if e["split"] == "validation"]
    assert evals[:2] == [2, 4], evals
