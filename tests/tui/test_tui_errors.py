"""The error-analysis screen over crafted saved evaluations: keyboard drill-down into the
confusion matrix, the example lists, calibration, the LM view, and the no-evaluation hint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.widgets import DataTable, TabbedContent
from tui_fakes import fake_services, make_run
from tui_helpers import screen_text, wait_for

from test_error_analysis import crafted_cls_rows, crafted_lm_rows, write_saved_eval
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.errors import ErrorsScreen
from tunedeck.tui.screens.runs import RunsScreen
from tunedeck.tui.widgets.confusion_matrix import ConfusionMatrix

RUN_ID = "cls-20260101-000000-0001"
pytestmark = pytest.mark.anyio
SHOTS = os.environ.get("TUNEDECK_SHOTS")  # a folder: save the screens as SVG to look at them


def table_texts(app, table_id: str, column: int) -> list[str]:
    table = app.screen.query_one(f"#{table_id}", DataTable)
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


async def open_errors(app, pilot) -> ErrorsScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.rows)
    await pilot.press("e")
    await wait_for(pilot, lambda: isinstance(app.screen, ErrorsScreen) and app.screen.ready)
    return app.screen


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_confusion_matrix_drill_down(runs_dir: Path, size) -> None:
    run = make_run(runs_dir, RUN_ID, state="finished")
    write_saved_eval(run.path, "test-final", "classification", crafted_cls_rows(), ["a", "b", "c"])
    app = TunedeckApp(runs_dir, services=fake_services())
    async with app.run_test(size=size) as pilot:
        screen = await open_errors(app, pilot)
        matrix = screen.query_one(ConfusionMatrix)
        assert matrix.has_focus and matrix.current_cell() == ("a", "b")  # first off-diagonal cell
        await pilot.press("enter")
        assert table_texts(app, "cell-examples", 2) == ["text 2 (a->b)"]
        assert table_texts(app, "cell-examples", 1) == ["test.csv:4"]  # source row of index 2
        assert "a predicted b: 1 examples" in screen_text(app)
        await pilot.press("down", "left", "enter")  # gold b, predicted a
        assert matrix.current_cell() == ("b", "a")
        assert table_texts(app, "cell-examples", 2) == ["text 4 (b->a)"]
        await pilot.press("up", "enter")  # the diagonal a/a: most confident first
        assert table_texts(app, "cell-examples", 2) == ["text 0 (a->a)", "text 1 (a->a)"]
        assert table_texts(app, "cell-examples", 0) == ["0.950", "0.550"]
        if SHOTS:
            app.save_screenshot(f"errors-matrix-{size[0]}x{size[1]}.svg", SHOTS)
        await pilot.press("2")
        assert app.screen.query_one(TabbedContent).active == "tab-wrong"
        assert table_texts(app, "wrong-table", 3) == ["text 2 (a->b)", "text 6 (c->a)",
                                                       "text 4 (b->a)", "text 9 (a->c)"]
        await pilot.press("3")
        assert table_texts(app, "unsure-table", 0)[:2] == ["0.350", "0.550"]
        await pilot.press("4")
        assert table_texts(app, "classes-table", 1) == ["0.500", "0.667", "0.667"]
        await pilot.press("5")
        text = screen_text(app)
        assert "expected calibration error 0.3450" in text
        if SHOTS:
            app.save_screenshot(f"errors-calibration-{size[0]}x{size[1]}.svg", SHOTS)
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_lm_view_and_choosing_among_evals(runs_dir: Path) -> None:
    run = make_run(runs_dir, RUN_ID, state="finished")
    write_saved_eval(run.path, "validation-final", "causal-lm", crafted_lm_rows(), created=200)
    write_saved_eval(run.path, "test-final", "classification", crafted_cls_rows(), ["a", "b", "c"],
                     created=100)
    app = TunedeckApp(runs_dir, services=fake_services())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_errors(app, pilot)
        assert screen.current.name == "validation-final"  # the newest
        assert table_texts(app, "lengths-table", 0) == ["1–8", "9–16", "17–32"]
        assert table_texts(app, "worst-table", 0)[:2] == ["4.000", "3.000"]
        text = screen_text(app)
        assert "eval 1/2: v for next" in text
        if SHOTS:
            app.save_screenshot("errors-lm-120x40.svg", SHOTS)
        await pilot.press("3")
        assert table_texts(app, "rouge-table", 2)[0] == "x y z"
        await pilot.press("v")
        await wait_for(pilot, lambda: screen.ready and screen.current.name == "test-final")
        assert screen.query_one(ConfusionMatrix).labels == ["a", "b", "c"]


async def test_no_evaluation_says_what_to_run(runs_dir: Path) -> None:
    make_run(runs_dir, RUN_ID, state="finished")
    app = TunedeckApp(runs_dir, services=fake_services())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_errors(app, pilot)
        text = screen_text(app)
        assert "No saved evaluation" in text and f"tunedeck eval {RUN_ID}" in text
