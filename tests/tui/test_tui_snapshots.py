"""Snapshots of every screen at 80x24 and 120x40 (pytest-textual-snapshot).

Deterministic by construction: fixed run ids and times, a fake clock, fake machine stats and
doctor report, UTC (conftest), relative paths. Update after an intended change with
``pytest tests/tui/test_tui_snapshots.py --snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_fakes import T0, fake_services, make_run, training_events

from tunedeck.core.runs.rundir import RunLock
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.dashboard import DashboardScreen
from tunedeck.tui.screens.datasets import DatasetsScreen
from tunedeck.tui.screens.editor import EditorScreen
from tunedeck.tui.screens.environment import EnvironmentScreen
from tunedeck.tui.screens.runs import RunsScreen

NOW = T0 + 3600
SIZES = [(80, 24), (120, 40)]
SMS_LIKE = [("ham", "Go until jurong point, crazy.. Available only in bugis n great world la e buffet"),
            ("ham", "Ok lar... Joking wif u oni..."),
            ("spam", "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005. Text FA to 87121"),
            ("ham", "U dun say so early hor... U c already then say..."),
            ("ham", "Nah I don't think he goes to usf, he lives around here though"),
            ("spam", "WINNER!! As a valued network customer you have been selected to receive a prize"),
            ("ham", "Ok lar... Joking wif u oni..."),
            ("ham", "")] * 4


def until(cond):
    async def run_before(pilot) -> None:
        for _ in range(400):
            if cond(pilot.app):
                break
            await pilot.pause(0.05)
        else:
            raise AssertionError("screen not ready for its snapshot")
        # A blinking cursor would make the picture depend on the moment it is taken.
        for w in pilot.app.screen.query("Input, TextArea"):
            w.cursor_blink = False
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
    return run_before


@pytest.fixture
def live_runs(runs_dir: Path):
    make_run(runs_dir, "classify-20260101-000000-a1b2", state="finished", step=420, total=420, ended=T0 + 1260,
             best={"metric": "accuracy", "value": 0.9892, "step": 400})
    make_run(runs_dir, "smollm-20260101-001000-c3d4", state="running", step=40, total=100, started=T0 + 600,
             heartbeat=T0 + 700, events=training_events(40))  # nobody holds its lock: stale
    make_run(runs_dir, "sms-20260101-002000-e5f6", state="failed", step=10, total=300, started=T0 + 1200,
             message="CUDA out of memory; lower training.batch_size")
    make_run(runs_dir, "sms-20260101-003000-a7b8", state="stopped", step=150, total=300, started=T0 + 1800,
             heartbeat=T0 + 2000)
    live = make_run(runs_dir, "classify-20260101-004000-c9d0", state="running", step=60, total=100,
                    started=T0 + 2400, heartbeat=NOW - 1,
                    events=training_events(60), event_time=T0 + 2400)
    lock = RunLock(live)
    lock.acquire()
    yield runs_dir
    lock.release()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_runs_screen(snap_compare, live_runs: Path, size) -> None:
    app = TunedeckApp(live_runs, services=fake_services(NOW))
    assert snap_compare(app, terminal_size=size,
                        run_before=until(lambda a: isinstance(a.screen, RunsScreen) and a.screen.ready))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard_screen(snap_compare, live_runs: Path, size) -> None:
    app = TunedeckApp(live_runs, attach="classify-20260101-004000-c9d0", services=fake_services(NOW))
    assert snap_compare(app, terminal_size=size,
                        run_before=until(lambda a: isinstance(a.screen, DashboardScreen) and a.screen.ready))


def test_dashboard_stale_run(snap_compare, live_runs: Path) -> None:
    app = TunedeckApp(live_runs, attach="smollm", services=fake_services(NOW))
    assert snap_compare(app, terminal_size=(80, 24),
                        run_before=until(lambda a: isinstance(a.screen, DashboardScreen) and a.screen.ready))


@pytest.fixture
def sms_like(runs_dir: Path) -> Path:
    p = Path("SMSLike")
    p.write_text("Label\tSMS\n" + "".join(f"{a}\t{b}\n" for a, b in SMS_LIKE), encoding="utf-8")
    return p


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_datasets_screen(snap_compare, runs_dir: Path, sms_like: Path, size) -> None:
    app = TunedeckApp(runs_dir, browse=str(sms_like), services=fake_services(NOW))
    assert snap_compare(app, terminal_size=size, press=["down", "down"],
                        run_before=until(lambda a: isinstance(a.screen, DatasetsScreen) and a.screen.stats is not None))


def test_datasets_stats_tab(snap_compare, runs_dir: Path, sms_like: Path) -> None:
    app = TunedeckApp(runs_dir, browse=str(sms_like), services=fake_services(NOW))
    assert snap_compare(app, terminal_size=(80, 24), press=["i"],
                        run_before=until(lambda a: isinstance(a.screen, DatasetsScreen) and a.screen.stats is not None))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_editor_screen(snap_compare, runs_dir: Path, size) -> None:
    from tunedeck.core.profile import new_profile, save

    save(new_profile("classification"), Path("classify.toml"))
    app = TunedeckApp(runs_dir, profile="classify.toml", services=fake_services(NOW))
    assert snap_compare(app, terminal_size=size,
                        run_before=until(lambda a: isinstance(a.screen, EditorScreen) and a.screen.ready))


def test_editor_inline_error(snap_compare, runs_dir: Path) -> None:
    from tunedeck.core.profile import new_profile, save

    save(new_profile("classification"), Path("classify.toml"))
    app = TunedeckApp(runs_dir, profile="classify.toml", services=fake_services(NOW))
    assert snap_compare(app, terminal_size=(80, 24), press=["backspace", "x"],
                        run_before=until(lambda a: isinstance(a.screen, EditorScreen) and a.screen.ready))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_environment_screen(snap_compare, runs_dir: Path, size) -> None:
    app = TunedeckApp(runs_dir, start_screen="environment", services=fake_services(NOW))
    assert snap_compare(app, terminal_size=size,
                        run_before=until(lambda a: isinstance(a.screen, EnvironmentScreen) and a.screen.report is not None))
