"""The study screen: enter on a search study's row opens it; it shows the 4 trials of a 2x2 grid
(best first, the pruned one marked), the best so far, the curves and importances, read through
the real `tunedeck search show --json` subprocess; p writes STUDY/best.toml with the best
trial's values (`tunedeck search best`) and opens it in the editor.

The study is hand-built as the driver writes it: group.json, original_profile.toml, a real
Optuna journal with the trials (run_dir / group user attrs), and each trial's run directory
with its evaluation events. Optuna is used by the test and the CLI, never by the TUI."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_fakes import T0, fake_services, make_run
from tui_helpers import screen_text, wait_for

from tunedeck.core.fsutil import atomic_write_json
from tunedeck.core.runs.drivers.base import GroupDir
from tunedeck.tui.app import TunedeckApp

NOW = T0 + 3600
SID = "tiny-search-20260101-000000-abcd"
ORIGINAL = '''schema_version = 1
name = "tiny"

[task]
type = "classification"

[data]
train = "/data/train.csv"

[training]
# tuned by the search below
learning_rate = 1e-3
warmup_ratio = 0.1

[search]
strategy = "grid"

[search.space]
"training.learning_rate" = [2e-2, 3e-3]
"training.warmup_ratio" = [0.0, 0.2]
'''
# (learning_rate, warmup_ratio, validation losses at steps 2, 4, 6, 8; None: pruned at step 4)
TRIALS = [(2e-2, 0.0, [0.9, 0.7, 0.6, 0.55]), (2e-2, 0.2, [0.8, 0.6, 0.45, 0.4]),
          (3e-3, 0.0, [1.0, 0.98, None, None]), (3e-3, 0.2, [0.95, 0.85, 0.75, 0.7])]

pytestmark = pytest.mark.anyio


def eval_events(losses: list[float | None]) -> list[tuple[str, dict]]:
    return [("eval", {"split": "validation", "step": 2 * (i + 1),
                      "metrics": {"eval_loss": v, "accuracy": 1 - v}})
            for i, v in enumerate(losses) if v is not None]


def add_trials(g: Path) -> None:
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(g / "study.journal"))),
                                study_name="tiny-search", direction="minimize")
    dists = {"training.learning_rate": CategoricalDistribution([2e-2, 3e-3]),
             "training.warmup_ratio": CategoricalDistribution([0.0, 0.2])}
    for i, (lr, wr, losses) in enumerate(TRIALS):
        pruned = losses[-1] is None
        run = make_run(g, f"trial-{i}", state="pruned" if pruned else "finished", step=8,
                       total=8, started=T0 + 100 * i, ended=T0 + 100 * i + 50,
                       events=eval_events(losses))
        done = [v for v in losses if v is not None]
        study.add_trial(create_trial(
            state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
            value=None if pruned else min(done),
            params={"training.learning_rate": lr, "training.warmup_ratio": wr},
            distributions=dists, intermediate_values={2 * (k + 1): v for k, v in enumerate(done)},
            user_attrs={"run_dir": str(run.path), "group": SID}))


@pytest.fixture(scope="module")
def study_runs(tmp_path_factory) -> Path:
    runs_dir = tmp_path_factory.mktemp("study") / "runs"
    g = runs_dir / SID
    g.mkdir(parents=True)
    (g / "original_profile.toml").write_text(ORIGINAL, encoding="utf-8")
    atomic_write_json(g / "group.json", {
        "kind": "search", "name": "tiny", "task": "classification", "trials": 4,
        "strategy": "grid", "metric": "eval_loss", "direction": "minimize", "pruner": "median",
        "storage": None, "study_name": "tiny-search", "seed": 0, "created": T0})
    add_trials(g)
    GroupDir(g).write_status(state="finished", started=T0, ended=T0 + 400, step=4,
                             total_steps=4, kind="search", name="tiny", task="classification",
                             pid=999999, best={"metric": "eval_loss", "value": 0.4, "trial": 1})
    return runs_dir


async def test_study_screen_shows_trials_best_curves_and_opens_the_best_profile(
        study_runs: Path) -> None:
    app = TunedeckApp(study_runs, services=fake_services(NOW))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "▸ tiny-search" in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "StudyScreen"
                       and app.screen.ready, timeout=60)
        screen = app.screen
        assert screen.result is not None, screen_text(app)
        # The table and header paint after `ready`; on a loaded machine a one-shot read can
        # come before that paint (seen in CI), so wait for what the screen must come to show.
        await wait_for(pilot, lambda: "✂ pruned" in (t := screen_text(app))
                       and "best eval_loss (minimize): 0.4" in t, timeout=30)
        text = screen_text(app)
        table = screen.query_one("#study-trials")
        assert table.row_count == 4
        # best first: trial 1 (0.4), 0 (0.55), 3 (0.7), then the pruned one
        assert [str(table.get_row_at(i)[0]) for i in range(4)] == ["1", "0", "3", "2"]
        assert "✂ pruned" in text and "best eval_loss (minimize): 0.4" in text
        assert "trial #1" in text
        series = {s.name: s for s in screen.plot.series}
        assert set(series) == {"#0", "#1", "#2✂", "#3"}
        assert series["#1"].ys == [0.8, 0.6, 0.45, 0.4] and series["#2✂"].xs == [2.0, 4.0]
        assert "importance:" in str(screen.query_one("#study-importance").render())
        app.save_screenshot("study.svg", str(study_runs.parent))
        (study_runs.parent / "study.txt").write_text(text, encoding="utf-8")
        await pilot.press("p")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "EditorScreen"
                       and app.screen.ready, timeout=60)
        best = study_runs / SID / "best.toml"
        written = best.read_text(encoding="utf-8")
        assert "learning_rate = 0.02" in written and "warmup_ratio = 0.2" in written
        assert "# tuned by the search below" in written  # comments kept
        assert app.screen.path == best


async def test_a_k_fold_group_still_expands_with_enter(runs_dir: Path) -> None:
    g = runs_dir / "tiny-cv-20260101-000000-abcd"
    g.mkdir(parents=True)
    atomic_write_json(g / "group.json", {"kind": "cv", "name": "tiny", "folds": 2,
                                         "task": "classification"})
    for i in range(2):
        make_run(g, f"fold-{i + 1}", state="finished", step=10, total=10)
    GroupDir(g).write_status(state="finished", started=T0, step=2, total_steps=2, kind="cv",
                             name="tiny", task="classification", pid=999999)
    app = TunedeckApp(runs_dir, services=fake_services(NOW))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.screen.rows) == 3)
        assert type(app.screen).__name__ == "RunsScreen"
