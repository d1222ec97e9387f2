"""gpu_stats over nvidia-ml-py (a fake pynvml module, our real code path), without it, and the
worker writing its samples into status.json as `gpus`."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from tdhelpers import tiny_cls_profile
from tunedeck.core.runs import gpu_stats as G

MIB = 1 << 20


class FakeNvmlError(Exception):
    pass


def fake_pynvml(boards: list[dict], init_error: bool = False, not_supported: tuple = ()):
    """A stand-in for nvidia-ml-py with the calls gpu_stats makes; counts init/handle calls."""
    m = types.ModuleType("pynvml")
    m.calls = {"init": 0, "handle": 0}

    def init():
        m.calls["init"] += 1
        if init_error:
            raise FakeNvmlError("NVML Shared Library Not Found")

    def handle(i):
        m.calls["handle"] += 1
        return boards[i]

    def maybe(what, h, value):
        if what in not_supported or h.get("gone"):
            raise FakeNvmlError("Not Supported")
        return value

    m.nvmlInit = init
    m.nvmlDeviceGetCount = lambda: len(boards)
    m.nvmlDeviceGetHandleByIndex = handle
    m.nvmlDeviceGetName = lambda h: h["name"].encode()  # older nvidia-ml-py: bytes
    m.nvmlDeviceGetUUID = lambda h: h["uuid"]
    m.nvmlDeviceGetMemoryInfo = lambda h: maybe("mem", h, types.SimpleNamespace(
        used=h["used"] * MIB, total=h["total"] * MIB, free=(h["total"] - h["used"]) * MIB))
    m.nvmlDeviceGetUtilizationRates = lambda h: maybe("util", h, types.SimpleNamespace(gpu=h["util"], memory=3))
    m.nvmlDeviceGetTemperature = lambda h, sensor: maybe("temp", h, h["temp"] if sensor == 0 else -1)
    return m


def board(i: int, **kw) -> dict:
    b = {"name": "NVIDIA H200", "uuid": f"GPU-aaaa{i}", "used": 42188.5 + i, "total": 143771.0,
         "util": 90 + i, "temp": 60 + i}
    b.update(kw)
    return b


@pytest.fixture
def nvml(monkeypatch):
    """Install a fake pynvml; gpu_stats starts afresh (it caches the library and handles)."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    G.reset_for_tests()

    def install(mod):
        monkeypatch.setitem(sys.modules, "pynvml", mod)
        return mod
    yield install
    G.reset_for_tests()


def test_reads_every_gpu_once_initialised(nvml):
    lib = nvml(fake_pynvml([board(0), board(1)]))
    first = G.gpu_stats()
    assert first == [
        {"index": 0, "name": "NVIDIA H200", "memory_used_mib": 42188.5, "memory_total_mib": 143771.0,
         "utilization_pct": 90, "temperature_c": 60},
        {"index": 1, "name": "NVIDIA H200", "memory_used_mib": 42189.5, "memory_total_mib": 143771.0,
         "utilization_pct": 91, "temperature_c": 61}]
    lib.calls["init"] = lib.calls["handle"] = 0
    for b in (lib.nvmlDeviceGetHandleByIndex(0), lib.nvmlDeviceGetHandleByIndex(1)):
        b["util"] = 12
    lib.calls["handle"] = 0
    again = G.gpu_stats()
    # Cheap: no second nvmlInit and no handle look-ups, yet fresh readings.
    assert lib.calls == {"init": 0, "handle": 0}
    assert [g["utilization_pct"] for g in again] == [12, 12]


def test_one_unsupported_reading_keeps_the_gpu(nvml):
    nvml(fake_pynvml([board(0)], not_supported=("util", "temp")))
    (g,) = G.gpu_stats()
    assert g["utilization_pct"] is None and g["temperature_c"] is None
    assert g["memory_used_mib"] == 42188.5


