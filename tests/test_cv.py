"""k-fold cross-validation (`tunedeck cv`): real tiny runs on stratified folds, a summary whose
mean/std match the folds' own metrics, and a detached driver that is killed (SIGKILL) or
stopped mid-fold and resumed to the very same per-fold numbers."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tdhelpers import TUNEDECK, cli_env, make_classification_rows, tiny_cls_profile

# 3 epochs of ~5 token-budget steps per fold, a checkpoint every 2 steps: a fold can be caught
# between two checkpoints.
TRAINING = {"epochs": 3, "save_every_steps": 2, "keep_checkpoints": 3, "log_every_steps": 1}


CACHE: dict[str, str] = {}


def cli(args, cwd, env_extra=None, check=True, timeout=600):
    env = cli_env(cwd)
    # One cache for the module: a tokenizer trained from data (tiny models have none) is not
    # byte-identical across processes (vocab order), so the runs compared share the cached one.
    env.update(CACHE)
    env.update(env_extra or {})
    proc = subprocess.run(TUNEDECK + args, cwd=cwd, env=env, text=True, capture_output=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\n"
                             f"stderr:\n{proc.stderr}")
    return proc


def write_csv(path: Path, rows) -> Path:
    with path.open("w", encoding="utf-8") as f:
        f.write("text,label\n")
        for text, label in rows:
            f.write(f"{text},{label}\n")
    return path


def setup_profile(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    return tiny_cls_profile(tmp, write_csv(tmp / "reviews.csv", make_classification_rows(120)),
                            **TRAINING)


def fold_metrics(group: Path) -> list[dict]:
    return [json.loads((group / f"fold-{i}" / "metrics.json").read_text()) for i in (1, 2, 3)]


def comparable(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "train_time_s"}


def read(p: Path) -> dict:
    return json.loads(p.read_text())


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """An uninterrupted 3-fold cv, in the foreground."""
    CACHE["TUNEDECK_CACHE_DIR"] = str(tmp_path_factory.mktemp("cv-cache"))
    tmp = tmp_path_factory.mktemp("cv-base")
    prof = setup_profile(tmp)
    proc = cli(["cv", str(prof), "--folds", "3", "--foreground"], tmp)
    return prof, Path(proc.stdout.strip().splitlines()[-1]), proc.stdout


def test_three_folds_give_three_runs_and_a_correct_summary(baseline):
    prof, group, out = baseline
    assert [d.name for d in sorted(group.glob("fold-*"))] == ["fold-1", "fold-2", "fold-3"]
    for i in (1, 2, 3):
        assert read(group / f"fold-{i}" / "status.json")["state"] == "finished"
    metrics = fold_metrics(group)
    summary = read(group / "summary.json")
    assert summary["folds_done"] == 3 and summary["std_ddof"] == 1
    assert summary["evaluated_on"] == "test" and summary["main_metric"] == "accuracy"
    assert [r["state"] for r in summary["runs"]] == ["finished"] * 3
    for key in ("accuracy", "f1_macro", "eval_loss"):
        values = [m[key] for m in metrics]
        mean = sum(values) / 3
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)  # sample std, ddof=1
        assert summary["metrics"][key]["values"] == values
        assert summary["metrics"][key]["mean"] == pytest.approx(mean, abs=1e-12)
        assert summary["metrics"][key]["std"] == pytest.approx(std, abs=1e-12)
        assert f"{mean:.4f} ± {std:.4f}" in out
    assert "steps" not in summary["metrics"] and "train_time_s" not in summary["metrics"]
    assert read(group / "status.json")["state"] == "finished"


def test_folds_are_stratified_disjoint_and_share_one_test_split(baseline):
    _, group, _ = baseline
    data = group / "data"
    pool = pq.read_table(data / "pool.parquet").to_pylist()
    test = pq.read_table(data / "test.parquet").to_pylist()
    assert len(pool) + len(test) == 120 and len(test) == 12  # data.split's 10% test stays out
    held_out = []
    for i in (1, 2, 3):
        train = pq.read_table(data / f"fold-{i}" / "train.parquet").to_pylist()
        val = pq.read_table(data / f"fold-{i}" / "validation.parquet").to_pylist()
        assert {r["source_row"] for r in train}.isdisjoint({r["source_row"] for r in val})
        assert len(train) + len(val) == len(pool)
        held_out += [r["source_row"] for r in val]
        # Stratified: each held-out fold has its class shares within one row of the pool's.
        want = Counter(r["label"] for r in pool)
        got = Counter(r["label"] for r in val)
        for label, n in want.items():
            assert abs(got[label] - n / 3) <= 1, (label, got, want)
        prof = (group / f"fold-{i}" / "profile.toml").read_text()
        assert str(data / "test.parquet") in prof and f"fold-{i}/validation.parquet" in prof
        sizes = [e for e in (group / f"fold-{i}" / "events.jsonl").read_text().splitlines()
                 if '"run_started"' in e]
        assert json.loads(sizes[0])["data"]["dataset_sizes"]["test"] == 12
    assert sorted(held_out) == sorted(r["source_row"] for r in pool)  # every row held out once
    assert {r["fold"] for r in pool} == {1, 2, 3}


def test_runs_lists_the_group_as_one_row_that_expands(baseline):
    prof, group, _ = baseline
    runs_dir = str(group.parent)
    flat = cli(["runs", "--runs-dir", runs_dir], prof.parent).stdout
    assert group.name in flat and "fold-1" not in flat
    line = next(ln for ln in flat.splitlines() if ln.startswith(group.name))
    summary = read(group / "summary.json")["metrics"]["accuracy"]
    assert "finished" in line and "cv 3/3 folds" in line
    assert f"accuracy {summary['mean']:.4f} ± {summary['std']:.4f}" in line
    expanded = cli(["runs", "--runs-dir", runs_dir, "--expand"], prof.parent).stdout.splitlines()
    at = next(i for i, ln in enumerate(expanded) if ln.startswith(group.name))
    assert [ln.split()[0] for ln in expanded[at + 1:at + 4]] == ["fold-1", "fold-2", "fold-3"]
    assert all(ln.startswith("  fold-") for ln in expanded[at + 1:at + 4])
    rows = json.loads(cli(["runs", "--runs-dir", runs_dir, "--json"], prof.parent).stdout)
    g = next(r for r in rows if r["id"] == group.name)
    assert g["kind"] == "cv" and [m["id"] for m in g["members"]] == ["fold-1", "fold-2", "fold-3"]


def start_detached(tmp: Path, prof: Path) -> Path:
    # Slow steps (no effect on the numbers) so the test can act between two checkpoints.
    proc = cli(["cv", str(prof), "--folds", "3", "--json"], tmp,
               {"TUNEDECK_TEST_HOOKS": "step:*=SLEEP0.25"})
    return Path(json.loads(proc.stdout)["group_dir"])


def wait_for(cond, what: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def has_checkpoint(run: Path) -> bool:
    ck = run / "checkpoints"
    return ck.is_dir() and any((d / "COMPLETE").exists() for d in ck.iterdir()
                               if not d.name.startswith("."))  # .tmp-step-N: not yet in place


def test_sigkill_of_driver_mid_fold_then_resume_gives_the_same_numbers(baseline, tmp_path):
    _, base_group, _ = baseline
    prof = setup_profile(tmp_path)
    group = start_detached(tmp_path, prof)
    wait_for(lambda: has_checkpoint(group / "fold-2"), "a checkpoint of fold 2")
    pid = read(group / "status.json")["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: _gone(pid), "the driver to die")
    fold1_end = read(group / "fold-1" / "status.json")["ended"]
    runs = json.loads(cli(["runs", "--runs-dir", str(group.parent), "--json"], tmp_path).stdout)
    g = next(r for r in runs if r["id"] == group.name)
    assert g["state"] == "failed" and "killed" in g["reason"]
    assert [m["state"] for m in g["members"]] == ["finished", "failed"]  # fold 3 never began
    assert read(group / "fold-2" / "status.json")["step"] < read(
        base_group / "fold-2" / "status.json")["total_steps"]

    out = cli(["cv", "--resume", group.name, "--runs-dir", str(group.parent), "--foreground"],
              tmp_path).stdout
    assert "fold 2: resuming from step-" in out
    assert read(group / "fold-1" / "status.json")["ended"] == fold1_end  # kept, not retrained
    resumed = [json.loads(e) for e in (group / "fold-2" / "events.jsonl").read_text().splitlines()
               if '"run_resumed"' in e]
    assert len(resumed) == 1 and resumed[0]["data"]["step"] > 0
    assert [comparable(m) for m in fold_metrics(group)] == [
        comparable(m) for m in fold_metrics(base_group)]
    assert read(group / "summary.json")["metrics"] == read(base_group / "summary.json")["metrics"]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return False


def test_stop_group_checkpoints_the_fold_and_resume_finishes_identically(baseline, tmp_path):
    _, base_group, _ = baseline
    prof = setup_profile(tmp_path)
    group = start_detached(tmp_path, prof)
    wait_for(lambda: has_checkpoint(group / "fold-1"), "a checkpoint of fold 1")
    out = cli(["stop", group.name, "--runs-dir", str(group.parent), "--wait", "120"],
              tmp_path).stdout
    assert "stopped" in out and f"cv --resume {group.name}" in out
    st = read(group / "status.json")
    assert st["state"] == "stopped" and "fold 1/3" in st["message"]
    assert read(group / "fold-1" / "status.json")["state"] == "stopped"
    assert not (group / "fold-2").exists()  # the driver started no further fold
    # `tunedeck resume GROUP` is `tunedeck cv --resume GROUP`.
    proc = cli(["resume", group.name, "--runs-dir", str(group.parent), "--json"], tmp_path)
    assert json.loads(proc.stdout)["group_id"] == group.name
    wait_for(lambda: read(group / "status.json")["state"] not in ("starting", "running"),
             "the resumed group to end")
    assert read(group / "status.json")["state"] == "finished"
    assert [comparable(m) for m in fold_metrics(group)] == [
        comparable(m) for m in fold_metrics(base_group)]


def test_user_errors_are_one_message_and_write_nothing(tmp_path):
    rows = make_classification_rows(60) + [("a lonely rare row", "rare"),
                                            ("another rare row", "rare")]
    prof = tiny_cls_profile(tmp_path, write_csv(tmp_path / "d.csv", rows))
    bad = cli(["cv", str(prof), "--folds", "3"], tmp_path, check=False)
    assert bad.returncode == 2
    assert "class 'rare' has" in bad.stderr and "lower cv.folds (--folds) to at most" in bad.stderr
    one = cli(["cv", str(prof), "--folds", "1"], tmp_path, check=False)
    assert one.returncode == 2 and "at least 2 folds" in one.stderr
    off = cli(["cv", str(prof)], tmp_path, check=False)  # [cv] folds = 0 (off) and no --folds
    assert off.returncode == 2 and "cv.folds" in off.stderr
    neither = cli(["cv"], tmp_path, check=False)
    assert neither.returncode == 2 and "--resume GROUP" in neither.stderr
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())
    missing = cli(["cv", "--resume", "nope", "--runs-dir", str(tmp_path)], tmp_path, check=False)
    assert missing.returncode == 2 and "no group 'nope'" in missing.stderr
