"""Resume guards: changed data is refused (it would re-draw the split), missing data is exit 2
up front, and two resumes typed at once start one worker."""

from __future__ import annotations

import subprocess
import time

import pytest

from test_reliability_support import (  # noqa: F401 - fixtures
    TUNEDECK, clean_hooks, cli, cli_env, cls_setup, fork_call, one_thread, resume_fg, runs_dir,
    status, train_killed)

pytestmark = pytest.mark.usefixtures("one_thread", "clean_hooks")


@pytest.fixture
def stopped_run(tmp_path):
    prof = cls_setup(tmp_path, epochs=2, save_every_steps=3)
    run, outcome = train_killed(prof, {"TUNEDECK_TEST_HOOKS": "step:4=TERM"})
    assert status(run)["state"] == "stopped", outcome
    return prof, run


@pytest.mark.parametrize("tokenize_in_cli", [True, False])
def test_changed_data_is_refused_then_the_original_resumes(stopped_run, capsys, monkeypatch,
                                                           tokenize_in_cli):
    import tunedeck.core.runs.launch_checks

    if not tokenize_in_cli:  # data too big for the CLI to tokenize: the data layer still runs
        monkeypatch.setattr(tunedeck.core.runs.launch_checks, "TOKENIZE_UP_TO_BYTES", -1)
    prof, run = stopped_run
    data = prof.parent / "reviews.csv"
    original = data.read_bytes()
    data.write_bytes(original + b"one more line,pos\n")
    assert cli("resume", run.name, "--runs-dir", str(run.parent)) == 2
    err = capsys.readouterr().err
    assert "the data changed since run" in err and "re-split" in err
    assert status(run)["state"] == "stopped"  # untouched
    data.write_bytes(original)
    assert resume_fg(run) == 0 and status(run)["state"] == "finished"


def test_missing_data_is_exit_2_before_any_worker(stopped_run, capsys):
    prof, run = stopped_run
    (prof.parent / "reviews.csv").rename(prof.parent / "moved.csv")
    assert cli("resume", run.name, "--runs-dir", str(run.parent)) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "frozen profile" in err
    assert status(run)["state"] == "stopped"


def test_two_resumes_at_once_start_one_worker(stopped_run):
    prof, run = stopped_run
    argv = TUNEDECK + ["resume", run.name, "--runs-dir", str(run.parent)]
    procs = [subprocess.Popen(argv, cwd=prof.parent, env=cli_env(prof.parent), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = next(o for p, o in zip(procs, outs) if p.returncode == 2)
    assert "is running" in loser[1] or "is starting" in loser[1]
    deadline = time.time() + 240
    while time.time() < deadline and status(run).get("state") not in ("finished", "failed"):
        time.sleep(0.2)
    assert status(run)["state"] == "finished"
    assert "Traceback" not in (run / "worker.log").read_text()


def test_a_finished_run_with_a_truncated_status_stays_finished(tmp_path, capsys):
    """status.json cut short (a full disk, a bad copy): the event log's end state counts, so a
    finished run is neither shown as failed nor offered a resume that would retrain it."""
    from test_reliability_support import train_fg

    from tunedeck.core.runs.rundir import RunDir

    run = train_fg(cls_setup(tmp_path, epochs=1))
    (run / "status.json").write_text((run / "status.json").read_text()[:60])
    state, reason = RunDir(run).effective_state()
    assert state == "finished" and "event log" in reason
    assert cli("resume", run.name, "--runs-dir", str(run.parent)) == 2
    assert "already finished" in capsys.readouterr().err
