"""The runs screen, driven by keys: live list, stale runs, stop/delete with confirmation,
new run and resume through the (faked) CLI, clone into the editor, quitting touches nothing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from tui_helpers import wait_for
from tui_fakes import T0, fake_services, make_run, training_events

from tunedeck.core.runs.rundir import RunDir, RunLock
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.dashboard import DashboardScreen
from tunedeck.tui.screens.dialogs import ConfirmDialog, PromptDialog
from tunedeck.tui.screens.editor import EditorScreen
from tunedeck.tui.screens.runs import RunsScreen

NOW = T0 + 3600

pytestmark = pytest.mark.anyio


def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        for d in dirnames:
            out[str((Path(dirpath) / d).relative_to(root)) + "/"] = "dir"
    return out


def states(app: TunedeckApp) -> dict[str, str]:
    return {r.summary.id: r.shown_state for r in app.screen.rows}


async def test_lists_runs_marks_stale_and_picks_up_new_runs(runs_dir: Path) -> None:
    make_run(runs_dir, "a-20260101-000000-0001", state="finished", step=100, total=100, ended=T0 + 50)
    # status says running, nobody holds the lock, heartbeat old: the worker is gone.
    make_run(runs_dir, "b-20260101-000100-0002", state="running", step=40, started=T0 + 60, heartbeat=T0 + 100)
    live = make_run(runs_dir, "c-20260101-000200-0003", state="running", step=7, started=T0 + 120, heartbeat=NOW - 1)
    lock = RunLock(live)
    lock.acquire()
    try:
        app = TunedeckApp(runs_dir, services=fake_services(NOW))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert states(app) == {"a-20260101-000000-0001": "finished", "b-20260101-000100-0002": "stale",
                                   "c-20260101-000200-0003": "running"}
            # A run started elsewhere (CLI, another SSH session) shows up by itself.
            make_run(runs_dir, "d-20260101-000300-0004", state="stopped", step=3, started=T0 + 180)
            await wait_for(pilot, lambda: "d-20260101-000300-0004" in states(app))
            # The cursor stays on the run it was on (c), not on the row number.
            assert app.screen.selected().summary.id == "c-20260101-000200-0003"
            # The stale run's detail line says why.
            await pilot.press("down")
            detail = str(app.screen.query_one("#run-detail").render())
            assert "STALE" in detail and "b-20260101-000100-0002" in detail
    finally:
        lock.release()


async def test_stop_asks_first_then_calls_the_lifecycle_stop(runs_dir: Path) -> None:
    """The TUI's stop is lifecycle.stop_run (request + signal, as `tunedeck stop`), not a bare
    control file the worker would see only between steps."""
    run = make_run(runs_dir, "a-20260101-000000-0001", state="running", heartbeat=NOW)
    lock = RunLock(run)
    lock.acquire()
    try:
        services = fake_services(NOW)
        app = TunedeckApp(runs_dir, services=services)
        async with app.run_test() as pilot:
            await pilot.press("s")
            assert isinstance(app.screen, ConfirmDialog)
            await pilot.press("n")
            assert not run.control_dir.exists() and services.stop_run.calls == []
            await pilot.press("s", "y")
            await pilot.pause()
            assert services.stop_run.calls == [run.id]
            assert [p.read_text() for p in run.control_dir.iterdir()] == ["stop"]
    finally:
        lock.release()


async def test_delete_finished_run_with_confirmation_never_a_running_one(runs_dir: Path) -> None:
    done = make_run(runs_dir, "a-20260101-000000-0001", state="finished", started=T0)
    live = make_run(runs_dir, "b-20260101-000100-0002", state="running", started=T0 + 60, heartbeat=NOW)
    lock = RunLock(live)
    lock.acquire()
    try:
        app = TunedeckApp(runs_dir, services=fake_services(NOW))
        async with app.run_test() as pilot:
            await pilot.pause()
            assert app.screen.selected().summary.id == live.id
            await pilot.press("d")  # running: refused, no dialog
            assert isinstance(app.screen, RunsScreen) and app.screen.ready
            assert live.path.exists()
            await pilot.press("down", "d")
            assert isinstance(app.screen, ConfirmDialog)
            await pilot.press("escape")
            assert done.path.exists()
            await pilot.press("d", "y")
            await wait_for(pilot, lambda: not done.path.exists())
            assert live.path.exists()
            assert list(states(app)) == [live.id]
    finally:
        lock.release()


async def test_quitting_touches_no_run(runs_dir: Path) -> None:
    run = make_run(runs_dir, "a-20260101-000000-0001", state="running", heartbeat=NOW, events=training_events(30))
    lock = RunLock(run)
    lock.acquire()
    try:
        before = tree_digest(runs_dir)
        app = TunedeckApp(runs_dir, services=fake_services(NOW))
        async with app.run_test() as pilot:
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready)
            await pilot.press("escape", "q")
        assert app.return_code in (0, None)
        assert tree_digest(runs_dir) == before
        assert not run.control_dir.exists()
    finally:
        lock.release()


async def test_new_run_from_a_profile_goes_through_the_cli_and_opens_the_dashboard(runs_dir: Path) -> None:
    calls = []
    prof = Path("p.toml")
    prof.write_text('name = "x"\n')

    def start_run(profile: Path, rd: Path) -> Path:
        calls.append((profile, rd))
        return make_run(rd, "x-20260101-000000-0009", state="starting", heartbeat=NOW).path

    app = TunedeckApp(runs_dir, services=fake_services(NOW, start_run=start_run))
    async with app.run_test() as pilot:
        await pilot.press("n")
        assert isinstance(app.screen, PromptDialog)
        await pilot.press(*"p.toml", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready)
        assert calls == [(Path("p.toml"), runs_dir)]
        assert app.screen.run.id == "x-20260101-000000-0009"


async def test_resume_goes_through_the_cli(runs_dir: Path) -> None:
    run = make_run(runs_dir, "a-20260101-000000-0001", state="stopped", step=30)
    calls = []

    def resume_run(run_id: str, rd: Path) -> Path:
        calls.append((run_id, rd))
        return run.path

    app = TunedeckApp(runs_dir, services=fake_services(NOW, resume_run=resume_run))
    async with app.run_test() as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready)
        assert calls == [(run.id, runs_dir)]


async def test_clone_opens_the_runs_profile_in_the_editor(runs_dir: Path) -> None:
    make_run(runs_dir, "a-20260101-000000-0001", state="finished")
    app = TunedeckApp(runs_dir, services=fake_services(NOW))
    async with app.run_test() as pilot:
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen) and app.screen.ready)
        ed = app.screen
        assert ed.path is None
        assert ed.query_one("#f-top--name").value == "a"
        assert ed.query_one("#f-data--train").value == "/data/train.csv"


async def test_attach_to_unknown_run_is_an_error_panel_not_a_traceback(runs_dir: Path) -> None:
    app = TunedeckApp(runs_dir, attach="nope", services=fake_services(NOW))
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.screen.query("#message"))
        assert "no run 'nope'" in str(app.screen.query_one("#message").render())
        await pilot.press("enter")
        assert isinstance(app.screen, RunsScreen) and app.screen.ready
    _ = RunDir


async def test_a_runs_directory_that_does_not_exist_is_pointed_out(tmp_path: Path) -> None:
    app = TunedeckApp(tmp_path / "typo", services=fake_services(NOW))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.pause(0.2)
        shown = str(app.screen.query_one("#runs-empty").render())
        assert "No runs yet" in shown and "no such directory" in shown


async def test_home_and_end_move_the_selection(runs_dir: Path) -> None:
    from textual.widgets import DataTable

    for i in range(5):
        make_run(runs_dir, f"r{i}-20260101-00000{i}-0001", state="finished", step=10, total=10,
                 started=T0 + i, ended=T0 + 100)
    app = TunedeckApp(runs_dir, services=fake_services(NOW))
    async with app.run_test(size=(80, 24)) as pilot:
        scr = await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.rows) == 5
                             and app.screen)
        table = scr.query_one(DataTable)
        await pilot.press("end")
        assert table.cursor_row == 4
        await pilot.press("home")
        assert table.cursor_row == 0
