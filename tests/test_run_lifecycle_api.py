"""core/runs/lifecycle.py called directly: typed results, the stop that signals, delete's
refusals, wait_for_worker's failures, and the CLI's --json mode that the TUI parses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tdhelpers import tiny_cls_profile
from tunedeck.core.errors import RunError
from tunedeck.core.runs import lifecycle
from tunedeck.core.runs.lifecycle import (DeleteResult, ResumeResult, StartResult, StopResult,
                                          WorkerStartError, delete_run, stop_run, wait_for_worker)
from tunedeck.core.runs.rundir import RunDir, RunLock, create_run

PROFILE = 'schema_version = 1\nname = "t"\n[task]\ntype = "classification"\n'

# A stand-in worker: takes run.lock, says it runs, and on SIGTERM writes "stopped" and exits
# (what the real worker does at its next check).
WORKER = textwrap.dedent("""
    import fcntl, json, os, signal, socket, sys, time
    run = sys.argv[1]
    fd = os.open(os.path.join(run, "run.lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    def status(state):
        tmp = os.path.join(run, "status.tmp")
        with open(tmp, "w") as f:
            json.dump({"state": state, "pid": os.getpid(), "host": socket.gethostname(),
                       "heartbeat": time.time(), "step": 7, "total_steps": 100}, f)
        os.replace(tmp, os.path.join(run, "status.json"))
    def on_term(*_):
        open(os.path.join(run, "got-sigterm"), "w").close()
        status("stopped")
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    status("running")
    while True:
        time.sleep(0.05)
""")


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    return create_run(tmp_path / "runs", "t", PROFILE, "classification")


@pytest.fixture
def live_worker(run: RunDir):
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(run.path)], start_new_session=True)
    deadline = time.time() + 30
    while run.read_status().get("state") != "running" and time.time() < deadline:
        time.sleep(0.05)
    yield proc
    proc.kill()
    proc.wait()


def test_stop_files_a_request_and_signals_the_worker(run, live_worker):
    res = stop_run(run, wait_s=20)
    assert isinstance(res, StopResult)
    assert res.requested and res.signalled and not res.still_active
    assert res.state == "stopped" and res.step == 7 and res.total_steps == 100
    assert (run.path / "got-sigterm").exists()  # seen at once, not at a step boundary
    assert [p.read_text() for p in run.control_dir.iterdir()] == ["stop"]


def test_stop_without_wait_returns_at_once(run, live_worker):
    res = stop_run(run)
    assert res.requested and res.signalled
    assert list(run.control_dir.iterdir())


def test_stop_leaves_a_run_that_is_not_running_alone(run):
    run.write_status(state="finished", step=100, total_steps=100)
    res = stop_run(run)
    assert (res.requested, res.signalled, res.state) == (False, False, "finished")
    assert not run.control_dir.exists()


def test_delete_refuses_a_live_run_and_removes_an_ended_one(run, live_worker, tmp_path):
    with pytest.raises(RunError, match="stop it first"):
        delete_run(run, tmp_path / "runs")
    assert run.path.is_dir()
    live_worker.kill()
    live_worker.wait()
    run.write_status(state="stopped")
    res = delete_run(run, tmp_path / "runs")
    assert res == DeleteResult(run.id, run.path)
    assert list((tmp_path / "runs").iterdir()) == []  # nothing half-removed left behind


def test_delete_refuses_a_run_outside_the_runs_dir_or_a_symlink(run, tmp_path):
    run.write_status(state="finished")
    with pytest.raises(RunError, match="not directly inside"):
        delete_run(run, tmp_path / "elsewhere")
    link = tmp_path / "runs" / "link"
    link.symlink_to(run.path)
    with pytest.raises(RunError, match="not directly inside"):
        delete_run(RunDir(link), tmp_path / "runs")
    assert run.path.is_dir()


# --- wait_for_worker: success only when the worker holds run.lock -----------------------------

def test_wait_for_worker_fails_when_the_worker_exits_before_the_lock(run):
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(WorkerStartError) as e:
        wait_for_worker(run, child.pid, timeout=30)
    assert "code 3" in str(e.value) and str(run.log_path) in str(e.value)
    assert e.value.exit_code == 1


def test_wait_for_worker_fails_for_a_worker_gone_that_is_not_our_child(run):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped here: waitpid in wait_for_worker raises ChildProcessError
    with pytest.raises(WorkerStartError, match="exited at once before taking"):
        wait_for_worker(run, child.pid, timeout=30)


def test_wait_for_worker_times_out_when_the_lock_is_never_taken(run):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(WorkerStartError, match=r"did not take the run's lock within 0.5 s"):
            wait_for_worker(run, child.pid, timeout=0.5)
    finally:
        child.kill()
        child.wait()


def test_wait_for_worker_returns_once_the_lock_is_held(run, live_worker):
    wait_for_worker(run, live_worker.pid, timeout=30)


# --- start and resume: typed results --------------------------------------------------------

@pytest.fixture
def launch_holding_lock(monkeypatch):
    """The launch replaced by one that takes run.lock in this process, as a worker would."""
    held: list[RunLock] = []

    def launch(run: RunDir, **kw) -> int:
        lock = RunLock(run)
        lock.acquire()
        held.append(lock)
        run.write_status(pid=os.getpid(), host=socket.gethostname())
        return 4242

    monkeypatch.setattr(lifecycle, "start_detached", launch)
    yield held
    for lock in held:
        lock.release()


def test_start_run_returns_the_run_and_pid(tmp_path, cls_csv, launch_holding_lock):
    prof = lifecycle.profile_for_new_run(tiny_cls_profile(tmp_path, cls_csv))
    res = lifecycle.start_run(prof)
    assert isinstance(res, StartResult) and res.pid == 4242
    assert res.run_dir.is_dir() and res.run_dir.name == res.run_id
    assert (res.run_dir / "profile.toml").is_file()


def test_resume_run_says_where_it_starts_from(tmp_path, cls_csv, launch_holding_lock):
    prof = lifecycle.profile_for_new_run(tiny_cls_profile(tmp_path, cls_csv))
    run = lifecycle.new_run_dir(prof)
    run.write_status(state="failed", message="killed")
    res = lifecycle.resume_run(run)
    assert isinstance(res, ResumeResult)
    assert (res.run_id, res.pid, res.from_checkpoint) == (run.id, 4242, None)
    assert res.to_json() == {"run_dir": str(run.path), "run_id": run.id, "pid": 4242,
                             "from_checkpoint": None}
    with pytest.raises(RunError, match="is starting; stop it first"):  # its "worker" holds the lock
        lifecycle.resume_run(run)


def test_resume_run_refuses_a_finished_run(run):
    run.write_status(state="finished")
    with pytest.raises(RunError, match="already finished"):
        lifecycle.resume_run(run)


# --- the --json mode the TUI parses ---------------------------------------------------------

def test_start_json_prints_one_object(tmp_path, cls_csv, capsys, launch_holding_lock):
    from tunedeck.core.cli import main

    prof = tiny_cls_profile(tmp_path, cls_csv)
    assert main(["start", "--json", str(prof), "--runs-dir", str(tmp_path / "r")]) == 0
    out = json.loads(capsys.readouterr().out)  # the whole of stdout is one object
    assert out["pid"] == 4242 and Path(out["run_dir"]).parent == (tmp_path / "r").resolve()


def test_resume_json_error_is_a_json_object_and_exit_2(tmp_path, capsys):
    from tunedeck.core.cli import main

    (tmp_path / "runs").mkdir()
    assert main(["resume", "--json", "nope", "--runs-dir", str(tmp_path / "runs")]) == 2
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["kind"] == "user" and "no run 'nope'" in out["error"]
    assert captured.err == ""


def test_the_tui_reads_the_json_not_the_last_line(tmp_path):
    from tunedeck.tui.services import _json_result, _run_dir_of

    def proc(out: str, code: int = 0) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess(["x"], code, out, "")

    good = _json_result(proc(json.dumps({"run_dir": str(tmp_path), "pid": 1})), ["start"])
    assert _run_dir_of(good, ["start"]) == tmp_path
    with pytest.raises(RunError, match="^data.train: no such file"):
        _json_result(proc(json.dumps({"error": "data.train: no such file x", "kind": "user"}), 2),
                     ["start"])
    with pytest.raises(RunError, match="'tunedeck start' failed"):
        _json_result(proc(f"warning from a library\n{tmp_path}\n"), ["start"])
