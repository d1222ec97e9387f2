"""``tunedeck doctor``: what the guide's environment section asks a user to check, with fixes.

Python, torch and CUDA versions, each GPU with memory and bf16 support, free disk where runs go,
whether offline mode is set or the hub is unreachable.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

from tunedeck.core.models import hub_offline, hub_reachable


def report(runs_dir: Path, check_hub: bool = True) -> dict[str, Any]:
    problems: list[dict[str, str]] = []
    rep: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    if sys.version_info < (3, 11):
        problems.append({"what": f"Python {rep['python']} is too old",
                         "fix": "use Python 3.11 or newer (e.g. a venv from pyenv/uv)"})
    _check_torch_and_gpus(rep, problems)
    rep["compile"] = _compile_default(rep)
    _check_libraries(rep, problems)
    _check_disk(rep, problems, runs_dir)
    _check_hub(rep, problems, check_hub)
    try:
        from tunedeck.core.models import packaged_model_dir

        pk = packaged_model_dir("sentence-transformers/all-MiniLM-L6-v2")
        rep["packaged_minilm"] = str(pk) if pk else None
    except Exception:  # pragma: no cover
        rep["packaged_minilm"] = None
    rep["problems"] = problems
    return rep


def _check_torch_and_gpus(rep: dict[str, Any], problems: list[dict[str, str]]) -> None:
    try:
        import torch
    except ImportError:
        rep["torch"] = None
        problems.append({"what": "torch is not installed", "fix": "pip install 'torch>=2.4'"})
        return
    rep["torch"] = torch.__version__
    rep["cuda"] = torch.version.cuda
    rep["cuda_available"] = torch.cuda.is_available()
    gpus = [_gpu(torch, i, problems) for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []
    rep["gpus"] = gpus
    if not gpus:
        problems.append({"what": "no CUDA GPU visible: training runs on the CPU (slow)",
                         "fix": "check nvidia-smi, the driver, CUDA_VISIBLE_DEVICES, and that "
                                "torch is a CUDA build (pip install torch --index-url "
                                "https://download.pytorch.org/whl/cu128)"})
    elif not all(g["bf16"] for g in gpus):
        problems.append({"what": "a GPU without bf16: precision 'auto' uses fp32 there",
                         "fix": "set training.precision = 'fp16' for speed (with loss scaling)"})


def _compile_default(rep: dict[str, Any]) -> str | None:
    """What training.compile = "auto" does on this machine, and why."""
    if rep.get("torch") is None:
        return None
    from tunedeck.core.engine.compile_shapes import AUTO_MIN_STEPS, resolve_compile

    if rep.get("gpus"):
        return (f"auto = on for runs of {AUTO_MIN_STEPS}+ steps, off for shorter ones (the "
                "compile takes minutes; bounded batch shapes: a few graphs per run)")
    choice = resolve_compile("auto", "cpu", AUTO_MIN_STEPS)
    return f"auto = {'on' if choice.on else 'off'} on this CPU: {choice.reason}"


def _gpu(torch: Any, i: int, problems: list[dict[str, str]]) -> dict[str, Any]:
    prop = torch.cuda.get_device_properties(i)
    try:
        free, total = torch.cuda.mem_get_info(i)
    except RuntimeError as e:  # exclusive-process mode with a busy GPU, a MIG slice
        free, total = 0, prop.total_memory
        problems.append({"what": f"GPU {i} ({prop.name}) cannot be opened here: "
                                 f"{str(e).splitlines()[0][:160]}",
                         "fix": "check nvidia-smi for the process holding it, or pick "
                                "another GPU with CUDA_VISIBLE_DEVICES"})
    return {"index": i, "name": prop.name, "memory_gb": round(total / 2**30, 1),
            "free_gb": round(free / 2**30, 1), "bf16": bool(prop.major >= 8),
            "compute_capability": f"{prop.major}.{prop.minor}", **_nvml(i)}


def _nvml(i: int) -> dict[str, Any]:
    """Utilisation and temperature from nvidia-ml-py when it is installed (optional).
    Index i is torch's (CUDA_VISIBLE_DEVICES order); NVML numbers every GPU of the box."""
    try:
        import pynvml

        pynvml.nvmlInit()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = [s for s in (visible or "").split(",") if s.strip().isdigit()]
        h = pynvml.nvmlDeviceGetHandleByIndex(int(ids[i]) if i < len(ids) else i)
        return {"utilization_pct": int(pynvml.nvmlDeviceGetUtilizationRates(h).gpu),
                "temperature_c": int(pynvml.nvmlDeviceGetTemperature(h, 0))}
    except Exception:  # not installed, no driver, a MIG slice: the torch facts stand alone
        return {}