def test_cuda_visible_devices_narrows_the_list(nvml, monkeypatch):
    nvml(fake_pynvml([board(i) for i in range(4)]))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert [g["index"] for g in G.gpu_stats()] == [3, 1]
    G.reset_for_tests()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa2")
    assert [g["index"] for g in G.gpu_stats()] == [2]
    G.reset_for_tests()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert G.gpu_stats() == []


def test_nvml_init_error_gives_empty_and_one_log_line(nvml, capsys):
    nvml(fake_pynvml([board(0)], init_error=True))
    assert G.gpu_stats() == [] and G.gpu_stats() == []
    err = capsys.readouterr().err
    assert err.count("GPU stats unavailable") == 1 and "NVML Shared Library Not Found" in err


def test_error_after_init_gives_empty_and_logs_once(nvml, capsys):
    lib = nvml(fake_pynvml([board(0)]))
    assert len(G.gpu_stats()) == 1

    def boom(*a):
        raise FakeNvmlError("GPU is lost")
    lib.nvmlDeviceGetUtilizationRates = boom  # per reading: that value is None, GPU kept
    assert G.gpu_stats()[0]["utilization_pct"] is None
    G._NVML.handles = None  # anything unexpected in the sampling itself: [] and one line
    assert G.gpu_stats() == [] and G.gpu_stats() == []
    assert capsys.readouterr().err.count("GPU stats unavailable") == 1


def test_without_nvidia_ml_py_nothing_and_no_noise(nvml, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    assert G.gpu_stats() == []
    assert capsys.readouterr().err == ""


def test_heartbeat_on_a_cpu_machine_writes_no_gpus(tmp_path, nvml, monkeypatch):
    from tunedeck.core.runs.rundir import create_run
    from tunedeck.core.runs.worker import Heartbeat

    monkeypatch.setitem(sys.modules, "pynvml", None)
    run = create_run(tmp_path / "runs", "cpu", "name = 'cpu'\n")
    hb = Heartbeat(run)
    hb.sample_gpus()
    hb.write(step=3)
    st = json.loads(run.status_path.read_text())
    assert st["step"] == 3 and "gpus" not in st


def test_worker_writes_gpus_into_status_json(tmp_path, cls_csv, monkeypatch, capsys):
    """A real tiny training run in this process; the heartbeat samples (a faked) gpu_stats."""
    from tunedeck.core.cli import main
    from tunedeck.core.runs import worker

    samples = []

    def fake_gpu_stats():
        g = {"index": 0, "name": "NVIDIA H200", "memory_used_mib": 1000.0 + len(samples),
             "memory_total_mib": 143771.0, "utilization_pct": 97, "temperature_c": 64}
        samples.append(g)
        return [g]
    monkeypatch.setattr(worker, "gpu_stats", fake_gpu_stats)
    monkeypatch.setattr(worker, "HEARTBEAT_S", 0.02)
    monkeypatch.setattr(worker, "GPU_SAMPLE_S", 0.2)
    prof = tiny_cls_profile(tmp_path, cls_csv, epochs=4)
    assert main(["train", str(prof)]) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    st = json.loads((run_dir / "status.json").read_text())
    assert st["state"] == "finished"
    assert samples, "the heartbeat never sampled the GPUs"
    assert st["gpus"] == [samples[-1]]  # the newest sample, as gpu_stats returned it


def test_the_tui_reads_this_machines_gpus_through_the_same_function(monkeypatch):
    """The TUI's own machine line (no worker readings yet) takes gpu_stats' readings and shows
    them like the worker's: one reader of NVML, one way to print a GPU."""
    from tunedeck.tui.screens.dashboard_text import sys_line
    from tunedeck.tui.services import SysInfo

    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([board(0)]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    G.reset_for_tests()
    try:
        s = SysInfo()()
    finally:
        G.reset_for_tests()
    assert s["gpus"] == [{"index": 0, "name": "NVIDIA H200", "memory_used_mib": 42188.5,
                          "memory_total_mib": 143771.0, "utilization_pct": 90,
                          "temperature_c": 60}]
    line = sys_line(s, None, 80).plain
    assert line.startswith("GPU0 H200  41.2/140.4 GiB  90%  60°C"), line
