"""Fake run directories, a fake worker, fake services: the TUI tested without training."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any

from tunedeck.core.runs.events import EventWriter
from tunedeck.core.runs.lifecycle import StopResult
from tunedeck.core.runs.rundir import RunDir, RunLock
from tunedeck.tui.services import Services

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC: every fake time is relative to this


def fake_clock(now: float = T0 + 3600) -> Any:
    return lambda: now


def fake_sysinfo(pid: int | None = None) -> dict[str, Any]:
    return {"cpu_percent": 42.0, "ram_used_gb": 5.2, "ram_total_gb": 16.0, "gpus": []}


def fake_doctor() -> dict[str, Any]:
    return {
        "python": "3.11.7",
        "torch": "2.13.0+cpu",
        "cuda": None,
        "gpus": [],
        "disk_free_gb": 120.5,
        "offline": True,
        "problems": [{"what": "no CUDA GPU found", "fix": "training runs on the CPU; install a CUDA build of torch on a GPU box"}],
    }


class RecordingStop:
    """lifecycle.stop_run without the signal: files the same control request and records the
    call. (The fake runs' pid is this test process, or a made-up one: never signal it.)"""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, run: RunDir, wait_s: float = 0.0) -> StopResult:
        self.calls.append(run.id)
        run.request("stop")
        st = run.read_status()
        return StopResult(run.id, str(st.get("state")), int(st.get("step", 0) or 0),
                          st.get("total_steps"), "", requested=True, signalled=False,
                          still_active=True)


def fake_services(now: float = T0 + 3600, **kw: Any) -> Services:
    s = Services(clock=fake_clock(now), sysinfo=fake_sysinfo, doctor=fake_doctor,
                 start_run=kw.pop("start_run", _no_cli), resume_run=kw.pop("resume_run", _no_cli),
                 stop_run=kw.pop("stop_run", RecordingStop()),
                 events_poll_s=0.1, runs_poll_s=0.25, sys_poll_s=1.0)
    for k, v in kw.items():
        setattr(s, k, v)
    return s


def _no_cli(*a: Any) -> Any:
    raise AssertionError("the CLI must not be called in this test")


PROFILE = """schema_version = 1
name = "{name}"

[task]
type = "classification"

[data]
train = "/data/train.csv"
"""


def make_run(runs_dir: Path, run_id: str, *, state: str = "finished", step: int = 0, total: int = 100,
             started: float = T0, heartbeat: float | None = None, task: str = "classification",
             best: dict[str, Any] | None = None, message: str | None = None, events: list[tuple[str, dict[str, Any]]] | None = None,
             ended: float | None = None, event_time: float | None = None) -> RunDir:
    d = runs_dir / run_id
    d.mkdir(parents=True, exist_ok=True)
    name = run_id.rsplit("-", 3)[0]
    (d / "profile.toml").write_text(PROFILE.format(name=name), encoding="utf-8")
    run = RunDir(d)
    st: dict[str, Any] = {"pid": 999999, "host": __import__("socket").gethostname(), "state": state,
                          "heartbeat": heartbeat if heartbeat is not None else started + 60,
                          "step": step, "total_steps": total, "epoch": step / max(total, 1) * 3,
                          "name": name, "task": task, "started": started}
    if ended is not None:
        st["ended"] = ended
    if best:
        st["best"] = best
    if message:
        st["message"] = message
    from tunedeck.core.fsutil import atomic_write_json

    atomic_write_json(run.status_path, st)
    if events:
        write_events(run, events, event_time if event_time is not None else started)
    return run


def write_events(run: RunDir, events: list[tuple[str, dict[str, Any]]], t0: float, dt: float = 1.0) -> None:
    """Append events with deterministic times (seq continues)."""
    seq = 0
    if run.events_path.exists():
        for line in run.events_path.read_text().splitlines():
            try:
                seq = max(seq, json.loads(line)["seq"])
            except (ValueError, KeyError):
                pass
    with open(run.events_path, "a", encoding="utf-8") as f:
        for i, (typ, data) in enumerate(events):
            seq += 1
            f.write(json.dumps({"seq": seq, "time": t0 + i * dt, "type": typ, "data": data}) + "\n")


def training_events(steps: int = 100, total: int = 100, every: int = 10, eval_every: int = 50,
                    start_step: int = 0) -> list[tuple[str, dict[str, Any]]]:
    evs: list[tuple[str, dict[str, Any]]] = []
    if start_step == 0:
        evs.append(("run_started", {"profile": {"task": {"type": "classification"}}, "model_params": 4_400_000,
                                    "dataset_sizes": {"train": 4459, "validation": 557, "test": 558},
                                    "device": "cpu", "total_steps": total}))
    for s in range(start_step + every, start_step + steps + 1, every):
        loss = 0.7 * math.exp(-s / 40) + 0.05
        evs.append(("step", {"step": s, "total_steps": total, "epoch": s / total * 3, "loss": loss,
                             "lr": 5e-5 * min(1.0, s / 10) * (1 - s / total / 1.01), "grad_norm": 1.0 + 0.01 * s,
                             "tokens_per_s": 12000 + 10 * s, "samples_per_s": 90.0,
                             "elapsed_s": s * 0.5, "eta_s": (total - s) * 0.5}))
        if eval_every and s % eval_every == 0:
            evs.append(("eval", {"split": "validation", "step": s,
                                 "metrics": {"eval_loss": loss * 1.1, "accuracy": 0.8 + 0.15 * s / total,
                                             "f1_macro": 0.7 + 0.2 * s / total}}))
            evs.append(("checkpoint", {"step": s, "path": f"checkpoints/step-{s}"}))
    return evs


class FakeWorker:
    """A thread that behaves like a training worker: holds run.lock, heartbeats, emits events."""

    def __init__(self, run: RunDir, total: int = 50, interval: float = 0.05, finish: bool = True):
        self.run, self.total, self.interval, self.finish = run, total, interval, finish
        self.lock = RunLock(run)
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.step = 0
        self.requests: list[str] = []
        self.emitted: dict[int, float] = {}  # step -> when its event was written (monotonic)

    def start(self) -> "FakeWorker":
        self.lock.acquire()
        self.run.write_status(state="running", heartbeat=time.time(), pid=__import__("os").getpid(),
                              host=__import__("socket").gethostname(), step=0, total_steps=self.total,
                              started=time.time(), name="live", task="classification")
        self.events = EventWriter(self.run.events_path)
        self.events.emit("run_started", device="cpu", model_params=1234, total_steps=self.total,
                         dataset_sizes={"train": 80, "validation": 10, "test": 10}, profile={})
        self.thread.start()
        return self

    def _loop(self) -> None:
        try:
            while not self.stop_flag.is_set() and self.step < self.total:
                time.sleep(self.interval)
                self.step += 1
                for req in self.run.take_requests():
                    self.requests.append(req)
                    if req == "stop":
                        self.events.emit("run_stopped", step=self.step)
                        self.run.write_status(state="stopped", step=self.step, ended=time.time())
                        return
                self.emitted[self.step] = time.monotonic()
                self.events.emit("step", step=self.step, total_steps=self.total, loss=1.0 / self.step,
                                 lr=1e-4, tokens_per_s=1000.0, epoch=self.step / self.total, elapsed_s=self.step * 0.05,
                                 eta_s=(self.total - self.step) * 0.05)
                self.run.write_status(state="running", heartbeat=time.time(), step=self.step)
            if self.finish and self.step >= self.total:
                self.events.emit("run_finished", metrics={"accuracy": 0.9})
                self.run.write_status(state="finished", ended=time.time())
        finally:
            self.events.close()
            self.lock.release()

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(5)
