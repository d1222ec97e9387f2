"""The annotation screen, by keys: label with number keys, undo, skip, the unlabelled filter,
quit and come back to the same row with the labels kept (the original untouched), labels asked
for when the file has none, and "fix label" from error analysis landing on the example's row."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import pytest
from tui_fakes import fake_services, make_run
from tui_helpers import screen_text, wait_for

from test_error_analysis import write_saved_eval
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.annotate import AnnotateScreen
from tunedeck.tui.screens.datasets import DatasetsScreen
from tunedeck.tui.screens.dialogs import PromptDialog
from tunedeck.tui.screens.errors import ErrorsScreen
from tunedeck.tui.screens.runs import RunsScreen

pytestmark = pytest.mark.anyio
SHOTS = os.environ.get("TUNEDECK_SHOTS")  # a folder: save the screens as SVG to look at them


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def write_messages(p: Path) -> Path:
    rows = [("Free entry in a weekly competition to win FA Cup final tickets", ""),
            ("Ok lar... joking wif u oni", ""), ("Are we still on for lunch today?", "ham"),
            ("WINNER!! You have been selected to receive a prize", ""), ("See you at 8", ""),
            ("Call now to claim your reward", "")]
    with p.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["text", "label"])
        w.writerows(rows)
    return p


async def shows(app, pilot, *texts: str) -> str:
    """Wait until the screen shows every text (a new message line needs a layout pass first)."""
    return await wait_for(pilot, lambda: (t := screen_text(app)) and all(x in t for x in texts) and t)


async def open_browser_then_label(app, pilot) -> AnnotateScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, DatasetsScreen) and app.screen.opened is not None)
    await pilot.press("a")
    await wait_for(pilot, lambda: isinstance(app.screen, AnnotateScreen) and app.screen.ready)
    return app.screen


async def test_label_undo_quit_and_resume(runs_dir: Path) -> None:
    src = write_messages(Path("sms.csv"))
    before = sha256(src)
    app = TunedeckApp(runs_dir, browse=str(src), services=fake_services())
    async with app.run_test(size=(80, 24)) as pilot:
        scr = await open_browser_then_label(app, pilot)
        assert scr.session.labels == ["ham"]  # the file's own labels
        await pilot.press("escape")
        assert isinstance(app.screen, DatasetsScreen)
    assert not Path("sms.labels.csv").exists()  # opening and leaving writes nothing

    app = TunedeckApp(runs_dir, services=fake_services())
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(AnnotateScreen(src, labels=["spam", "ham"]))
        scr = await wait_for(pilot, lambda: isinstance(app.screen, AnnotateScreen) and app.screen.ready and app.screen)
        await shows(app, pilot, "Free entry in a weekly competition", "labelled 1/6", " 1  spam", " 2  ham")
        await pilot.press("1", "2", "u")  # spam, ham, take the ham back
        assert scr.session.position == 1
        await shows(app, pilot, "labelled 2/6")
        await pilot.press("2", "right", "1", "s")  # ham; past the file's ham; spam; skip
        assert scr.session.position == 5
        await shows(app, pilot, "this session 3")
        if SHOTS:
            app.save_screenshot("annotate-80x24.svg", SHOTS)
        await pilot.press("q")
        assert not isinstance(app.screen, AnnotateScreen)
    assert sha256(src) == before
    assert Path("sms.labels.csv").read_text() == (
        "text,label\n"
        "Free entry in a weekly competition to win FA Cup final tickets,spam\n"
        "Ok lar... joking wif u oni,ham\n"
        "Are we still on for lunch today?,ham\n"
        "WINNER!! You have been selected to receive a prize,spam\n")

    app = TunedeckApp(runs_dir, services=fake_services())
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(AnnotateScreen(src))
        scr = await wait_for(pilot, lambda: isinstance(app.screen, AnnotateScreen) and app.screen.ready and app.screen)
        assert scr.session.position == 5 and scr.session.labels == ["spam", "ham"]
        await shows(app, pilot, "Call now to claim your reward", "labelled 4/6", "resumed where you stopped")
        await pilot.press("f")  # unlabelled only: the skipped "See you at 8" and this one
        await pilot.press("p")
        await shows(app, pilot, "See you at 8")
        await pilot.press("1")
        await shows(app, pilot, "Call now to claim", "labelled 5/6")
        await pilot.press("2")  # the last one
        await shows(app, pilot, "that was the last row without a label", "labelled 6/6")
    # Leaving the app from the screen saved it too.
    assert Path("sms.labels.csv").read_text().count("\n") == 7
    assert sha256(src) == before


async def test_labels_asked_for_when_the_file_has_none(runs_dir: Path) -> None:
    src = Path("plain.jsonl")
    src.write_text("".join(json.dumps({"text": f"review {i}"}) + "\n" for i in range(3)))
    app = TunedeckApp(runs_dir, browse=str(src), services=fake_services())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetsScreen) and app.screen.opened is not None)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog))
        await pilot.press(*"good, bad", "enter")
        scr = await wait_for(pilot, lambda: isinstance(app.screen, AnnotateScreen) and app.screen.session and app.screen)
        await pilot.press("2", "w")
        await shows(app, pilot, "saved to plain.labels.jsonl")
    assert Path("plain.labels.jsonl").read_text() == '{"text": "review 0", "label": "bad"}\n'
    assert scr.session.labels == ["good", "bad"]


async def test_fix_label_from_error_analysis(runs_dir: Path) -> None:
    data = Path("data").resolve()
    data.mkdir()
    src = data / "test.csv"
    src.write_text("text,label\n" + "".join(f"text {i},{'abc'[i % 3]}\n" for i in range(10)))
    before = sha256(src)
    run = make_run(runs_dir, "cls-20260101-000000-0001", state="finished")
    rows = [{"source": str(src), "row": i + 2, "text": f"text {i}", "gold": "abc"[i % 3],
             "predicted": "abc"[(i + (i == 4)) % 3], "probability": 0.9 if i == 4 else 0.6}
            for i in range(10)]
    write_saved_eval(run.path, "test-final", "classification", rows, ["a", "b", "c"])
    app = TunedeckApp(runs_dir, services=fake_services())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.rows)
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorsScreen) and app.screen.ready)
        await pilot.press("2")  # sure but wrong: text 4 (gold b, predicted c)
        await pilot.press("l")
        scr = await wait_for(pilot, lambda: isinstance(app.screen, AnnotateScreen) and app.screen.ready and app.screen)
        cur = scr.session.current()
        assert (cur["text"], cur["record"], cur["label"]) == ("text 4", 6, "b")
        assert scr.session.labels == ["a", "b", "c"]
        await pilot.press("3", "q")  # it is a "c" after all
        assert isinstance(app.screen, ErrorsScreen)
    assert sha256(src) == before
    fixed = list(csv.DictReader((data / "test.labels.csv").open()))
    assert [r["label"] for r in fixed] == ["a", "b", "c", "a", "c", "c", "a", "b", "c", "a"]


async def test_big_file_offers_a_sample_and_many_labels_use_the_list(runs_dir: Path, monkeypatch) -> None:
    from tunedeck.core.prepare.annotation import sample_rows
    from tunedeck.tui.screens import annotate

    monkeypatch.setattr(annotate, "SAMPLE_ABOVE", 20)
    src = Path("many.csv")
    src.write_text("text,label\n" + "".join(f"text {i},class{i % 12}\n" for i in range(30)))
    app = TunedeckApp(runs_dir, browse=str(src), services=fake_services())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetsScreen) and app.screen.opened is not None)
        await pilot.press("a")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog) and app.screen)
        assert "30 rows: label a random sample" in dialog.title_text
        await pilot.press("ctrl+a", "ctrl+k", "5", "enter")  # replace the suggested 500 by 5
        scr = await wait_for(pilot, lambda: isinstance(app.screen, AnnotateScreen) and app.screen.ready and app.screen)
        assert scr.session.rows == sample_rows(30, 5, 0)
        await shows(app, pilot, "row 1/5", "labelled 5/5")
        assert len(scr.session.labels) == 12 and scr.session.labels[10] == "class10"
        first = scr.session.row
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, annotate.LabelPicker))
        await pilot.press(*["down"] * 10, "enter")
        await wait_for(pilot, lambda: app.screen is scr)
        assert scr.session.label_of(first) == "class10" and scr.session.position == 1
        await pilot.press("q")
    saved = list(csv.DictReader(Path("many.labels.csv").open()))
    assert len(saved) == 5 and saved[0]["label"] == "class10"


async def test_fix_label_on_a_really_evaluated_run(runs_dir: Path, cls_csv: Path, tmp_path: Path) -> None:
    """A tiny model really trained and evaluated (``tunedeck train``/``eval`` subprocesses): each
    example's source/row lands the annotation screen on that very line of the training file."""
    import subprocess
    import sys

    from tdhelpers import tiny_cls_profile
    from textual.widgets import DataTable

    before = sha256(cls_csv)
    cli = [sys.executable, "-m", "tunedeck.core.cli"]
    profile = tiny_cls_profile(tmp_path, cls_csv, epochs=1)
    run_dir = subprocess.run([*cli, "train", str(profile)], capture_output=True, text=True, check=True,
                             timeout=600).stdout.strip().splitlines()[-1]
    subprocess.run([*cli, "eval", run_dir, "--split", "test"], capture_output=True, check=True, timeout=600)
    app = TunedeckApp(runs_dir, services=fake_services())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.rows)
        await pilot.press("e")
        errors = await wait_for(pilot, lambda: isinstance(app.screen, ErrorsScreen) and app.screen.ready and app.screen)
        table_id, examples = next((k, v) for k, v in errors.examples_by_table.items() if v)
        await pilot.press("2" if table_id == "wrong-table" else "3")
        table = errors.query_one(f"#{table_id}", DataTable)
        assert table.has_focus
        table.move_cursor(row=len(examples) - 1)
        await pilot.press("l")
        scr = await wait_for(pilot, lambda: isinstance(app.screen, AnnotateScreen) and app.screen.ready and app.screen)
        cur, want = scr.session.current(), examples[-1]
        assert scr.session.source == cls_csv and scr.session.labels == ["neg", "pos"]
        assert (cur["record"], cur["text"], cur["label"]) == (want["row"], want["text"], want["gold"])
        await pilot.press("q")
    assert sha256(cls_csv) == before
