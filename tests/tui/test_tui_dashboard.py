"""The dashboard: attach to a live run (a fake worker thread writing events, holding run.lock),
replay history, control keys, run end, resume, stale runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tui_helpers import wait_for
from tui_fakes import T0, FakeWorker, fake_services, make_run, training_events, write_events

from tunedeck.core.runs.events import Event
from tunedeck.core.runs.rundir import RunDir, RunLock, create_run
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.dashboard import DashboardScreen, RunView
from tunedeck.tui.screens.dialogs import ConfirmDialog

PROFILE = 'name = "live"\n'

pytestmark = pytest.mark.anyio


def live_services():
    s = fake_services()
    s.clock = time.time
    return s


async def test_attach_follows_a_live_run_to_its_end(runs_dir: Path) -> None:
    run = create_run(runs_dir, "live", PROFILE)
    worker = FakeWorker(run, total=30, interval=0.05).start()
    try:
        app = TunedeckApp(runs_dir, attach=run.id, services=live_services())
        async with app.run_test(size=(80, 24)) as pilot:
            dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready and app.screen)
            await wait_for(pilot, lambda: dash.view.step >= 5 and dash.state == "running")
            # Events show within a second of being written (poll 0.1 s here, 0.25 s by default).
            target = worker.step + 3
            await wait_for(pilot, lambda: dash.view.step >= target, timeout=30, step=0.01)
            seen = time.monotonic()
            assert seen - worker.emitted[target] < 1.0
            assert dash.view.loss.xs[-1] == dash.view.step
            await wait_for(pilot, lambda: dash.state == "finished", timeout=30)
            assert dash.view.step == 30
            assert "run finished" in "\n".join(line.plain for line in dash.view.lines)
    finally:
        worker.stop()


async def test_control_keys_reach_the_worker(runs_dir: Path) -> None:
    run = create_run(runs_dir, "live", PROFILE)
    worker = FakeWorker(run, total=100000, interval=0.05, finish=False).start()
    try:
        services = live_services()
        app = TunedeckApp(runs_dir, attach=run.id, services=services)
        async with app.run_test() as pilot:
            dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready and app.screen)
            await wait_for(pilot, lambda: dash.state == "running")
            await pilot.press("k", "e")
            await wait_for(pilot, lambda: worker.requests[:2] == ["checkpoint", "evaluate"])
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            await pilot.press("y")
            await wait_for(pilot, lambda: dash.state == "stopped", timeout=30)
            assert services.stop_run.calls == [run.id]  # lifecycle.stop_run: request + signal
            assert "run stopped" in "\n".join(line.plain for line in dash.view.lines)
    finally:
        worker.stop()


async def test_reattach_replays_the_whole_history(runs_dir: Path) -> None:
    run = make_run(runs_dir, "a-20260101-000000-0001", state="finished", step=100, total=100,
                   events=training_events(100) + [("run_finished", {"metrics": {"accuracy": 0.97}})], ended=T0 + 200)
    app = TunedeckApp(runs_dir, attach="a-2026", services=fake_services())
    async with app.run_test() as pilot:
        dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready and app.screen)
        v = dash.view
        assert v.step == 100 and v.total == 100
        assert v.loss.xs == [float(s) for s in range(10, 101, 10)]
        assert v.eval_loss.xs == [50.0, 100.0] and v.metric_name == "accuracy"
        assert dash.state == "finished"
        # keys that make no sense for a finished run are hidden
        assert dash.check_action("stop", ()) is False and dash.check_action("resume", ()) is False


async def test_the_untrained_baseline_is_not_shown_as_best(runs_dir: Path) -> None:
    """Only the step-0 evaluation so far: the stats line says no best yet (no "@ None")."""
    baseline = ("eval", {"split": "validation", "step": 0,
                         "metrics": {"eval_loss": 1.39, "accuracy": 0.19, "f1_macro": 0.14}})
    evs = training_events(20, eval_every=0)
    make_run(runs_dir, "a-20260101-000000-0001", state="stopped", step=20, total=100,
             best={"metric": "f1_macro", "value": None, "step": None},
             events=evs[:1] + [baseline] + evs[1:], ended=T0 + 50)
    app = TunedeckApp(runs_dir, attach="a-2026", services=fake_services())
    async with app.run_test() as pilot:
        dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready and app.screen)
        assert dash.view.eval_loss.xs == [0.0] and dash.view.best is None
        stats = str(dash.query_one("#dash-stats").render())
        assert "None" not in stats and "best" not in stats


async def test_stale_run_shows_a_visible_warning(runs_dir: Path) -> None:
    make_run(runs_dir, "a-20260101-000000-0001", state="running", step=40, heartbeat=T0 + 100,
             events=training_events(40))
    app = TunedeckApp(runs_dir, attach="a-2026", services=fake_services(T0 + 3600))
    async with app.run_test() as pilot:
        dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready and app.screen)
        banner = dash.query_one("#stale-banner")
        assert banner.display
        assert "STALE" in str(banner.render())
        assert dash.state == "failed" and dash.stale
        assert "ETA" not in str(dash.query_one("#dash-progress-text").render())  # nothing is running


async def test_heartbeat_stale_while_lock_held(runs_dir: Path) -> None:
    run = make_run(runs_dir, "a-20260101-000000-0001", state="running", heartbeat=T0, events=training_events(20))
    lock = RunLock(run)
    lock.acquire()
    try:
        app = TunedeckApp(runs_dir, attach=run.id, services=fake_services(T0 + 600))
        async with app.run_test() as pilot:
            dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready and app.screen)
            assert dash.stale and "heartbeat stale" in dash.reason
    finally:
        lock.release()


async def test_survives_failure_then_resume(runs_dir: Path) -> None:
    run = make_run(runs_dir, "a-20260101-000000-0001", state="failed", step=30, message="boom",
                   events=training_events(30) + [("run_failed", {"error": "boom"})])
    app = TunedeckApp(runs_dir, attach=run.id, services=fake_services(T0 + 40))
    async with app.run_test() as pilot:
        dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready and app.screen)
        assert dash.state == "failed" and dash.view.error == "boom"
        # The run is resumed (by the CLI, elsewhere) from its step-20 checkpoint.
        run.write_status(state="running", heartbeat=T0 + 40)
        lock = RunLock(run)
        lock.acquire()
        try:
            write_events(run, [("run_resumed", {"step": 20})] + training_events(20, start_step=20, eval_every=0), T0 + 35)
            await wait_for(pilot, lambda: dash.view.step == 40)
            await wait_for(pilot, lambda: dash.state == "running")
            assert dash.view.loss.xs == [10.0, 20.0, 30.0, 40.0]
        finally:
            lock.release()


def test_run_view_ignores_unknown_events_and_odd_payloads() -> None:
    v = RunView()
    assert v.apply(Event(1, T0, "mystery", {"x": 1})) is None
    v.apply(Event(2, T0, "step", {"step": "oops", "loss": None}))
    v.apply(Event(3, T0, "eval", {"metrics": "nope"}))
    v.apply(Event(4, T0, "run_diverged", {"step": 5, "message": "loss is nan"}))
    assert v.event_state == "diverged" and v.error == "loss is nan"
    _ = RunDir


async def test_garbage_in_the_run_directory_is_survived(runs_dir: Path) -> None:
    d = runs_dir / "junk-20260101-000000-0001"
    d.mkdir()
    (d / "profile.toml").write_text('name = "junk"\n')
    (d / "status.json").write_text('{"state": "running", "heartbeat": "soon", "best": 3, "pid": "x", "step": "two"}')
    (d / "events.jsonl").write_bytes(
        b'not json\n{"seq": 1, "time": 1, "type": "step", "data": {"step": "x", "loss": "nan"}}\n'
        b'{"seq": 2, "time": 2, "type": "eval", "data": {"metrics": [1, 2]}}\n'
        b'{"seq": 3, "time": 3, "type": "run_started", "data": {"dataset_sizes": 5, "model_params": "big"}}\n'
        b'\xff\xfe\n{"seq": 4, "time": 4, "type": "step", "data": {"step": 5, "loss": 0.5, "mfu": "hi"}}\n'
        b'{"seq": 5, "time": 5, "type": "log", "data": {"level": 7, "message": null}}\n{"partial": ')
    app = TunedeckApp(runs_dir, services=fake_services())
    async with app.run_test() as pilot:
        await pilot.pause()
        assert [r.summary.id for r in app.screen.rows] == [d.name]
        await pilot.press("enter")
        dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready and app.screen)
        await pilot.pause(0.3)
        assert dash.view.step == 5 and dash.state == "failed"


async def test_remote_code_is_flagged(runs_dir: Path) -> None:
    """A run whose profile allows the model repository's own code says so in the header."""
    from tui_helpers import screen_text

    start = ("run_started", {"task": "classification", "device": "cpu", "model_params": 1000,
                             "total_steps": 10, "trust_remote_code": True})
    make_run(runs_dir, "rc-20260101-000000-0001", state="finished", step=10, total=10,
             events=[start] + training_events(10, total=10, every=5)[1:], ended=T0 + 20)
    app = TunedeckApp(runs_dir, attach="rc-2026", services=fake_services())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready)
        await wait_for(pilot, lambda: "remote code ON" in screen_text(app))


