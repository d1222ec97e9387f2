"""The environment screen (the doctor report) from every screen, and its failure mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_helpers import screen_text, wait_for
from tui_fakes import fake_services, make_run

from tunedeck.core.errors import UserError
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.environment import EnvironmentScreen, render_report

pytestmark = pytest.mark.anyio


async def test_f2_opens_the_report_from_every_screen(runs_dir: Path) -> None:
    make_run(runs_dir, "a-20260101-000000-0001", state="finished")
    Path("d.csv").write_text("text,label\na,b\n")
    app = TunedeckApp(runs_dir, services=fake_services())
    async with app.run_test() as pilot:
        for opener in (lambda: None, lambda: app.open_dashboard(runs_dir / "a-20260101-000000-0001"),
                       lambda: app.open_dataset(Path("d.csv")), lambda: app.open_editor()):
            opener()
            await pilot.pause(0.3)
            under = app.screen
            await pilot.press("f2")
            env = await wait_for(pilot, lambda: isinstance(app.screen, EnvironmentScreen) and app.screen.ready and app.screen)
            await wait_for(pilot, lambda: env.report is not None)
            await pilot.pause()
            text = screen_text(app)
            assert "no CUDA GPU found" in text and "2.13.0+cpu" in text
            await pilot.press("escape")
            assert app.screen is under


async def test_doctor_failure_is_shown_not_raised(runs_dir: Path) -> None:
    def broken() -> dict:
        raise UserError("the tunedeck CLI (tunedeck.core.cli) is not installed in this Python environment")

    app = TunedeckApp(runs_dir, start_screen="environment", services=fake_services(doctor=broken))
    async with app.run_test() as pilot:
        env = await wait_for(pilot, lambda: isinstance(app.screen, EnvironmentScreen) and app.screen.ready and app.screen)
        await wait_for(pilot, lambda: env.error is not None)
        assert "not installed" in str(env.query_one("#env-report").render())
        assert "This TUI process" in str(env.query_one("#env-local").render())


def test_unknown_keys_are_rendered_generically() -> None:
    from rich.console import Console

    console = Console(width=100, record=True, file=open("/dev/null", "w"))
    console.print(render_report({"python": "3.12", "gpus": [{"name": "H100", "memory_gb": 80, "bf16": True}],
                                 "hf_home": "/cache", "problems": []}))
    t = console.export_text()
    assert "H100 · 80 GB · bf16 ✓" in t and "Hf home" in t and "no problems" in t