def _check_libraries(rep: dict[str, Any], problems: list[dict[str, str]]) -> None:
    for mod in ("transformers", "datasets", "accelerate", "textual", "peft"):
        try:
            rep[mod] = __import__(mod).__version__
        except ImportError:
            rep[mod] = None
            problems.append({"what": f"{mod} is not installed", "fix": f"pip install {mod}"})
    # QLoRA only ([quantization] bits): CUDA-only, so its absence is no problem by itself.
    import importlib.metadata

    try:
        rep["bitsandbytes"] = importlib.metadata.version("bitsandbytes")
    except importlib.metadata.PackageNotFoundError:
        rep["bitsandbytes"] = None


def _check_disk(rep: dict[str, Any], problems: list[dict[str, str]], runs_dir: Path) -> None:
    target = runs_dir if runs_dir.exists() else Path.cwd()
    usage = shutil.disk_usage(target)
    rep["runs_dir"] = str(runs_dir.resolve())
    rep["disk_free_gb"] = round(usage.free / 2**30, 1)
    if usage.free < 10 * 2**30:
        problems.append({"what": f"only {rep['disk_free_gb']} GB free at {target}",
                         "fix": "free space or set output.runs_dir / --runs-dir to a bigger disk "
                                "(checkpoints of a 1B model take several GB each)"})


def _check_hub(rep: dict[str, Any], problems: list[dict[str, str]], check_hub: bool) -> None:
    offline = hub_offline()
    rep["offline"] = offline
    rep["hf_home"] = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
    rep["hub_reachable"] = None if (offline or not check_hub) else hub_reachable()
    rep["hf_token"] = "set" if (os.environ.get("HF_TOKEN") or
                                (Path(rep["hf_home"]) / "token").is_file()) else "not set"
    if offline:
        problems.append({"what": "offline mode is set: only cached or local models load",
                         "fix": "point model.name at a local directory, or unset HF_HUB_OFFLINE"})
    elif rep["hub_reachable"] is False:
        problems.append({"what": "the Hugging Face hub is unreachable",
                         "fix": "models must be cached or local: set HF_HUB_OFFLINE=1 and point "
                                "model.name at a local directory (the packaged MiniLM works)"})


def format_report(rep: dict[str, Any]) -> str:
    lines = ["tunedeck doctor", ""]
    for key in ("python", "torch", "cuda", "transformers", "datasets", "accelerate", "textual",
                "peft"):
        lines.append(f"  {key:<13} {rep.get(key) or '-'}")
    lines.append(f"  {'bitsandbytes':<13} {rep.get('bitsandbytes') or '- (QLoRA needs it, CUDA only)'}")
    gpus = rep.get("gpus") or []
    lines.append(f"  {'gpus':<13} {len(gpus) or 'none'}")
    for g in gpus:
        nvml = (f"  {g['utilization_pct']}% busy  {g['temperature_c']} C"
                if "utilization_pct" in g else "")
        lines.append(f"    [{g['index']}] {g['name']}  {g['memory_gb']} GB ({g['free_gb']} free)  "
                     f"bf16 {'yes' if g['bf16'] else 'no'}{nvml}")
    lines.append(f"  {'distributed':<13} processes 'auto' = {max(1, len(gpus))} here (backend "
                 f"{'nccl' if gpus else 'gloo'}; docs/distributed.md)")
    if rep.get("compile"):
        lines.append(f"  {'compile':<13} {rep['compile']}")
    lines.append(f"  {'disk free':<13} {rep.get('disk_free_gb')} GB at {rep.get('runs_dir')}")
    hub = rep.get("hub_reachable")
    lines.append(f"  {'offline':<13} {'yes' if rep.get('offline') else 'no'}"
                 f"  (hub {'reachable' if hub else 'unreachable' if hub is False else 'not checked'})")
    lines.append(f"  {'hf token':<13} {rep.get('hf_token')}")
    lines.append(f"  {'packaged model':<13} {rep.get('packaged_minilm') or 'not installed'}")
    probs = rep.get("problems") or []
    lines.append("")
    if not probs:
        lines.append("no problems found")
    for p in probs:
        lines.append(f"! {p['what']}\n    fix: {p['fix']}")
    return "\n".join(lines)
