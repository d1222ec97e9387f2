"""Comparing runs in the TUI: space marks runs on the runs screen, c opens the comparison
(profile differences, metrics with the best highlighted, validation curves overlaid)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tui_fakes import PROFILE, T0, fake_services, make_run, training_events
from tui_helpers import screen_text, wait_for

from tunedeck.core.runs.rundir import RunDir
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.compare import CompareScreen
from tunedeck.tui.screens.dialogs import MessageDialog
from tunedeck.tui.screens.editor import EditorScreen
from tunedeck.tui.screens.runs import RunsScreen
from tunedeck.tui.widgets.plot import LinePlot

NOW = T0 + 3600
FAST = "lr-high-20260101-000100-0002"  # newest first on the runs screen: the top row
SLOW = "lr-low-20260101-000000-0001"

pytestmark = pytest.mark.anyio


def worse(events: list, by: float) -> list:
    """The same training with validation scores lower by ``by`` (and losses higher)."""
    out = []
    for typ, data in events:
        if typ == "eval":
            m = data["metrics"]
            data = {**data, "metrics": {"eval_loss": m["eval_loss"] + by, "accuracy": m["accuracy"] - by,
                                        "f1_macro": m["f1_macro"] - by}}
        out.append((typ, data))
    return out


def make_pair(runs_dir: Path) -> tuple[RunDir, RunDir]:
    slow = make_run(runs_dir, SLOW, step=100, best={"metric": "f1_macro", "value": 0.7, "step": 100},
                    events=worse(training_events(100), 0.2))
    fast = make_run(runs_dir, FAST, step=100, started=T0 + 60,
                    best={"metric": "f1_macro", "value": 0.9, "step": 100}, events=training_events(100))
    for run, lr, acc in ((slow, "1e-5", 0.61), (fast, "3e-3", 0.93)):
        (run.path / "profile.toml").write_text(
            PROFILE.format(name=run.id.rsplit("-", 3)[0]) + f"\n[training]\nlearning_rate = {lr}\n"
            "epochs = 3\n", encoding="utf-8")
        run.metrics_path.write_text(json.dumps({"split": "test", "accuracy": acc, "f1_macro": acc - 0.01,
                                                "eval_loss": 1 - acc, "steps": 100}))
    return fast, slow


async def open_compare(pilot, app) -> CompareScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.ready)
    await pilot.press("space")  # marks the top run (A) and moves down
    await pilot.press("space")  # marks the second run (B)
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.ready)
    return app.screen


async def test_mark_two_runs_and_compare(runs_dir: Path) -> None:
    make_pair(runs_dir)
    app = TunedeckApp(runs_dir, services=fake_services(NOW))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_compare(pilot, app)
        assert [r.id for r in screen.comparison.runs] == [FAST, SLOW]
        text = screen_text(app)
        assert f"A ━ {FAST}" in text and f"B ━ {SLOW}" in text
        assert "Profile: 2 keys differ" in text  # the name and the learning rate
        lr_line = next(line for line in text.splitlines() if "training.learning_rate" in line)
        assert lr_line.split()[-2:] == ["0.003", "1e-05"]
        # At 120 columns final (test) and best validation metrics stand side by side.
        assert "Final metrics" in text and "Best validation metrics" in text
        acc_line = next(line for line in text.splitlines() if line.strip().startswith("accuracy"))
        assert acc_line.split() == ["accuracy", "↑", "0.9300", "★", "0.6100",  # A is better
                                    "accuracy", "↑", "0.9500", "★", "0.7500"]
        loss_line = next(line for line in text.splitlines() if line.strip().startswith("eval_loss"))
        assert loss_line.split() == ["eval_loss", "↓", "0.0700", "★", "0.3900",  # lower is better
                                     "eval_loss", "↓", "0.1182", "★", "0.3182"]
        assert "A: test split, weights of step 100   A: step 100, best f1_macro" in text


async def test_curves_are_overlaid_one_series_per_run(runs_dir: Path) -> None:
    fast, slow = make_pair(runs_dir)
    app = TunedeckApp(runs_dir, services=fake_services(NOW))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_compare(pilot, app)
        plots = list(screen.query(LinePlot))
        assert [p.title for p in plots] == ["validation eval_loss", "validation f1_macro"]
        for plot, metric in zip(plots, ("eval_loss", "f1_macro")):
            assert [s.name for s in plot.series] == ["A", "B"]
            for series, run in zip(plot.series, (fast, slow)):
                evals = [e for e in _events(run) if e["type"] == "eval"]
                assert series.xs == [e["data"]["step"] for e in evals] == [50, 100]
                assert series.ys == [e["data"]["metrics"][metric] for e in evals]
            # Both runs are drawn, each in its own colour.
            drawn = {span.style for span in plot.render().spans}
            assert {"cyan", "magenta"} <= {str(s) for s in drawn}
        # Back to the runs screen: the marks are still there for another comparison.
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert app.screen.marked == [FAST, SLOW]
        assert "A lr-high" in screen_text(app) and "B lr-low" in screen_text(app)


def _events(run: RunDir) -> list[dict]:
    return [json.loads(line) for line in run.events_path.read_text().splitlines()]


async def test_c_clones_until_two_runs_are_marked(runs_dir: Path) -> None:
    make_pair(runs_dir)
    app = TunedeckApp(runs_dir, services=fake_services(NOW))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.ready)
        runs = app.screen
        await pilot.press("space")
        assert runs.marked == [FAST]
        await pilot.press("up", "space")  # space again on the same run: unmarked
        assert runs.marked == []
        await pilot.press("c")  # nothing marked: c is still Clone
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen))
        assert not any(isinstance(s, CompareScreen) for s in app.screen_stack)


async def test_a_run_that_cannot_be_read_is_one_message(runs_dir: Path) -> None:
    fast, _ = make_pair(runs_dir)
    (fast.path / "profile.toml").write_text("[training\n", encoding="utf-8")
    app = TunedeckApp(runs_dir, services=fake_services(NOW))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.ready)
        await pilot.press("space", "space", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, MessageDialog))
        assert "cannot read the run's profile" in screen_text(app)
        assert str(fast.path / "profile.toml") in screen_text(app).replace("\n", "")


def until_ready(app) -> bool:
    return isinstance(app.screen, CompareScreen) and app.screen.ready


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_compare_screen_snapshot(snap_compare, runs_dir: Path, size) -> None:
    make_pair(runs_dir)
    app = TunedeckApp(runs_dir, services=fake_services(NOW))

    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.ready)
        await pilot.press("space", "space", "c")
        await wait_for(pilot, lambda: until_ready(app))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
