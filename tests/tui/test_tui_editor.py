"""The profile editor: a form generated from the schema, inline errors as typed, raw TOML,
diff before save, byte-for-byte save/reload, launch through the (faked) CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_helpers import wait_for
from tui_fakes import fake_services, make_run

from tunedeck.core.profile import load, new_profile, save
from tunedeck.core.profile.fields import field_specs
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.dashboard import DashboardScreen
from tunedeck.tui.screens.dialogs import DiffDialog, PromptDialog
from tunedeck.tui.screens.editor import EditorScreen, wid

pytestmark = pytest.mark.anyio


async def open_editor(pilot, app) -> EditorScreen:
    return await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen) and app.screen.ready and app.screen)


async def set_field(pilot, ed: EditorScreen, widget_id: str, text: str, typed: bool = False) -> None:
    inp = ed.query_one("#" + widget_id)
    if typed:  # as a user would: focus, clear, type
        inp.focus()
        inp.value = ""
        await pilot.press(*text)
        await pilot.pause(0.3)  # let the debounced whole-profile check run
    else:
        inp.value = text
        await pilot.pause()
        ed.validate_all()


def error_of(ed: EditorScreen, path: str) -> str:
    spec = next(s for s in ed.specs if s.path == path)
    first = str(ed.query_one("#info-" + wid(spec)[2:]).render()).splitlines()[0]
    return first if first.startswith("✗") else ""


async def test_form_is_generated_from_the_schema(runs_dir: Path) -> None:
    app = TunedeckApp(runs_dir, services=fake_services())
    async with app.run_test() as pilot:
        app.open_editor()
        ed = await open_editor(pilot, app)
        for s in field_specs():
            w = ed.query_one("#" + wid(s))
            kind = type(w).__name__
            assert kind == {"bool": "Switch", "choice": "Select"}.get(s.kind, "Input"), s.path
        help_text = " ".join(str(h.render()) for h in ed.query(".field-info"))
        assert "Peak learning rate of AdamW" in help_text


async def test_invalid_value_shows_inline_error_and_blocks_save(runs_dir: Path) -> None:
    p = Path("p.toml")
    save(new_profile("classification"), p)
    before = p.read_bytes()
    app = TunedeckApp(runs_dir, profile=str(p), services=fake_services())
    async with app.run_test(size=(80, 24)) as pilot:
        ed = await open_editor(pilot, app)
        await set_field(pilot, ed, "f-training--learning_rate", "-1", typed=True)
        assert "must be > 0" in error_of(ed, "training.learning_rate")
        await set_field(pilot, ed, "f-training--learning_rate", "abc")
        assert "must be a number" in error_of(ed, "training.learning_rate")
        await set_field(pilot, ed, "f-training--batch_size", "2.5")
        assert "whole number" in error_of(ed, "training.batch_size")
        # A rule of the schema itself (split must sum to 1) is shown at its field too.
        await set_field(pilot, ed, "f-data--split", "[0.5, 0.1, 0.1]")
        await pilot.pause(0.3)
        assert "sum to 1" in error_of(ed, "data.split")
        await pilot.press("ctrl+s")
        assert not isinstance(app.screen, DiffDialog)
        assert p.read_bytes() == before
        await set_field(pilot, ed, "f-training--learning_rate", "0.0001")
        assert error_of(ed, "training.learning_rate") == ""


async def test_save_shows_diff_then_reload_is_byte_for_byte(runs_dir: Path) -> None:
    p = Path("p.toml")
    save(new_profile("classification"), p)
    app = TunedeckApp(runs_dir, profile=str(p), services=fake_services())
    async with app.run_test() as pilot:
        ed = await open_editor(pilot, app)
        await set_field(pilot, ed, "f-training--learning_rate", "3e-5")
        await set_field(pilot, ed, "f-data--train", "sms.tsv")
        ed.query_one("#f-task--type").value = "causal-lm"
        ed.query_one("#f-data--prompt_column").value = "q"
        ed.query_one("#f-data--response_column").value = "a"
        ed.query_one("#f-data--dedup").value = False
        await pilot.pause(0.4)
        assert ed.problem_count() == 0
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, DiffDialog)
        diff = "".join(app.screen.diff_lines)
        assert "-learning_rate = 5e-05" in diff and "+learning_rate = 3e-05" in diff
        await pilot.press("y")
        await pilot.pause()
        saved = p.read_bytes()
        prof = load(p)
        assert (prof.training.learning_rate, prof.data.train, prof.task.type, prof.data.dedup) == (3e-5, "sms.tsv", "causal-lm", False)
        await pilot.press("escape")  # nothing unsaved: leaves without asking
        assert not isinstance(app.screen, EditorScreen) and app.screen.ready

        # Reopen: every field as saved; save-as without edits writes identical bytes.
        app.open_editor(path=p)
        ed = await open_editor(pilot, app)
        assert ed.query_one("#f-training--learning_rate").value == "3e-05"
        assert ed.query_one("#f-task--type").value == "causal-lm"
        assert ed.query_one("#f-data--dedup").value is False
        assert not ed.dirty()
        await pilot.press("f3")
        assert isinstance(app.screen, PromptDialog)
        app.screen.query_one("Input").value = "copy.toml"
        await pilot.press("enter")
        assert isinstance(app.screen, DiffDialog)
        await pilot.press("y")
        await pilot.pause()
        assert Path("copy.toml").read_bytes() == saved


async def test_raw_view_round_trip_keeps_the_text(runs_dir: Path) -> None:
    p = Path("p.toml")
    text = '# my comment\nname = "hand-written"\n\n[data]\ntrain = "x.csv"\n'
    p.write_text(text)
    app = TunedeckApp(runs_dir, profile=str(p), services=fake_services())
    async with app.run_test() as pilot:
        ed = await open_editor(pilot, app)
        assert ed.query_one("#f-top--name").value == "hand-written"
        await pilot.press("ctrl+t")
        raw = ed.query_one("#ed-raw")
        assert raw.text == text  # comments survive while the form is untouched
        raw.text = text.replace("x.csv", "y.csv")
        await pilot.press("ctrl+t")
        assert ed.mode == "form" and ed.query_one("#f-data--train").value == "y.csv"
        await pilot.press("ctrl+t")
        raw.text = text + "[training]\nlearnin_rate = 1\n"
        await pilot.pause(0.5)
        assert any("did you mean 'training.learning_rate'" in m for m in ed.general_errors)


async def test_unknown_keys_and_bad_toml_open_without_a_traceback(runs_dir: Path) -> None:
    p = Path("p.toml")
    p.write_text("name = \n")
    app = TunedeckApp(runs_dir, profile=str(p), services=fake_services())
    async with app.run_test() as pilot:
        ed = await open_editor(pilot, app)
        assert ed.mode == "raw" and "not valid TOML" in ed.general_errors[0]


async def test_launch_saves_then_starts_through_the_cli_and_opens_the_dashboard(runs_dir: Path) -> None:
    p = Path("p.toml")
    save(new_profile("classification"), p)
    calls = []

    def start_run(profile: Path, rd: Path) -> Path:
        calls.append(profile.read_text())
        return make_run(rd, "classify-20260101-000000-0001", state="starting").path

    app = TunedeckApp(runs_dir, profile=str(p), services=fake_services(start_run=start_run))
    async with app.run_test() as pilot:
        ed = await open_editor(pilot, app)
        await set_field(pilot, ed, "f-training--epochs", "1")
        await pilot.press("f5")
        assert isinstance(app.screen, DiffDialog)  # the file on disk is what runs: save first
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready)
        assert "epochs = 1\n" in calls[0]


async def test_out_of_range_values_from_the_file_show_at_their_fields(runs_dir: Path) -> None:
    p = Path("p.toml")
    p.write_text('name = "x"\n[task]\ntype = "regression"\n[training]\nepochs = -2\ncompile = "yes"\n')
    app = TunedeckApp(runs_dir, profile=str(p), services=fake_services())
    async with app.run_test() as pilot:
        ed = await open_editor(pilot, app)
        assert "'regression'" in error_of(ed, "task.type")
        assert "must be > 0" in error_of(ed, "training.epochs")
        assert "not one of auto, on, off" in error_of(ed, "training.compile")
        assert ed.problem_count() == 3


async def test_quitting_with_unsaved_edits_asks_first(runs_dir: Path) -> None:
    from tunedeck.tui.screens.dialogs import ConfirmDialog

    p = Path("p.toml")
    save(new_profile("classification"), p)
    before = p.read_bytes()
    app = TunedeckApp(runs_dir, profile=str(p), services=fake_services())
    async with app.run_test(size=(80, 24)) as pilot:
        ed = await open_editor(pilot, app)
        await set_field(pilot, ed, "f-training--learning_rate", "0.0002")
        assert ed.dirty()
        await pilot.press("ctrl+q")
        dlg = await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen)
        assert "p.toml" in dlg.question
        await pilot.press("n")  # stay: the edit is still there
        await wait_for(pilot, lambda: app.screen is ed)
        assert app.is_running and ed.dirty()
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running)
    assert p.read_bytes() == before


async def test_quitting_with_nothing_unsaved_asks_nothing(runs_dir: Path) -> None:
    p = Path("p.toml")
    save(new_profile("classification"), p)
    app = TunedeckApp(runs_dir, profile=str(p), services=fake_services())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_editor(pilot, app)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running)


async def test_a_file_with_an_unknown_key_opens_raw_with_the_problem_counted(runs_dir: Path) -> None:
    """The form cannot show a typo'd key, and saving the form would drop its value: the file
    opens in the raw view, the header counts the problem, and the form waits for the fix."""
    p = Path("p.toml")
    p.write_text('name = "x"\n[training]\nlearnig_rate = 0.1\n')
    app = TunedeckApp(runs_dir, profile=str(p), services=fake_services())
    async with app.run_test(size=(80, 24)) as pilot:
        ed = await open_editor(pilot, app)
        assert ed.mode == "raw" and ed.problem_count() == 1
        assert "p.toml:3 training.learnig_rate" in ed.general_errors[0]
        assert "did you mean 'training.learning_rate'" in ed.general_errors[0]
        assert "✗ 1 problem" in str(ed.query_one("#ed-status").render())
        await pilot.press("ctrl+t")
        assert ed.mode == "raw"  # refused until fixed
        raw = ed.query_one("#ed-raw")
        raw.load_text('name = "x"\n[training]\nlearning_rate = 0.1\n')
        await pilot.pause(0.5)
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: ed.mode == "form")
        assert ed.problem_count() == 0
        assert ed.query_one("#f-training--learning_rate").value == "0.1"


async def test_saving_from_the_form_keeps_comments_and_layout(runs_dir: Path) -> None:
    p = Path("p.toml")
    text = ('# notes the user wrote\nname = "mine"\n\n[data]\ntrain = "d.csv"\n\n'
            '[training]\nepochs = 2  # enough\nlearning_rate = 1e-4\n')
    p.write_text(text)
    app = TunedeckApp(runs_dir, profile=str(p), services=fake_services())
    async with app.run_test() as pilot:
        ed = await open_editor(pilot, app)
        await set_field(pilot, ed, "f-training--learning_rate", "3e-5")
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, DiffDialog)
        changed = [ln for ln in app.screen.diff_lines if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
        assert changed == ["-learning_rate = 1e-4\n", "+learning_rate = 3e-05\n"]
        await pilot.press("y")
        await pilot.pause()
    assert p.read_text() == text.replace("learning_rate = 1e-4", "learning_rate = 3e-05")


async def test_save_as_elsewhere_keeps_pointing_at_the_same_data(runs_dir: Path) -> None:
    Path("d.csv").write_text("text,label\na,b\n")
    p = Path("p.toml")
    p.write_text('name = "mine"\n\n[data]\ntrain = "d.csv"  # next to the profile\n')
    Path("sub").mkdir()
    app = TunedeckApp(runs_dir, profile=str(p), services=fake_services())
    async with app.run_test() as pilot:
        ed = await open_editor(pilot, app)
        await pilot.press("f3")
        assert isinstance(app.screen, PromptDialog)
        app.screen.query_one("Input").value = "sub/p2.toml"
        await pilot.press("enter")
        assert isinstance(app.screen, DiffDialog)
        await pilot.press("y")
        await pilot.pause()
        assert not ed.dirty()
    saved = Path("sub/p2.toml").read_text()
    assert 'train = "../d.csv"  # next to the profile' in saved
    assert load(Path("sub/p2.toml")).data.train == "../d.csv"
