"""Crash-safe checkpoints.

A checkpoint is written into ``checkpoints/.tmp-step-N-<pid>/``, every file fsynced, then a
``COMPLETE`` marker is written and the directory is renamed to ``step-N``: a kill at any point
leaves either the previous complete checkpoint or the new one, never a partial one presented as
complete. Leftover temporary directories are removed on the next start.

State is loaded with ``torch.load(weights_only=True)`` and safetensors only: a crafted pickle in
a checkpoint is refused, never run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np

COMPLETE = "COMPLETE"
STATE_FILE = "trainer_state.json"


class CheckpointError(Exception):
    pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    import torch

    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# Injection point for tests: called with a label at each write boundary.
_crash_hook = None


def _boundary(label: str) -> None:
    if _crash_hook is not None:
        _crash_hook(label)


def save_checkpoint(ckpt_root: Path, step: int, model: Any, optimizer: Any, scheduler: Any,
                    train_state: dict[str, Any]) -> Path:
    import torch
    from safetensors.torch import save_model

    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step}"
    tmp = ckpt_root / f".tmp-step-{step}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        save_model(model, str(tmp / "model.safetensors"))
        _boundary("model")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        _boundary("optimizer")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        _boundary("rng")
        (tmp / STATE_FILE).write_text(json.dumps(train_state, indent=2), encoding="utf-8")
        for f in tmp.iterdir():
            _fsync_file(f)
        _boundary("before-marker")
        (tmp / COMPLETE).write_text(str(step), encoding="utf-8")
        _fsync_file(tmp / COMPLETE)
        _fsync_dir(tmp)
        _boundary("before-rename")
        if final.exists():  # same step saved twice (e.g. stop right after a periodic save)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(ckpt_root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def is_complete(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".") and (path / COMPLETE).is_file() \
        and (path / STATE_FILE).is_file()


def list_complete(ckpt_root: Path) -> list[Path]:
    if not ckpt_root.is_dir():
        return []
    out = []
    for p in ckpt_root.iterdir():
        if p.name.startswith("step-") and is_complete(p):
            try:
                out.append((int(p.name.split("-", 1)[1]), p))
            except ValueError:
                continue
    return [p for _, p in sorted(out)]


def clean_leftovers(ckpt_root: Path) -> list[str]:
    """Remove temporary and incomplete checkpoint directories from an earlier crash."""
    removed = []
    if not ckpt_root.is_dir():
        return removed
    for p in ckpt_root.iterdir():
        if p.name.startswith(".tmp-") or (p.name.startswith("step-") and not is_complete(p)):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed


def rotate(ckpt_root: Path, keep: int, protect: Path | None = None) -> list[str]:
    """Keep the newest ``keep`` complete checkpoints (plus ``protect``, e.g. the best one)."""
    complete = list_complete(ckpt_root)
    if not complete:
        return []
    newest = complete[-1]
    keepers = set(complete[-keep:]) | {newest}
    if protect is not None:
        keepers.add(protect)
    removed = []
    for p in complete:
        if p not in keepers:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed


def load_train_state(path: Path) -> dict[str, Any]:
    return json.loads((path / STATE_FILE).read_text(encoding="utf-8"))


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    import pickle

    import torch
    from safetensors.torch import load_model

    if not is_complete(path):
        raise CheckpointError(f"{path} is not a complete checkpoint")
    try:
        load_model(model, str(path / "model.safetensors"))
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu"))
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        set_rng_state(torch.load(path / "rng.pt", weights_only=True))
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path} holds data that would need arbitrary code to load (refused: {str(e).splitlines()[0]})"
        ) from None
    return load_train_state(path)
