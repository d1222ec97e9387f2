"""The runs screen shows a search study as one row (trials ended / asked for, the best trial's
value) that expands to its trials, a pruned trial with its own state; the detail pane says where
the trial table is. Files as the study driver writes them (no Optuna needed to read them)."""

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

pytestmark = pytest.mark.anyio


def make_study(runs_dir: Path) -> GroupDir:
    g = runs_dir / SID
    g.mkdir(parents=True)
    atomic_write_json(g / "group.json", {"kind": "search", "name": "tiny",
                                         "task": "classification", "trials": 3,
                                         "metric": "eval_loss", "strategy": "grid"})
    for i, state in enumerate(["finished", "pruned", "finished"]):
        make_run(g, f"trial-{i}", state=state, step=10 if state == "finished" else 4, total=10,
                 started=T0 + 100 * i, ended=T0 + 100 * i + 50,
                 best={"metric": "f1_macro", "value": 0.9})
    group = GroupDir(g)
    group.write_status(state="finished", started=T0, ended=T0 + 400, step=3, total_steps=3,
                       kind="search", name="tiny", task="classification", pid=999999,
                       best={"metric": "eval_loss", "value": 0.25, "trial": 2})
    return group


async def test_study_row_shows_trials_and_best_and_expands_to_its_trials(runs_dir: Path) -> None:
    make_study(runs_dir)
    app = TunedeckApp(runs_dir, services=fake_services(NOW))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "▸ tiny-search" in text and "3/3 trials" in text
        detail = str(app.screen.query_one("#run-detail").render())
        assert "search · 3/3 trials done · finished" in detail and "best loss 0.25" in detail
        await pilot.press("right")  # enter opens the study screen (test_tui_study.py)
        await wait_for(pilot, lambda: len(app.screen.rows) == 4)
        assert [r.summary.id for r in app.screen.rows] == [SID, "trial-0", "trial-1", "trial-2"]
        assert "✂ pruned" in screen_text(app)
        app.save_screenshot("search-expanded.svg", str(runs_dir.parent))
