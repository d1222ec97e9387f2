"""Data operations from the dataset browser, through the real CLI (``tunedeck data OP --json``):
the form, the dry-run preview with its counts, enter to write, the new file opened in the
browser, the original untouched; a changed option asks for a new preview; errors are shown."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
from textual.widgets import DataTable, ProgressBar
from tui_fakes import fake_services
from tui_helpers import screen_text, wait_for

from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.data_ops import OP_FIELDS, DataOpScreen, op_arguments
from tunedeck.tui.screens.datasets import DatasetsScreen
from tunedeck.tui.screens.dialogs import MessageDialog

pytestmark = pytest.mark.anyio

MESSY = ("text,label\n"
         " Hello  World ,ham\n"
         "Free prize http://x.co ,spam\n"
         ",ham\n"
         "Hello World,ham\n"
         "see you at 8,ham\n")


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_form_values_become_cli_options() -> None:
    assert op_arguments(OP_FIELDS["clean"], {"lowercase": True, "strip-urls": False, "dedup": "exact",
                                             "near-dup": " "}) == ["--lowercase", "--dedup", "exact"]
    assert op_arguments(OP_FIELDS["convert"], {"to": "parquet", "rename": "a=b, c=d", "map": ""}) == [
        "--to", "parquet", "--rename", "a=b", "--rename", "c=d"]


async def shows(app, pilot, *texts: str) -> str:
    """Wait until the screen shows every text (a longer status needs a layout pass first)."""
    return await wait_for(pilot, lambda: (t := screen_text(app)) and all(x in t for x in texts) and t)


async def open_op(app, pilot, key: str) -> DataOpScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, DatasetsScreen) and app.screen.opened is not None)
    await pilot.press(key)
    return await wait_for(pilot, lambda: isinstance(app.screen, DataOpScreen) and app.screen.ready and app.screen)


async def test_clean_preview_then_write(runs_dir: Path) -> None:
    src = Path("msgs.csv")
    src.write_text(MESSY)
    before = sha256(src)
    app = TunedeckApp(runs_dir, browse=str(src), services=fake_services())
    async with app.run_test(size=(100, 30)) as pilot:
        scr = await open_op(app, pilot, "c")
        await pilot.press("tab", "space")  # the second box: remove URLs
        await pilot.press("enter")
        await wait_for(pilot, lambda: scr.report is not None and scr.running is None)
        await shows(app, pilot, "rows 5 → 3", "dropped 2 (empty 1, duplicate 1)", "changed 2")
        table = scr.query_one("#op-preview", DataTable)
        assert [str(table.get_row_at(i)[1]) for i in range(table.row_count)] == [
            "changed", "changed", "empty", "duplicate"]
        assert "text=Free prize | label=spam" in str(table.get_row_at(1)[3])
        assert not Path("msgs.clean.csv").exists()  # a preview writes nothing
        bar = scr.query_one(ProgressBar)  # fed by the CLI's "progress DONE TOTAL" lines
        assert bar.total and bar.progress == bar.total
        await pilot.press("enter")
        browser = await wait_for(pilot, lambda: isinstance(app.screen, DatasetsScreen)
                                 and app.screen.path == Path("msgs.clean.csv").resolve()
                                 and app.screen.opened is not None and app.screen)
        assert browser.opened.table.column("text").to_pylist() == ["Hello World", "Free prize", "see you at 8"]
    with Path("msgs.clean.csv").open(newline="") as f:
        assert list(csv.reader(f)) == [["text", "label"], ["Hello World", "ham"], ["Free prize", "spam"],
                                       ["see you at 8", "ham"]]
    assert sha256(src) == before


async def test_changed_option_needs_a_new_preview_and_split_writes_a_folder(runs_dir: Path) -> None:
    src = Path("d.csv")
    src.write_text("text,label\n" + "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(20)))
    app = TunedeckApp(runs_dir, browse=str(src), services=fake_services())
    async with app.run_test(size=(100, 30)) as pilot:
        scr = await open_op(app, pilot, "S")
        await pilot.press("enter")
        await wait_for(pilot, lambda: scr.previewed is not None)
        await shows(app, pilot, "splits: train 16 · validation 2 · test 2")
        scr.query_one("#op-fractions").value = "50/25/25"
        await pilot.pause()
        assert scr.previewed is None
        await shows(app, pilot, "options changed")
        await pilot.press("enter")  # a new preview, not a write
        await wait_for(pilot, lambda: scr.previewed is not None)
        await shows(app, pilot, "splits: train 10 · validation 5 · test 5")
        assert not Path("d.split").exists()
        await pilot.press("enter")
        browser = await wait_for(pilot, lambda: isinstance(app.screen, DatasetsScreen)
                                 and app.screen.path.parent.name == "d.split" and app.screen.opened is not None
                                 and app.screen)
        assert browser.path.name.startswith("train.") and browser.opened.table.num_rows == 10


async def test_a_user_error_is_shown(runs_dir: Path) -> None:
    src = Path("d.csv")
    src.write_text("text,label\na,x\nb,y\n")
    app = TunedeckApp(runs_dir, browse=str(src), services=fake_services())
    async with app.run_test(size=(100, 30)) as pilot:
        scr = await open_op(app, pilot, "S")
        scr.query_one("#op-group-by").value = "nosuch"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MessageDialog)
                       and "has no column 'nosuch'" in screen_text(app))
        await pilot.press("escape")
        assert app.screen is scr and scr.running is None and scr.previewed is None


async def test_convert_and_augment_from_their_keys(runs_dir: Path) -> None:
    src = Path("pairs.csv")
    src.write_text("text,label\n" + "".join(f"the quick brown fox number {i},{'ab'[i % 2]}\n" for i in range(6)))
    before = sha256(src)
    app = TunedeckApp(runs_dir, browse=str(src), services=fake_services())
    async with app.run_test(size=(80, 24)) as pilot:
        scr = await open_op(app, pilot, "C")
        scr.query_one("#op-rename").value = "text=prompt"
        await pilot.press("enter")
        await wait_for(pilot, lambda: scr.previewed is not None)
        await pilot.press("enter")
        browser = await wait_for(pilot, lambda: isinstance(app.screen, DatasetsScreen)
                                 and app.screen.path.name == "pairs.jsonl" and app.screen.opened is not None
                                 and app.screen)
        assert browser.opened.table.column_names == ["prompt", "label"]
        app.screen.open_path(src.resolve())
        await wait_for(pilot, lambda: app.screen.path.name == "pairs.csv" and app.screen.opened is not None)
        scr = await open_op(app, pilot, "A")
        await pilot.press("enter")
        await wait_for(pilot, lambda: scr.previewed is not None)
        await shows(app, pilot, "rows 6 → 18")  # two new rows per row (the default)
        await pilot.press("tab")  # into the preview table: the detail line shows the whole row
        await wait_for(pilot, lambda: "augmented_from=1" in screen_text(app))
    assert sha256(src) == before
