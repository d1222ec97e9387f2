"""The dashboard shows the worker's GPU readings (status.json `gpus`): one entry per GPU when
they fit, one summary line for 8 at 80x24 (g lists each), on the machine-stats line so that
the plots keep their rows; none once the run has ended."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from tui_fakes import FakeWorker, fake_services, make_run, training_events
from tui_helpers import screen_text, wait_for

from tunedeck.core.runs.rundir import create_run
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.dashboard import DashboardScreen
from tunedeck.tui.screens.dialogs import MessageDialog

pytestmark = pytest.mark.anyio
SHOTS = os.environ.get("TUNEDECK_SHOTS")  # set to a folder to keep the screenshots


def reading(i: int) -> dict:
    return {"index": i, "name": "NVIDIA H200", "memory_used_mib": 42188.8 + 1024 * i,
            "memory_total_mib": 143155.2, "utilization_pct": 91 + i % 7, "temperature_c": 64 + i}


def live_services():
    s = fake_services()
    s.clock = time.time
    return s


async def open_live(runs_dir: Path, gpus: list | None):
    run = create_run(runs_dir, "live", 'name = "live"\n')
    worker = FakeWorker(run, total=100000, interval=0.05, finish=False).start()
    if gpus is not None:
        run.write_status(gpus=gpus)  # as the worker's heartbeat does (FakeWorker keeps it)
    return run, worker


async def dashboard(app, pilot) -> DashboardScreen:
    return await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen)
                          and app.screen.ready and app.screen.state == "running" and app.screen)


def plots_height(dash: DashboardScreen) -> int:
    return dash.query_one("#dash-plots").region.height


async def test_one_gpu_on_the_stats_line_plots_keep_their_rows(runs_dir: Path) -> None:
    heights = {}
    for label, gpus in (("cpu", None), ("gpu", [reading(0)])):
        run, worker = await open_live(runs_dir, gpus)
        try:
            app = TunedeckApp(runs_dir, attach=run.id, services=live_services())
            async with app.run_test(size=(80, 24)) as pilot:
                dash = await dashboard(app, pilot)
                if gpus:
                    await wait_for(pilot, lambda: "GPU0" in screen_text(app))
                    text = screen_text(app)
                    assert "GPU0 H200  41.2/139.8 GiB  91%  64°C  CPU 40%" in text, text
                    assert dash.check_action("gpus", ()) is True
                    if SHOTS:
                        app.save_screenshot("dashboard-1gpu-80x24.svg", SHOTS)
                else:
                    await pilot.pause(0.3)
                    assert "GPU" not in screen_text(app)
                    assert dash.check_action("gpus", ()) is False
                heights[label] = plots_height(dash)
        finally:
            worker.stop()
            run.path.rename(runs_dir.parent / f"done-{label}")  # the next run is the only one
    assert heights["gpu"] == heights["cpu"] > 0


async def test_eight_gpus_one_summary_line_and_g_lists_each(runs_dir: Path) -> None:
    run, worker = await open_live(runs_dir, [reading(i) for i in range(8)])
    try:
        app = TunedeckApp(runs_dir, attach=run.id, services=live_services())
        async with app.run_test(size=(80, 24)) as pilot:
            await dashboard(app, pilot)
            await wait_for(pilot, lambda: "8 GPUs" in screen_text(app))
            text = screen_text(app)
            # mean used (41.2 + 48.2) / 2 = 44.7 GiB, total 139.8; util mean of 91..97,91 = 94.
            assert "8 GPUs: mem 45/140 GiB avg, util 94% avg, max 71°C (g)" in text, text
            assert "GPU3" not in text
            if SHOTS:
                app.save_screenshot("dashboard-8gpus-80x24.svg", SHOTS)
            await pilot.press("g")
            await wait_for(pilot, lambda: isinstance(app.screen, MessageDialog))
            text = screen_text(app)
            for i in range(8):
                assert f"GPU{i} H200  {(42188.8 + 1024 * i) / 1024:.1f}/139.8 GiB  {91 + i % 7}%  {64 + i}°C" in text, text
            if SHOTS:
                app.save_screenshot("dashboard-8gpus-detail-80x24.svg", SHOTS)
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
    finally:
        worker.stop()


async def test_wide_terminal_shows_each_of_three(runs_dir: Path) -> None:
    run, worker = await open_live(runs_dir, [reading(i) for i in range(3)])
    try:
        app = TunedeckApp(runs_dir, attach=run.id, services=live_services())
        async with app.run_test(size=(160, 40)) as pilot:
            await dashboard(app, pilot)
            await wait_for(pilot, lambda: "GPU2" in screen_text(app))
            text = screen_text(app)
            assert "GPU0 H200  41.2/139.8 GiB  91%  64°C  GPU1 H200  42.2/139.8 GiB  92%  65°C" in text
            assert "GPUs:" not in text
    finally:
        worker.stop()


async def test_an_ended_run_shows_no_old_readings(runs_dir: Path) -> None:
    run = make_run(runs_dir, "a-20260101-000000-0001", state="finished", step=100, total=100,
                   events=training_events(100) + [("run_finished", {"metrics": {"accuracy": 0.9}})])
    run.write_status(gpus=[reading(0)])  # the worker's last reading stays in status.json
    app = TunedeckApp(runs_dir, attach=run.id, services=fake_services())
    async with app.run_test(size=(80, 24)) as pilot:
        dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen)
                              and app.screen.ready and app.screen)
        await wait_for(pilot, lambda: dash.state == "finished")
        assert "GPU0" not in screen_text(app)
        assert dash.check_action("gpus", ()) is False
