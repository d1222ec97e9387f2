"""What the CLI says: checks report "ok" only after everything asked for passed; readable data
summaries; a bad --name is one line and exit 2; resume says where it starts from."""

from __future__ import annotations

from tdhelpers import tiny_cls_profile


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    from tunedeck.core.cli import main

    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_with_data_says_ok_only_when_the_data_is_good(tmp_path, cls_csv, capsys):
    prof = tiny_cls_profile(tmp_path, cls_csv)
    code, out, _ = run(["profile", "check", str(prof), "--data"], capsys)
    assert code == 0 and ": ok (classification" in out
    assert "rows read" in out and "splits: train" in out and "labels in train:" in out
    assert "{" not in out  # a summary for people, not a JSON dump

    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\n")
    prof = tiny_cls_profile(tmp_path, bad)
    code, out, err = run(["profile", "check", str(prof), "--data"], capsys)
    assert code == 2 and "ok" not in out and "bad.csv" in err


def test_check_notes_a_data_file_that_does_not_exist(tmp_path, capsys):
    from tunedeck.core.profile import dumps, new_profile

    p = tmp_path / "p.toml"
    p.write_text(dumps(new_profile("classification")))
    code, out, _ = run(["profile", "check", str(p)], capsys)
    assert code == 0 and f"note: no such file: data.train = {tmp_path / 'train.csv'}" in out


def test_profile_new_with_a_bad_name_is_one_line(capsys):
    code, out, err = run(["profile", "new", "--name", "bad name/x"], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "profile new name" in err and "Traceback" not in err


def test_resume_without_a_checkpoint_says_it_starts_over(tmp_path, cls_csv, capsys, monkeypatch):
    import tunedeck.core.runs.lifecycle
    from tunedeck.core.profile import dumps, load
    from tunedeck.core.runs.rundir import RunDir, RunLock, create_run

    held = []

    def launch(run, **kw):  # a "worker" that takes run.lock at once: resume waits for that
        held.append(RunLock(run))
        held[-1].acquire()
        return 4242

    monkeypatch.setattr(tunedeck.core.runs.lifecycle, "start_detached", launch)
    prof = load(tiny_cls_profile(tmp_path, cls_csv))
    made = create_run(tmp_path / "runs", prof.name, dumps(prof))
    RunDir(made.path).write_status(state="failed", message="killed")
    try:
        code, out, _ = run(["resume", "--runs-dir", str(tmp_path / "runs"), made.id], capsys)
    finally:
        for lock in held:
            lock.release()
    assert code == 0
    assert "no complete checkpoint yet, so it trains again from step 0" in out
    assert "resumed in worker pid 4242" in out
    assert out.strip().splitlines()[-1] == str(made.path)


def test_resume_whose_worker_dies_before_the_lock_is_exit_1_with_the_log(tmp_path, cls_csv,
                                                                          capsys, monkeypatch):
    """The worker exits before taking run.lock: a failure naming worker.log, never "resumed"."""
    import subprocess
    import sys

    import tunedeck.core.runs.lifecycle
    from tunedeck.core.profile import dumps, load
    from tunedeck.core.runs.rundir import RunDir, create_run

    monkeypatch.setattr(tunedeck.core.runs.lifecycle, "start_detached", lambda run, **kw:
                        subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(1)"]).pid)
    prof = load(tiny_cls_profile(tmp_path, cls_csv))
    made = create_run(tmp_path / "runs", prof.name, dumps(prof))
    RunDir(made.path).write_status(state="failed", message="killed")
    code, out, err = run(["resume", "--runs-dir", str(tmp_path / "runs"), made.id], capsys)
    assert code == 1 and "resumed" not in out
    assert "exited at once with code 1" in err and str(made.path / "worker.log") in err
