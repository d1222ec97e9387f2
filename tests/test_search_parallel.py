"""Parallel search trials (`search.parallel` > 1): each trial in its own worker process, several
at once. Real tiny trials: two in flight really overlap in time; the median pruner still prunes
when the trial being pruned reports from its own process; a driver killed with SIGKILL while two
trials are in flight resumes both from their checkpoints, no trial counted twice; two drivers of
two trials each on one SQLite study run exactly the trials asked. GPU slots are a pure function
(no GPU here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from test_search import _wait, cli, search_json, setup_profile

PRUNE_SPACE = ('[search]\nstrategy = "grid"\npruner = "median"\nparallel = 2\n'
               # seed 4 orders the grid good, good, bad, bad: the two good trials complete
               # (the median pruner's startup trials) before the two bad ones run, together.
               'seed = 4\n\n[search.space]\n"training.learning_rate" = [2e-2, 1e-9]\n'
               '"training.warmup_ratio" = [0.0, 0.1]\n')
GRID2 = ('[search]\nstrategy = "grid"\npruner = "none"\nparallel = 2\n\n[search.space]\n'
         '"training.learning_rate" = [2e-2, 3e-3]\n"training.warmup_ratio" = [0.0, 0.2]\n')


def events(run_dir: str | Path) -> list[dict]:
    return [json.loads(line) for line in
            (Path(run_dir) / "events.jsonl").read_text(encoding="utf-8").splitlines()]


def interval(run_dir: str | Path) -> tuple[float, float]:
    """From the run's first (re)start event to its end event, by the events' own clocks."""
    evs = events(run_dir)
    start = min(e["time"] for e in evs if e["type"] in ("run_started", "run_resumed"))
    end = max(e["time"] for e in evs if e["type"] in ("run_finished", "run_pruned"))
    return start, end


def test_parallel_2_overlaps_trials_and_the_median_pruner_still_prunes(tmp_path):
    prof = setup_profile(tmp_path, PRUNE_SPACE, epochs=4)
    res = search_json(prof, tmp_path)
    trials = sorted(res["trials"], key=lambda t: t["number"])
    assert res["state"] == "finished" and len(trials) == 4
    lrs = [t["params"]["training.learning_rate"] for t in trials]
    assert lrs == [2e-2, 2e-2, 1e-9, 1e-9]
    assert [t["state"] for t in trials[:2]] == ["complete", "complete"]
    # Trials 0 and 1 ran at once, and so did 2 and 3: each pair's intervals overlap.
    spans = [interval(t["run_dir"]) for t in trials]
    for a, b in ((0, 1), (2, 3)):
        assert spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1], spans
    # Each trial was its own worker process (one pid per run, none the driver's).
    pids = {json.loads((Path(t["run_dir"]) / "status.json").read_text())["pid"] for t in trials}
    assert len(pids) == 4
    pruned = [t for t in trials if t["state"] == "pruned"]
    assert len(pruned) == 2 and {t["number"] for t in pruned} == {2, 3}, trials
    for t in pruned:
        st = json.loads((Path(t["run_dir"]) / "status.json").read_text())
        assert st["state"] == "pruned" and st["step"] < st["total_steps"]
        assert t["last_step"] < st["total_steps"]  # before its last evaluation
        assert any(e["type"] == "run_pruned" for e in events(t["run_dir"]))


def _state(run_dir: Path) -> str:
    return json.loads((run_dir / "status.json").read_text())["state"]


def _checkpointed(run_dir: Path, after: int = 0) -> bool:
    return any(int(c.parent.name.split("-")[1]) > after
               for c in (run_dir / "checkpoints").glob("step-*/COMPLETE"))


def test_stop_then_kill_9_of_the_driver_with_2_trials_in_flight_then_resume(tmp_path):
    prof = setup_profile(tmp_path, GRID2)
    # Steps slowed (0.3 s each) so that both first trials are caught between a checkpoint and
    # their end; the last resumed driver (and its children) run at full speed.
    slow = {"TUNEDECK_TEST_HOOKS": "step:*=SLEEP0.3"}
    started = json.loads(cli(["search", str(prof), "--json"], tmp_path, env_extra=slow).stdout)
    group = Path(started["group_dir"])
    trial = [group / f"trial-{n}" for n in (0, 1)]
    _wait(lambda: all(_checkpointed(t) for t in trial))
    # `tunedeck stop STUDY` reaches both trials in flight: each checkpoints and stops.
    cli(["stop", str(group), "--wait", "120"], tmp_path)
    assert _state(group) == "stopped" and [_state(t) for t in trial] == ["stopped", "stopped"]
    shown = json.loads(cli(["search", "show", str(group), "--json"], tmp_path).stdout)
    assert sorted(t["state"] for t in shown["trials"]) == ["running", "running"]
    stopped_at = [json.loads((t / "status.json").read_text())["step"] for t in trial]
    resumed = json.loads(cli(["search", "--resume", str(group), "--json"], tmp_path,
                             env_extra=slow).stdout)
    # Both continue from their checkpoints; kill -9 of the driver once each has trained on.
    _wait(lambda: all(_checkpointed(t, s) for t, s in zip(trial, stopped_at)))
    os.kill(resumed["pid"], signal.SIGKILL)
    assert [_state(t) for t in trial] != ["finished", "finished"]  # caught in flight
    _wait(lambda: subprocess.run(["kill", "-0", str(resumed["pid"])],
                                 capture_output=True).returncode != 0, 30)
    res = json.loads(cli(["search", "--resume", str(group), "--foreground", "--json"],
                         tmp_path).stdout.strip().splitlines()[-1])
    assert res["state"] == "finished"
    assert sorted(t["number"] for t in res["trials"]) == [0, 1, 2, 3]  # none twice
    assert {t["state"] for t in res["trials"]} == {"complete"}
    assert sorted(d.name for d in group.glob("trial-*")) == [f"trial-{i}" for i in range(4)]
    assert len({t["run_dir"] for t in res["trials"]}) == 4
    for t in trial:  # continued from a checkpoint, told to the same Optuna trial
        resumed_at = [e["data"]["step"] for e in events(t) if e["type"] == "run_resumed"]
        assert resumed_at and resumed_at[0] > 0, resumed_at
    combos = {tuple(t["params"].values()) for t in res["trials"]}
    assert len(combos) == 4  # every grid point once


def test_an_ask_landing_after_another_machine_took_the_last_trial_is_dropped(tmp_path):
    """The trial budget is kept by the storage's trial numbers, not by a local lock: driver B
    (another machine) asks for the last trial between driver A's count and A's ask."""
    import optuna

    from tunedeck.core.runs.drivers.search_study import ask_within_budget, counted_trials

    url = f"sqlite:///{tmp_path / 'study.db'}"
    a = optuna.create_study(storage=url, study_name="s")
    b = optuna.load_study(storage=url, study_name="s")
    assert ask_within_budget(b, 2, "B").number == 0
    count = a.get_trials

    def count_then_b_asks(*args, **kwargs):
        got = count(*args, **kwargs)  # A sees one trial: room for one more
        assert ask_within_budget(b, 2, "B").number == 1  # ... and B takes it first
        return got
    a.get_trials = count_then_b_asks
    assert ask_within_budget(a, 2, "A") is None
    a.get_trials = count
    trials = a.get_trials()
    assert len(trials) == 3 and [t.number for t in counted_trials(a)] == [0, 1]
    extra = trials[2]
    assert extra.state.name == "FAIL" and extra.user_attrs["over_budget"] is True
    assert "over budget" in extra.user_attrs["message"]
    assert ask_within_budget(b, 2, "B") is None  # full: nothing more is even asked
    assert len(a.get_trials()) == 3


@pytest.mark.parametrize("parallel,gpus,want", [
    (0, [], [None]),  # auto on a CPU: one at a time
    (3, [], [None, None, None]),  # a CPU: N processes
    (0, ["0", "1", "2", "3"], ["0", "1", "2", "3"]),  # auto: one trial per GPU
    (2, ["0", "1", "2", "3"], ["0", "1"]),
    (2, ["5", "7"], ["5", "7"]),  # the indices CUDA_VISIBLE_DEVICES named
])
def test_trial_slots_give_each_trial_its_own_gpu(parallel, gpus, want):
    from tunedeck.core.runs.drivers.search_pool import child_env, trial_slots

    slots = trial_slots(parallel, gpus)
    assert slots == want
    envs = [child_env(s, len(slots), base={"PATH": "/bin"}, cpus=4) for s in slots]
    if gpus:
        assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == want
        assert len({e["CUDA_VISIBLE_DEVICES"] for e in envs}) == len(envs)  # never shared
    else:
        assert all("CUDA_VISIBLE_DEVICES" not in e for e in envs)
        assert all(e.get("OMP_NUM_THREADS") == (str(4 // len(slots)) if len(slots) > 1 else None)
                   for e in envs)


def test_more_trials_at_once_than_gpus_is_a_clear_error():
    from tunedeck.core.errors import ProfileError
    from tunedeck.core.runs.drivers.search_pool import trial_slots, visible_gpus

    with pytest.raises(ProfileError, match=r"search.parallel = 3 but 2 GPU\(s\).*at most 2"):
        trial_slots(3, ["0", "1"])
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "1,-1,2"}) == ["1"]


def test_parallel_auto_reads_as_0_and_bounds_are_checked(tmp_path):
    from tunedeck.core.profile.search_schema import SearchSection

    assert SearchSection(parallel="auto").parallel == 0 and SearchSection().parallel == 0
    assert SearchSection(parallel=4).parallel == 4
    prof = setup_profile(tmp_path, '[search]\nstrategy = "random"\ntrials = 2\nparallel = -1\n'
                                   '\n[search.space]\n"training.learning_rate" = [1e-3, 2e-3]\n')
    proc = cli(["search", str(prof)], tmp_path, check=False)
    assert proc.returncode == 2 and "search.parallel" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
