"""Promise 9: honest state. A dead worker is never shown as running (lock gone, pid gone or
heartbeat stale means failed, with the reason and the last log lines), and two workers can
never write to the same run directory at once."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tunedeck.core.errors import RunError
from tunedeck.core.runs.rundir import RunDir, RunLock, create_run
from test_reliability_support import (  # noqa: F401 - fixtures
    clean_hooks, cli, cls_setup, fork_call, one_thread, status, train_killed)

pytestmark = pytest.mark.usefixtures("clean_hooks")


def _runs_json(runs_dir, capsys) -> list[dict]:
    capsys.readouterr()
    assert cli("runs", "--json", "--runs-dir", str(runs_dir)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.usefixtures("one_thread")
def test_sigkilled_worker_shows_failed_with_reason(tmp_path, capsys):
    prof = cls_setup(tmp_path, save_every_steps=2)
    run, outcome = train_killed(prof, {"TUNEDECK_TEST_KILL_AT_STEP": "3"})
    assert outcome == ("signal", signal.SIGKILL)
    (run / "worker.log").write_text("step 3 done\nsomething the worker printed last\n")
    assert status(run)["state"] == "running"  # what the dead worker last wrote...
    [r] = _runs_json(run.parent, capsys)
    assert r["state"] == "failed"  # ...is not what anyone is shown
    assert "killed" in r["reason"] and "something the worker printed last" in r["reason"]
    assert r["step"] <= 3  # the heartbeat (every 2 s) may lag the last steps
    assert cli("runs", "--runs-dir", str(run.parent)) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "running" not in out.split("note:")[0]
    # 'stop' does not pretend to stop a dead run.
    assert cli("stop", run.name, "--runs-dir", str(run.parent)) == 0
    assert "not running (failed)" in capsys.readouterr().out


def _fake_running(tmp_path, **status_fields) -> RunDir:
    run = create_run(tmp_path / "runs", "x", "name = 'x'\n")
    import socket

    fields = {"state": "running", "pid": os.getpid(), "host": socket.gethostname(),
              "heartbeat": time.time()}
    fields.update(status_fields)
    run.write_status(**fields)
    return run


def test_no_lock_means_failed(tmp_path):
    run = _fake_running(tmp_path)
    assert run.effective_state()[0] == "failed"


def test_live_lock_and_fresh_heartbeat_means_running(tmp_path):
    run = _fake_running(tmp_path)
    lock = RunLock(run)
    lock.acquire()
    try:
        assert run.effective_state() == ("running", "")
        # A hung worker: the lock is held but the heartbeat stopped long ago.
        state, reason = run.effective_state(now=time.time() + 120)
        assert state == "failed" and "heartbeat stale" in reason
    finally:
        lock.release()
    assert run.effective_state()[0] == "failed"


def test_other_host_is_judged_by_heartbeat(tmp_path):
    run = _fake_running(tmp_path, host="some-other-box")
    assert run.effective_state()[0] == "running"
    assert run.effective_state(now=time.time() + 120)[0] == "failed"


def test_just_created_run_is_starting_then_failed(tmp_path):
    run = create_run(tmp_path / "runs", "x", "name = 'x'\n")
    assert run.effective_state()[0] == "starting"
    assert run.effective_state(now=time.time() + 60)[0] == "failed"


def test_two_workers_never_share_a_run(tmp_path):
    """A second worker (another process, or this one) cannot take a run that is held; it
    writes nothing there."""
    run = create_run(tmp_path / "runs", "x", "name = 'x'\n")
    r, w = os.pipe()

    def holder():
        lock = RunLock(run)
        lock.acquire()
        os.write(w, b"x")
        time.sleep(30)  # killed by the parent

    pid = os.fork()
    if pid == 0:
        try:
            holder()
        finally:
            os._exit(0)
    try:
        assert os.read(r, 1) == b"x"
        before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
        with pytest.raises(RunError, match="already being trained"):
            RunLock(run).acquire(wait_s=0.2)
        from tunedeck.core.runs.worker import run_worker

        with pytest.raises(RunError):
            run_worker(run)
        after = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
        assert after == before
        assert run.worker_alive() is True
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert run.worker_alive() is False
    lock = RunLock(run)
    lock.acquire(wait_s=1)  # the dead holder's lock is gone with it
    lock.release()


def test_same_process_second_lock_is_refused(tmp_path):
    run = create_run(tmp_path / "runs", "x", "name = 'x'\n")
    a = RunLock(run)
    a.acquire()
    try:
        with pytest.raises(RunError):
            RunLock(run).acquire(wait_s=0.1)
    finally:
        a.release()
