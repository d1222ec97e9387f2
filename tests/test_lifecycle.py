"""Detached start, stop, resume, logs, and honest state through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tdhelpers import TUNEDECK, cli_env, tiny_cls_profile
from tunedeck.core.runs.events import read_all
from tunedeck.core.runs.rundir import RunDir


SLOW = {"TUNEDECK_TEST_HOOKS": "step:*=SLEEP0.1"}  # every step sleeps: runs last long enough to act on


def env(cwd):
    return {**cli_env(cwd), **SLOW}


def cli(args, cwd, check=True):
    p = subprocess.run(TUNEDECK + args, cwd=cwd, env=env(cwd), text=True, capture_output=True,
                       timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def wait_for(pred, timeout=120.0, every=0.2):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(every)
    return False


def test_start_survives_hangup_stop_then_resume(tmp_path, cls_csv):
    prof = tiny_cls_profile(tmp_path, cls_csv, epochs=2, batching="rows", batch_size=8,
                            save_every_steps=5, eval_every_steps=100, log_every_steps=1)
    # Launch through a shell-less parent that we then kill with SIGHUP, as an SSH drop would.
    parent = subprocess.Popen(TUNEDECK + ["start", str(prof)], cwd=tmp_path, env=env(tmp_path),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = parent.communicate(timeout=120)
    assert parent.returncode == 0, err
    run = RunDir(Path(out.strip().splitlines()[-1]))
    runs_dir = str(run.path.parent)
    assert wait_for(lambda: run.read_status().get("state") == "running"
                    and run.read_status().get("step", 0) >= 5), run.log_path.read_text()
    pid = run.read_status()["pid"]
    os.killpg(os.getpgid(pid), signal.SIGHUP)  # the terminal's hangup reaches the whole group
    time.sleep(0.5)
    assert run.effective_state()[0] == "running"

    assert wait_for(lambda: run.read_status().get("step", 0) >= 10)
    said = cli(["stop", "--runs-dir", runs_dir, run.id, "--wait", "60"], tmp_path).stdout
    state, _ = run.effective_state()
    assert state == "stopped", run.log_path.read_text()
    stopped_at = run.read_status()["step"]
    assert f"{run.id} stopped at step {stopped_at}/" in said and "tunedeck resume" in said
    total = run.read_status()["total_steps"]
    assert 0 < stopped_at < total
    assert any(e.type == "run_stopped" for e in read_all(run.events_path))

    listing = json.loads(cli(["runs", "--runs-dir", runs_dir, "--json"], tmp_path).stdout)
    assert listing[0]["state"] == "stopped"

    # The stop both files a request and signals; when the signal wins, the request file outlives
    # the worker. Leave one behind on purpose: the resumed run must not obey it.
    run.request("stop")
    said = cli(["resume", "--runs-dir", runs_dir, run.id, "--foreground"], tmp_path).stdout
    assert f"from its newest complete checkpoint, step-{stopped_at}" in said
    evs = read_all(run.events_path)
    assert [e.seq for e in evs] == list(range(1, len(evs) + 1))  # one log, continued
    resumed = [e for e in evs if e.type == "run_resumed"]
    assert resumed and resumed[0].data["step"] == stopped_at
    assert evs[-1].type == "run_finished"
    steps = [e.data["step"] for e in evs if e.type == "step"]
    assert steps[-1] == total
    assert run.effective_state()[0] == "finished"
    logs = cli(["logs", "--runs-dir", runs_dir, run.id], tmp_path).stdout
    assert "run_resumed" in logs and "run_finished" in logs


def test_killed_worker_shows_failed_then_resumes(tmp_path, cls_csv):
    prof = tiny_cls_profile(tmp_path, cls_csv, epochs=2, batching="rows", batch_size=8,
                            save_every_steps=5, eval_every_steps=100, log_every_steps=1)
    out = cli(["start", str(prof)], tmp_path).stdout
    run = RunDir(Path(out.strip().splitlines()[-1]))
    assert wait_for(lambda: run.read_status().get("step", 0) >= 8)
    os.kill(run.read_status()["pid"], signal.SIGKILL)
    assert wait_for(lambda: run.effective_state()[0] == "failed", timeout=30)
    assert "worker" in run.effective_state()[1]
    listing = json.loads(cli(["runs", "--runs-dir", str(run.path.parent), "--json"], tmp_path).stdout)
    assert listing[0]["state"] == "failed" and listing[0]["reason"]
    # Resume is refused while a worker holds the run, allowed now.
    reached = run.read_status()["step"]
    cli(["resume", "--runs-dir", str(run.path.parent), run.id], tmp_path)
    assert wait_for(lambda: run.effective_state()[0] == "finished", timeout=240), run.log_path.read_text()
    assert (run.model_dir / "config.json").is_file()
    # The event log says how far the dead worker got and what is trained again.
    evs = read_all(run.events_path)
    back_to = next(e.data["step"] for e in evs if e.type == "run_resumed")
    redone = [e for e in evs if e.type == "log" and "previous worker got to step" in e.data["message"]]
    assert bool(redone) == (reached > back_to), (reached, back_to)
