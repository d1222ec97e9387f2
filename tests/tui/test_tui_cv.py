"""The runs screen shows a k-fold group as one row (folds done, mean ± std of its main metric)
that expands to its folds with enter or →, collapses with ← (from a fold too), shows the group's
summary in the detail pane, and resumes a stopped group through `tunedeck resume GROUP`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tui_fakes import T0, fake_services, make_run
from tui_helpers import screen_text, wait_for

from tunedeck.core.fsutil import atomic_write_json
from tunedeck.core.runs.drivers.base import GroupDir
from tunedeck.core.runs.drivers.cv_summary import write_summary
from tunedeck.tui.app import TunedeckApp

NOW = T0 + 3600
GID = "tiny-cv3-20260101-000000-abcd"
ACCURACY = [0.75, 0.8, 0.9]

pytestmark = pytest.mark.anyio


def make_group(runs_dir: Path, state: str = "finished", done: int = 3) -> GroupDir:
    """A real group layout: group.json, status.json, fold runs with metrics.json, and the
    summary the driver writes (cv_summary.write_summary)."""
    g = runs_dir / GID
    g.mkdir(parents=True)
    atomic_write_json(g / "group.json", {"kind": "cv", "name": "tiny", "task": "classification",
                                         "folds": 3, "members": ["fold-1", "fold-2", "fold-3"]})
    for i in range(1, 4):
        fold_state = "finished" if i <= done else "stopped"
        run = make_run(g, f"fold-{i}", state=fold_state, step=10 if i <= done else 4, total=10,
                       started=T0 + 100 * i, ended=T0 + 100 * i + 50,
                       best={"metric": "f1_macro", "value": ACCURACY[i - 1]})
        if i <= done:
            atomic_write_json(run.metrics_path, {"split": "test", "accuracy": ACCURACY[i - 1],
                                                 "f1_macro": ACCURACY[i - 1] - 0.05,
                                                 "eval_loss": 0.5, "steps": 10})
    group = GroupDir(g)
    group.write_status(state=state, started=T0, ended=T0 + 400, step=done, total_steps=3,
                       kind="cv", name="tiny", task="classification", pid=999999,
                       message="stopped in fold 3/3 (checkpointed)" if state == "stopped" else "")
    write_summary(g, 3)
    return group


def shown_ids(app: TunedeckApp) -> list[str]:
    return [r.summary.id for r in app.screen.rows]


async def test_group_row_expands_to_its_folds_and_shows_its_summary(runs_dir: Path) -> None:
    make_group(runs_dir)
    make_run(runs_dir, "solo-20260101-000500-0001", state="finished", step=5, total=5,
             started=T0 - 100)
    app = TunedeckApp(runs_dir, services=fake_services(NOW))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert shown_ids(app) == [GID, "solo-20260101-000500-0001"]  # one row for the group
        text = screen_text(app)
        assert "▸ tiny-cv3" in text and "3/3 folds" in text
        assert "acc 0.8167±0.076" in text  # mean and sample std (ddof=1) of 0.75, 0.8, 0.9
        detail = str(app.screen.query_one("#run-detail").render())
        assert "cv · 3/3 folds done · finished" in detail
        assert "acc 0.8167 ± 0.07638" in detail and "(folds: 0.75 0.8 0.9)" in detail
        app.save_screenshot("cv-collapsed.svg", str(runs_dir.parent))

        await pilot.press("enter")  # a group's enter expands it (a run's opens its dashboard)
        await wait_for(pilot, lambda: len(app.screen.rows) == 5)
        assert shown_ids(app) == [GID, "fold-1", "fold-2", "fold-3", "solo-20260101-000500-0001"]
        assert "▾ tiny-cv3" in screen_text(app)
        app.save_screenshot("cv-expanded.svg", str(runs_dir.parent))
        await pilot.press("down", "down")
        assert app.screen.selected().summary.id == "fold-2"
        assert app.screen.selected().summary.path.endswith(f"{GID}/fold-2")
        await pilot.press("left")  # from a fold: collapse its group, land on the group
        await wait_for(pilot, lambda: len(app.screen.rows) == 2)
        assert app.screen.selected().summary.id == GID
        await pilot.press("right")
        await wait_for(pilot, lambda: len(app.screen.rows) == 5)
        await pilot.press("down", "enter")  # a fold is a normal run: its dashboard opens
        await wait_for(pilot, lambda: type(app.screen).__name__ == "DashboardScreen")
        assert Path(app.screen.run.path).name == "fold-1"


async def test_stopped_group_resumes_through_the_cli_and_hides_run_only_keys(
        runs_dir: Path) -> None:
    make_group(runs_dir, state="stopped", done=2)
    calls = []

    def resume(run_id: str, where: Path) -> Path:
        calls.append((run_id, Path(where).name))
        return runs_dir / GID

    app = TunedeckApp(runs_dir, services=fake_services(NOW, resume_run=resume))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert "2/3 folds" in screen_text(app)
        for action in ("delete", "clone", "stop"):
            assert not screen.check_action(action, ())
        assert screen.check_action("resume", ())
        detail = str(screen.query_one("#run-detail").render())
        assert "stopped: stopped in fold 3/3" in detail and "(folds: 0.75 0.8 –)" in detail
        await pilot.press("r")
        await wait_for(pilot, lambda: calls)
        await pilot.pause(0.2)
        assert calls == [(GID, "runs")]
        assert type(app.screen).__name__ == "RunsScreen"  # a group has no dashboard
    summary = json.loads((runs_dir / GID / "summary.json").read_text())
    assert summary["folds_done"] == 2 and summary["metrics"]["accuracy"]["values"][2] is None
