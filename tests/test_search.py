"""Hyperparameter search (`tunedeck search`): real tiny trials through Optuna. A 2x2 grid runs
exactly 4 trials and ranks them by validation loss; seeded random and TPE studies repeat; the
median pruner stops a learning rate that cannot learn before its last evaluation; a driver killed
with SIGKILL resumes to the same completed trials; bad spaces are exit 2 with nothing written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tdhelpers import TUNEDECK, cli_env, make_classification_rows, tiny_cls_profile

# ~8 steps a trial, an evaluation (and checkpoint) every 2: prunable, and killable mid-trial.
TRAINING = {"epochs": 2, "eval_every_steps": 2, "log_every_steps": 2, "eval_at_start": False}
GRID = ('[search]\n# a 2x2 grid\nstrategy = "grid"\npruner = "none"\n\n[search.space]\n'
        '"training.learning_rate" = [2e-2, 3e-3]\n"training.warmup_ratio" = [0.0, 0.2]\n')
CACHE: dict[str, str] = {}


def cli(args, cwd, check=True, timeout=600, env_extra=None):
    env = cli_env(cwd)
    env.update(CACHE)  # one tokenizer for every study compared (a trained one is not byte-equal)
    env.update(env_extra or {})
    proc = subprocess.run(TUNEDECK + args, cwd=cwd, env=env, text=True, capture_output=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def setup_profile(tmp: Path, search: str = GRID, **training) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    data = tmp / "reviews.csv"
    data.write_text("text,label\n" + "".join(f"{t},{lb}\n" for t, lb in
                                             make_classification_rows(160)), encoding="utf-8")
    prof = tiny_cls_profile(tmp, data, **{**TRAINING, **training})
    prof.write_text(prof.read_text(encoding="utf-8") + "\n" + search, encoding="utf-8")
    return prof


def search_json(prof: Path, cwd: Path, *extra: str) -> dict:
    out = cli(["search", str(prof), "--foreground", "--json", *extra], cwd).stdout
    return json.loads(out.strip().splitlines()[-1])


def by_number(res: dict) -> dict[int, dict]:
    return {t["number"]: t for t in res["trials"]}


@pytest.fixture(scope="module")
def grid_study(tmp_path_factory):
    CACHE["TUNEDECK_CACHE_DIR"] = str(tmp_path_factory.mktemp("search-cache"))
    tmp = tmp_path_factory.mktemp("search-grid")
    prof = setup_profile(tmp)
    return prof, search_json(prof, tmp)


def test_a_2x2_grid_runs_exactly_4_trials_best_first(grid_study):
    prof, res = grid_study
    trials = res["trials"]
    assert res["state"] == "finished" and len(trials) == 4
    assert {t["state"] for t in trials} == {"complete"}
    combos = {(t["params"]["training.learning_rate"], t["params"]["training.warmup_ratio"])
              for t in trials}
    assert combos == {(2e-2, 0.0), (2e-2, 0.2), (3e-3, 0.0), (3e-3, 0.2)}
    values = [t["value"] for t in trials]
    assert values == sorted(values)  # best (lowest validation loss) first
    # The value is the trial run's best validation loss, as its events recorded it.
    for t in trials:
        evals = [json.loads(line) for line in
                 (Path(t["run_dir"]) / "events.jsonl").read_text().splitlines()]
        losses = [e["data"]["metrics"]["eval_loss"] for e in evals
                  if e["type"] == "eval" and e["data"]["split"] == "validation"
                  and e["data"]["step"] > 0]
        assert t["value"] == pytest.approx(min(losses))
    group = Path(res["group_dir"])
    assert sorted(d.name for d in group.glob("trial-*")) == [f"trial-{i}" for i in range(4)]


def test_search_best_writes_the_best_profile_with_comments_kept(grid_study):
    import tomllib

    prof, res = grid_study
    best = res["trials"][0]
    text = cli(["search", "best", res["group_dir"]], prof.parent).stdout
    assert "# a 2x2 grid" in text
    doc = tomllib.loads(text)
    assert doc["training"]["learning_rate"] == best["params"]["training.learning_rate"]
    assert doc["training"]["warmup_ratio"] == best["params"]["training.warmup_ratio"]
    shown = cli(["search", "show", res["group_dir"]], prof.parent).stdout
    assert "4 complete" in shown and "importance:" in shown


@pytest.mark.parametrize("strategy", ["random", "bayes"])
def test_seeded_random_and_tpe_repeat_the_same_params_in_the_same_order(tmp_path, strategy):
    CACHE.setdefault("TUNEDECK_CACHE_DIR", str(tmp_path / "cache"))
    space = (f'[search]\nstrategy = "{strategy}"\ntrials = 3\npruner = "none"\nseed = 7\n\n'
             '[search.space]\n"training.learning_rate" = {low = 1e-4, high = 1e-2, log = true}\n'
             '"training.batch_size" = [8, 16]\n')
    prof = setup_profile(tmp_path, space, max_steps=2, eval_every_steps=2)
    first, second = search_json(prof, tmp_path), search_json(prof, tmp_path)
    params = [[t["params"] for t in sorted(r["trials"], key=lambda t: t["number"])]
              for r in (first, second)]
    assert len(params[0]) == 3 and params[0] == params[1]
    assert len({p["training.learning_rate"] for p in params[0]}) == 3


def test_median_pruner_stops_a_learning_rate_that_cannot_learn(tmp_path):
    space = ('[search]\nstrategy = "grid"\npruner = "median"\n\n[search.space]\n'
             '"training.learning_rate" = [2e-2, 1e-9]\n"training.warmup_ratio" = [0.0, 0.1, 0.2]\n')
    prof = setup_profile(tmp_path, space, epochs=4)
    res = search_json(prof, tmp_path)
    trials = res["trials"]
    assert len(trials) == 6
    bad_pruned = [t for t in trials if t["params"]["training.learning_rate"] == 1e-9
                  and t["state"] == "pruned"]
    assert len(bad_pruned) >= 2, trials
    for t in bad_pruned:
        st = json.loads((Path(t["run_dir"]) / "status.json").read_text())
        assert st["state"] == "pruned" and st["step"] < st["total_steps"]
        assert t["last_step"] < st["total_steps"]  # before its last evaluation
    runs = cli(["runs", "--expand", "--runs-dir", str(tmp_path / "runs")], tmp_path).stdout
    assert "search 6/6 trials" in runs and "eval_loss" in runs  # the study, its best value
    assert sum(" pruned " in line for line in runs.splitlines()) == len(
        [t for t in trials if t["state"] == "pruned"])  # its trials, expanded under it


def _wait(pred, timeout=240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_kill_9_of_the_driver_then_resume_finishes_the_same_trials(grid_study, tmp_path):
    _, base = grid_study
    prof = setup_profile(tmp_path)
    # Steps slowed (0.3 s each) so that trial 1 is caught between its first checkpoint and its
    # end; the resumed driver runs at full speed (the delay changes no number).
    started = json.loads(cli(["search", str(prof), "--json"], tmp_path,
                             env_extra={"TUNEDECK_TEST_HOOKS": "step:*=SLEEP0.3"}).stdout)
    group = Path(started["group_dir"])
    # Killed mid-trial: trial 1 has a checkpoint, its run not yet ended.
    _wait(lambda: any((group / "trial-1" / "checkpoints").glob("step-*/COMPLETE")))
    os.kill(started["pid"], signal.SIGKILL)
    assert json.loads((group / "trial-1" / "status.json").read_text())["state"] == "running"
    _wait(lambda: subprocess.run(["kill", "-0", str(started["pid"])],
                                 capture_output=True).returncode != 0, 30)
    res = json.loads(cli(["search", "--resume", str(group), "--foreground", "--json"],
                         tmp_path).stdout.strip().splitlines()[-1])
    assert res["state"] == "finished"
    assert len(res["trials"]) == 4 and {t["state"] for t in res["trials"]} == {"complete"}
    assert sorted(d.name for d in group.glob("trial-*")) == [f"trial-{i}" for i in range(4)]
    got, want = by_number(res), by_number(base)
    for n in range(4):
        assert got[n]["params"] == want[n]["params"]
        assert got[n]["value"] == want[n]["value"]  # exact resume: bit-identical in fp32
    resumed = (group / "trial-1" / "events.jsonl").read_text()
    assert '"run_resumed"' in resumed


BAD_SPACES = [
    ('"training.learning_rte" = [1e-3]', "training.learning_rte", "did you mean"),
    ('"training.learning_rate" = []', "training.learning_rate", "empty"),
    ('"training.learning_rate" = {low = 1e-2, high = 1e-4}', "training.learning_rate", "above"),
    ('"training.warmup_ratio" = {low = 0.0, high = 0.5, log = true}', "training.warmup_ratio",
     "log"),
    ('"training.learning_rate" = {low = 1e-4, high = 2.0}', "training.learning_rate",
     "less than or equal"),
    ('"data.train" = ["a.csv"]', "data.train", "not a hyperparameter"),
]


@pytest.mark.parametrize("line,key,words", BAD_SPACES)
def test_bad_spaces_are_exit_2_naming_the_key(tmp_path, line, key, words):
    prof = setup_profile(tmp_path, f'[search]\nstrategy = "random"\ntrials = 2\n\n'
                                   f'[search.space]\n{line}\n')
    proc = cli(["search", str(prof)], tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert key in proc.stderr and words in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_more_grid_points_than_trials_needs_saying_so(tmp_path):
    prof = setup_profile(tmp_path, GRID.replace('pruner = "none"', 'trials = 3'))
    proc = cli(["search", str(prof)], tmp_path, check=False)
    assert proc.returncode == 2 and "partial_grid" in proc.stderr
    space = tmp_path / "space.toml"
    space.write_text('training.learning_rate = [1e-3]\ntraining.batch_size = [0]\n')
    proc = cli(["search", str(prof), "--space", str(space)], tmp_path, check=False)
    assert proc.returncode == 2 and "search.space.training.batch_size" in proc.stderr


@pytest.mark.parametrize("parallel", [1, 2])
def test_two_drivers_sharing_one_storage_run_each_trial_once(tmp_path, parallel):
    # The trial budget is kept by the storage's trial numbers, whichever driver (or, with
    # parallel = 2, whichever child) asks: an ask past the budget is told FAIL and never trained.
    db = tmp_path / "shared.db"
    space = ('[search]\nstrategy = "random"\ntrials = 4\npruner = "none"\nseed = 3\n'
             f'parallel = {parallel}\nstorage = "sqlite:///{db}"\nstudy_name = "shared"\n\n'
             '[search.space]\n"training.learning_rate" = {low = 1e-4, high = 1e-2, log = true}\n')
    prof = setup_profile(tmp_path, space, max_steps=4, eval_every_steps=2)
    groups = [Path(json.loads(cli(["search", str(prof), "--json"], tmp_path).stdout)["group_dir"])
              for _ in range(2)]

    def ended(g: Path) -> bool:
        return json.loads((g / "status.json").read_text()).get("state") in ("finished", "failed")
    _wait(lambda: all(ended(g) for g in groups))
    assert [json.loads((g / "status.json").read_text())["state"] for g in groups] == \
        ["finished", "finished"]
    import optuna

    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{db}")
    counted = [t for t in study.get_trials() if not t.user_attrs.get("over_budget")]
    assert len(counted) == 4 and all(t.state.name == "COMPLETE" for t in counted)
    assert sorted(t.number for t in counted) == [0, 1, 2, 3]
    extras = [t for t in study.get_trials() if t.user_attrs.get("over_budget")]
    assert all(t.state.name == "FAIL" and "run_dir" not in t.user_attrs for t in extras)
    run_dirs = sorted(str(d) for g in groups for d in g.glob("trial-*"))
    assert sorted(t.user_attrs["run_dir"] for t in counted) == run_dirs  # each trial, one run
    assert len({t.params["training.learning_rate"] for t in counted}) == 4


def test_a_failing_trial_is_recorded_with_its_message_and_the_study_goes_on(tmp_path):
    # The trial with max_steps 6 hits a disk-full error at step 4 (a real OSError in its
    # training loop); the trials with 2 or 3 steps never reach that step and complete.
    space = ('[search]\nstrategy = "grid"\npruner = "none"\nseed = 1\n\n[search.space]\n'
             '"training.max_steps" = [6, 2, 3]\n')
    prof = setup_profile(tmp_path, space, eval_every_steps=1)
    out = cli(["search", str(prof), "--foreground", "--json"], tmp_path,
              env_extra={"TUNEDECK_TEST_HOOKS": "step:4=ENOSPC"}).stdout
    res = json.loads(out.strip().splitlines()[-1])
    trials = by_number(res)
    assert res["state"] == "finished" and len(trials) == 3
    failed = [t for t in trials.values() if t["state"] == "fail"]
    assert [t["params"]["training.max_steps"] for t in failed] == [6]
    assert "No space left" in failed[0]["message"] and failed[0]["value"] is None
    st = json.loads((Path(failed[0]["run_dir"]) / "status.json").read_text())
    assert st["state"] == "failed"
    done = [t for t in trials.values() if t["state"] == "complete"]
    assert sorted(t["params"]["training.max_steps"] for t in done) == [2, 3]
    assert failed[0]["number"] < max(t["number"] for t in done)  # trials ran after it
    shown = json.loads(cli(["search", "show", res["group_dir"], "--json"], tmp_path).stdout)
    assert any(t["state"] == "fail" and "No space left" in t["message"]
               for t in shown["trials"])


def test_hyperband_pruner_stops_a_learning_rate_that_cannot_learn(tmp_path):
    # Kept small (6 trials of 32 steps): Hyperband splits trials into brackets (4 here, from
    # max_resource 32 and reduction factor 3) and a trial competes only within its bracket, so
    # only some bad trials meet a better one at their first rung; one pruned is what we ask.
    space = ('[search]\nstrategy = "grid"\npruner = "hyperband"\n\n[search.space]\n'
             '"training.learning_rate" = [2e-2, 1e-9]\n'
             '"training.weight_decay" = [0.0, 0.01, 0.02]\n')
    prof = setup_profile(tmp_path, space, epochs=4, warmup_ratio=0.0)
    trials = search_json(prof, tmp_path)["trials"]
    assert len(trials) == 6
    bad = [t for t in trials if t["params"]["training.learning_rate"] == 1e-9]
    good = [t for t in trials if t["params"]["training.learning_rate"] == 2e-2
            and t["state"] == "complete"]
    assert good and max(t["value"] for t in good) < min(t["value"] for t in bad)
    bad_pruned = [t for t in bad if t["state"] == "pruned"]
    assert len(bad_pruned) >= 1, trials
    for t in bad_pruned:
        st = json.loads((Path(t["run_dir"]) / "status.json").read_text())
        assert st["state"] == "pruned" and st["step"] < st["total_steps"]
        assert t["last_step"] < st["total_steps"]  # before its last evaluation