async def test_results_key_shows_per_class_scores_and_confusions(runs_dir: Path) -> None:
    import json

    from tunedeck.tui.screens.dialogs import MessageDialog

    run = make_run(runs_dir, "a-20260101-000000-0001", state="finished", step=100, total=100,
                   events=training_events(100) + [("run_finished", {"metrics": {"accuracy": 0.9}})],
                   ended=T0 + 200)
    metrics = {"split": "test", "accuracy": 0.9, "f1_macro": 0.85, "eval_loss": 0.3, "steps": 100,
               "weights_step": 50, "best": {"metric": "f1_macro", "value": 0.88, "step": 50},
               "per_class": {"ham": {"precision": 0.95, "recall": 0.93, "f1": 0.94, "support": 80},
                             "spam": {"precision": 0.7, "recall": 0.8, "f1": 0.75, "support": 20}},
               "confusion_matrix": {"labels": ["ham", "spam"], "matrix": [[74, 6], [4, 16]]}}
    run.metrics_path.write_text(json.dumps(metrics))
    app = TunedeckApp(runs_dir, attach="a-2026", services=fake_services())
    async with app.run_test(size=(80, 24)) as pilot:
        dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready and app.screen)
        assert dash.check_action("results", ()) is True
        await pilot.press("m")
        dlg = await wait_for(pilot, lambda: isinstance(app.screen, MessageDialog) and app.screen)
        shown = str(dlg.query_one("#message").render())
        assert "weights of step 50" in shown and "confusion matrix" in shown
        assert "6 × ham taken for spam" in shown and "4 × spam taken for ham" in shown
        assert shown.index("6 × ham") < shown.index("4 × spam")  # most frequent first

    from tunedeck.tui.results import render_results

    wide = render_results({"confusion_matrix": {"labels": ["account", "billing"],
                                                "matrix": [[28, 2], [0, 46]]}}).plain
    assert " account billing" in wide  # the headings do not run together
