"""Per-GPU memory, utilisation and temperature through nvidia-ml-py (``import pynvml``).

Torch-free and cheap: NVML is initialised once per process and the device handles are kept, so
a sample is a handful of driver calls (the worker takes one every few seconds). It never raises:
nvidia-ml-py is optional (``pip install 'tunedeck[gpu]'``), and no library, no driver or no GPU
gives ``[]``; an NVML failure gives ``[]`` and one line on stderr (worker.log), once.

Which GPUs: those this process may use. With ``CUDA_VISIBLE_DEVICES`` set (a search trial on
one GPU) only those, else every GPU of the machine (a distributed run's rank 0 reports them
all). ``index`` is NVML's index, the number ``nvidia-smi`` shows.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

MIB = 1 << 20
# NVML_TEMPERATURE_GPU: the die sensor (the constant is 0 in every nvidia-ml-py).
TEMPERATURE_GPU_SENSOR = 0


class _Nvml:
    """The library and the handles of the GPUs to report, found on first use."""

    def __init__(self) -> None:
        self.lib: Any = None
        self.handles: list[tuple[int, str, Any]] = []  # (NVML index, name, handle)
        self.tried = False
        self.logged = False
        self.lock = threading.Lock()

    def load(self) -> bool:
        if self.tried:
            return self.lib is not None
        self.tried = True
        try:
            import pynvml  # nvidia-ml-py; optional
        except Exception:  # not installed (a CPU machine, or no [gpu] extra): nothing to report
            return False
        try:
            pynvml.nvmlInit()
            self.handles = _visible_handles(pynvml, os.environ.get("CUDA_VISIBLE_DEVICES"))
        except Exception as e:  # no driver (a CPU box with the extra installed) or a broken one
            self.log_once(e)
            return False
        self.lib = pynvml
        return True

    def log_once(self, err: BaseException) -> None:
        if not self.logged:
            self.logged = True
            print(f"tunedeck: GPU stats unavailable (nvidia-ml-py: {type(err).__name__}: {err}); "
                  "the dashboard shows no GPU line", file=sys.stderr, flush=True)


_NVML = _Nvml()


def _visible_handles(nv: Any, visible: str | None) -> list[tuple[int, str, Any]]:
    """(index, name, handle) of every GPU, narrowed to CUDA_VISIBLE_DEVICES when it names
    indices or UUIDs (an empty value: no GPU; a form we cannot read, e.g. MIG: all)."""
    devices = []
    for i in range(int(nv.nvmlDeviceGetCount())):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        name = nv.nvmlDeviceGetName(h)
        devices.append((i, name.decode() if isinstance(name, bytes) else str(name), h))
    if visible is None:
        return devices
    wanted = [v.strip() for v in visible.split(",") if v.strip()]
    if not wanted:
        return []
    if all(w.isdigit() for w in wanted):
        by_index = {i: d for i, _, d in devices}
        return [(int(w), _name_of(devices, int(w)), by_index[int(w)]) for w in wanted
                if int(w) in by_index]
    if all(w.startswith("GPU-") for w in wanted):
        def uuid(h: Any) -> str:
            u = nv.nvmlDeviceGetUUID(h)
            return u.decode() if isinstance(u, bytes) else str(u)
        return [d for d in devices if any(uuid(d[2]).startswith(w) for w in wanted)]
    return devices


def _name_of(devices: list[tuple[int, str, Any]], index: int) -> str:
    return next(n for i, n, _ in devices if i == index)


def _reading(read: Any) -> Any:
    """One reading, or None: MIG slices and some boards answer NotSupported for one value
    (utilisation, temperature) and not the others; one missing value must not hide the GPU."""
    try:
        return read()
    except Exception:
        return None


def _sample_one(nv: Any, index: int, name: str, h: Any) -> dict[str, Any]:
    mem = _reading(lambda: nv.nvmlDeviceGetMemoryInfo(h))
    util = _reading(lambda: nv.nvmlDeviceGetUtilizationRates(h).gpu)
    temp = _reading(lambda: nv.nvmlDeviceGetTemperature(h, TEMPERATURE_GPU_SENSOR))
    return {"index": index, "name": name,
            "memory_used_mib": round(mem.used / MIB, 1) if mem is not None else None,
            "memory_total_mib": round(mem.total / MIB, 1) if mem is not None else None,
            "utilization_pct": int(util) if util is not None else None,
            "temperature_c": int(temp) if temp is not None else None}


def gpu_stats() -> list[dict[str, Any]]:
    """[{index, name, memory_used_mib, memory_total_mib, utilization_pct, temperature_c}], one
    per GPU this process may use; [] without nvidia-ml-py, a driver or a GPU. Never raises."""
    with _NVML.lock:
        try:
            if not _NVML.load():
                return []
            return [_sample_one(_NVML.lib, i, n, h) for i, n, h in _NVML.handles]
        except Exception as e:  # e.g. the driver went away (GPU fell off the bus)
            _NVML.log_once(e)
            return []


def reset_for_tests() -> None:
    """Forget the library and handles (tests inject a different pynvml)."""
    global _NVML
    _NVML = _Nvml()
