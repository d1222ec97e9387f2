"""core/runs/protocol.py: states and end events as data, and the one event formatter that
`tunedeck logs`, the CLI's progress lines and the dashboard share."""

from __future__ import annotations

from tunedeck.core.runs import protocol
from tunedeck.core.runs.events import Event, EventWriter
from tunedeck.core.runs.rundir import RunDir


def ev(type_: str, **data) -> Event:
    return Event(3, 1_767_225_600.0, type_, data)


def test_every_end_event_maps_to_a_final_state_and_back():
    assert set(protocol.END_EVENT_STATES.values()) == set(protocol.FINAL_STATES)
    assert set(protocol.END_EVENT_STATES) | set(protocol.BEGIN_EVENTS) <= set(protocol.EVENT_TYPES)
    assert protocol.state_after_event("run_stopped") == "stopped"
    assert protocol.state_after_event("step") is None
    assert not set(protocol.ACTIVE_STATES) & set(protocol.FINAL_STATES)
    assert protocol.can_resume("stopped") and protocol.can_resume("failed")
    assert not protocol.can_resume("finished") and not protocol.can_resume("running")


def test_the_event_log_end_uses_the_protocol(tmp_path):
    run = RunDir(tmp_path)
    w = EventWriter(run.events_path)
    w.emit("run_started")
    w.emit("run_diverged", step=3, message="nan")
    assert run.ended_by_events() == "diverged"
    w.emit("run_resumed", step=2)
    w.close()
    assert run.ended_by_events() is None


def test_descriptions():
    d = protocol.describe_event
    assert d(ev("step", step=40, total_steps=100, loss=0.31, lr=1e-4, tokens_per_s=12100.0)) == \
        "step 40/100  loss 0.31  lr 1.00e-04  12.1k tok/s"
    assert d(ev("eval", split="validation", step=50,
                metrics={"eval_loss": 0.2756, "accuracy": 0.875})) == \
        "eval (validation) @ step 50: loss 0.2756  acc 0.875"
    assert d(ev("run_stopped", step=12)) == "run stopped at step 12"
    assert d(ev("run_failed", error="CUDA out of memory")) == "run failed: CUDA out of memory"
    assert d(ev("checkpoint", step=5, path="/r/x/checkpoints/step-5")) == \
        "checkpoint @ step 5: checkpoints/step-5"
    assert d(ev("log", level="WARNING", message="hi")) == "warning: hi"
    assert d(ev("something_new", x=1)) is None  # unknown types: the reader decides


def test_logs_progress_and_dashboard_say_the_same(capsys):
    from tunedeck.core.cli.run_commands import _progress_printer
    from tunedeck.tui.screens.dashboard import RunView

    e = ev("run_stopped", step=12)
    words = protocol.describe_event(e)
    assert protocol.format_event_line(e).endswith(f"run_stopped  {words}")
    _progress_printer(e)
    assert capsys.readouterr().out.strip() == words
    assert words in RunView().apply(e).plain
    assert protocol.format_event_line(ev("something_new", x=1, nested={"a": 1})).endswith(
        "something_new x=1")
