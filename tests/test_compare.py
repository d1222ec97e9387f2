"""`tunedeck compare`: two real tiny classifiers that differ in their learning rate, compared."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tdhelpers import make_classification_rows, tiny_cls_profile
from tunedeck.core.eval.compare import (best_evaluation, best_indices, compare_runs, flatten,
                                        profile_differences)
from tunedeck.core.fsutil import atomic_write_json
from tunedeck.core.runs.events import EventWriter, read_all
from tunedeck.core.runs.rundir import RunDir

FAST_LR, SLOW_LR = 3e-3, 1e-5


def cli(args: list[str], capsys, code: int = 0) -> str:
    from tunedeck.core.cli import main

    capsys.readouterr()
    rc = main(args)
    out = capsys.readouterr()
    assert rc == code, out.err
    return out.out + out.err


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[RunDir, RunDir]:
    """A learning rate that learns and one that barely moves: same data, same seed, trained
    for real (a few seconds each) once for this module."""
    from tunedeck.core.cli import main

    tmp = tmp_path_factory.mktemp("compare")
    data = tmp / "reviews.csv"
    data.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in
                                             make_classification_rows(240)), encoding="utf-8")
    prof = tiny_cls_profile(tmp, data, epochs=3)
    made = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNEDECK_CACHE_DIR", str(tmp / "cache"))
        for lr in (FAST_LR, SLOW_LR):
            before = set((tmp / "runs").glob("*"))
            assert main(["train", str(prof), "--set", f"training.learning_rate={lr}"]) == 0
            (new,) = set((tmp / "runs").glob("*")) - before
            made.append(RunDir(new))
    return made[0], made[1]


def validation_evals(run: RunDir) -> dict[int, dict[str, float]]:
    return {e.data["step"]: e.data["metrics"] for e in read_all(run.events_path)
            if e.type == "eval" and e.data["split"] == "validation"}


def test_profile_differences_are_the_learning_rate(two_runs):
    fast, slow = two_runs
    c = compare_runs([fast, slow])
    assert [(d.key, d.values) for d in c.profile_diffs] == [
        ("training.learning_rate", [FAST_LR, SLOW_LR])]
    frozen = flatten(__import__("tomllib").loads(fast.profile_path.read_text()))
    assert c.equal_keys == len(frozen) - 1 and c.equal_keys > 20
    assert [r.id for r in c.runs] == [fast.id, slow.id]
    assert all(r.state == "finished" and r.main_metric == "f1_macro" for r in c.runs)


def test_final_metrics_side_by_side_with_the_better_run_marked(two_runs):
    fast, slow = two_runs
    c = compare_runs([fast, slow])
    final = {row.metric: row for row in c.tables[0].rows}
    assert c.tables[0].title == "final"
    files = [json.loads(r.metrics_path.read_text()) for r in (fast, slow)]
    for name in ("accuracy", "f1_macro", "eval_loss"):
        assert final[name].values == [m[name] for m in files]
    # The run that learned is better on accuracy (higher) and on loss (lower).
    assert files[0]["accuracy"] > files[1]["accuracy"] and files[0]["eval_loss"] < files[1]["eval_loss"]
    assert final["accuracy"].best == [0] and not final["accuracy"].lower_is_better
    assert final["eval_loss"].best == [0] and final["eval_loss"].lower_is_better
    assert "per_class" not in final and "split" not in final and "steps" not in final
    assert c.tables[0].notes[0].startswith("test split")


def test_best_validation_is_the_best_eval_event_after_step_0(two_runs):
    fast, slow = two_runs
    c = compare_runs([fast, slow])
    best = c.tables[1]
    assert best.title == "best validation"
    for i, run in enumerate((fast, slow)):
        evals = validation_evals(run)
        status_best = run.read_status()["best"]  # what the worker itself chose
        assert best.notes[i] == f"step {status_best['step']}, best f1_macro"
        row = {r.metric: r.values[i] for r in best.rows}
        assert row["f1_macro"] == pytest.approx(status_best["value"])
        assert row["eval_loss"] == evals[status_best["step"]]["eval_loss"]


def test_validation_curves_overlay_every_eval(two_runs):
    fast, slow = two_runs
    c = compare_runs([fast, slow])
    assert [curve.metric for curve in c.curves] == ["eval_loss", "f1_macro"]
    for curve in c.curves:
        for run, points in zip((fast, slow), curve.points):
            evals = validation_evals(run)
            assert points == [(s, evals[s][curve.metric]) for s in sorted(evals)]
            assert points[0][0] == 0 and len(points) == 4  # eval at start + one per epoch


def test_cli_prints_differences_marked_metrics_and_curves(two_runs, capsys):
    fast, slow = two_runs
    out = cli(["compare", "--runs-dir", str(fast.path.parent), fast.id, slow.id[:-2]], capsys)
    lines = out.splitlines()
    assert f"  A  {fast.id}  finished  classification" in lines
    assert "profile: 1 key differs, " in out
    diff = next(line for line in lines if line.strip().startswith("training.learning_rate"))
    assert diff.split() == ["training.learning_rate", "0.003", "1e-05"]
    acc = next(line for line in lines if line.strip().startswith("accuracy"))
    a_acc, b_acc = (json.loads(r.metrics_path.read_text())["accuracy"] for r in (fast, slow))
    assert acc.split() == ["accuracy", "↑", f"{a_acc:.4f}*", f"{b_acc:.4f}"]
    assert "validation curve: eval_loss" in out and "validation curve: f1_macro" in out
    curve = lines[lines.index("validation curve: eval_loss") + 1:][:5]
    assert [row.split()[0] for row in curve] == ["step", "0", "12", "24", "36"]


def test_cli_json_is_the_comparison(two_runs, capsys):
    fast, slow = two_runs
    out = cli(["compare", str(fast.path), str(slow.path), "--json"], capsys)
    doc = json.loads(out)
    assert doc == json.loads(json.dumps(compare_runs([fast, slow]).to_json()))
    assert doc["profile_diffs"][0]["key"] == "training.learning_rate"
    assert doc["curves"][0]["points"][0][0] == [0, doc["curves"][0]["points"][0][0][1]]


def test_shared_named_evaluations_are_compared(two_runs, tmp_path):
    """`tunedeck eval` results (RUN/evals/<name>/metrics.json) the runs share by name."""
    import shutil

    runs = [RunDir(Path(shutil.copytree(r.path, tmp_path / r.id))) for r in two_runs]
    for run, acc in zip(runs, (0.6, 0.9)):
        atomic_write_json(run.path / "evals" / "new_tickets-final" / "metrics.json", {
            "task": "classification", "split": None, "data": "/data/new_tickets.csv",
            "checkpoint": "final", "step": 36, "rows": 50, "label_names": ["neg", "pos"],
            "accuracy": acc, "eval_loss": 1 - acc, "created": 1.0})
    atomic_write_json(runs[0].path / "evals" / "only-a" / "metrics.json", {"accuracy": 1.0})
    c = compare_runs(runs)
    named = [t for t in c.tables if t.title.startswith("eval ")]
    assert [t.title for t in named] == ["eval new_tickets-final"]
    rows = {r.metric: r for r in named[0].rows}
    assert set(rows) == {"accuracy", "eval_loss"}  # rows, step, created: not metrics
    assert rows["accuracy"].best == [1] and rows["eval_loss"].best == [1]
    assert named[0].notes == ["new_tickets.csv, final, 50 rows"] * 2


def test_real_tunedeck_eval_results_are_compared(two_runs, tmp_path, capsys):
    """`tunedeck eval RUN` on both runs: its test-final evaluation reproduces metrics.json, and
    compare shows it as its own block."""
    import shutil

    runs = [RunDir(Path(shutil.copytree(r.path, tmp_path / "runs" / r.id))) for r in two_runs]
    for run in runs:
        cli(["eval", str(run.path)], capsys)
    c = compare_runs(runs)
    (named,) = [t for t in c.tables if t.title.startswith("eval ")]
    assert named.title == "eval test-final"
    assert named.notes == ["test, final, 24 rows"] * 2
    final = {r.metric: r for r in c.tables[0].rows}
    for row in named.rows:
        assert row.values == pytest.approx(final[row.metric].values, abs=1e-6)
        assert row.best == final[row.metric].best
    out = cli(["compare", str(runs[0].path), str(runs[1].path)], capsys)
    assert "eval test-final metrics (* best)" in out


def test_user_errors_exit_2_with_one_message(two_runs, capsys):
    fast, slow = two_runs
    rd = str(fast.path.parent)
    out = cli(["compare", "--runs-dir", rd, fast.id], capsys, code=2)
    assert "compare needs at least two runs" in out and "Traceback" not in out
    out = cli(["compare", "--runs-dir", rd, fast.id, str(fast.path)], capsys, code=2)
    assert f"{fast.id} is given twice" in out
    out = cli(["compare", "--runs-dir", rd, fast.id, "nope-no-such-run"], capsys, code=2)
    assert "nope-no-such-run" in out
    out = cli(["compare", "--runs-dir", rd, fast.id, "--json"], capsys, code=2)
    assert json.loads(out)["kind"] == "user"


def test_broken_profile_names_the_file(two_runs, tmp_path, capsys):
    import shutil

    copy = Path(shutil.copytree(two_runs[1].path, tmp_path / "runs" / "broken-run"))
    (copy / "profile.toml").write_text("[training\nepochs = 3\n")
    out = cli(["compare", str(two_runs[0].path), str(copy)], capsys, code=2)
    assert f"{copy / 'profile.toml'}: cannot read the run's profile" in out


# --- the pieces, on small inputs ------------------------------------------------------------


def test_flatten_and_missing_keys_differ():
    a = flatten({"training": {"epochs": 3, "lr": 1e-3}, "name": "a", "tags": [1, 2]})
    assert a == {"training.epochs": 3, "training.lr": 1e-3, "name": "a", "tags": [1, 2]}
    b = flatten({"training": {"epochs": 3}, "name": "a", "tags": [1, 2]})
    diffs, equal = profile_differences([a, b])
    assert [(d.key, d.values) for d in diffs] == [("training.lr", [1e-3, None])]
    assert equal == 3


def test_best_indices_direction_ties_and_gaps():
    assert best_indices([0.5, 0.7, 0.7], lower=False) == [1, 2]
    assert best_indices([0.5, 0.7, None], lower=True) == [0]
    assert best_indices([0.5, None], lower=True) == []  # nothing to compare against
    assert best_indices([math.nan, 0.4, 0.6], lower=False) == [2]


def test_best_evaluation_skips_the_baseline_and_keeps_the_first_best():
    evals = [(0, {"eval_loss": 0.1}), (10, {"eval_loss": 0.5}), (20, {"eval_loss": 0.3}),
             (30, {"eval_loss": 0.3})]
    assert best_evaluation(evals, "eval_loss") == (20, {"eval_loss": 0.3})
    assert best_evaluation(evals[:1], "eval_loss") is None


def test_a_resumed_run_curve_keeps_the_redone_evaluations(two_runs, tmp_path):
    """After a resume from step 12, the evaluations at 24 and 36 are redone: the curve holds
    the new ones, not both."""
    import shutil

    runs = [RunDir(Path(shutil.copytree(r.path, tmp_path / r.id))) for r in two_runs]
    w = EventWriter(runs[1].events_path)
    w.emit("run_resumed", step=12, checkpoint="checkpoints/step-12", total_steps=36)
    for step, loss in ((24, 0.25), (36, 0.2)):
        w.emit("eval", split="validation", step=step, metrics={"eval_loss": loss, "f1_macro": 0.99})
    w.close()
    c = compare_runs(runs)
    loss_curve = c.curves[0].points[1]
    assert [s for s, _ in loss_curve] == [0, 12, 24, 36]
    assert loss_curve[2:] == [(24, 0.25), (36, 0.2)]
    assert c.tables[1].notes[1] == "step 24, best f1_macro"
