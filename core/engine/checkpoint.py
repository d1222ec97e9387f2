"""Crash-safe checkpoints.

A checkpoint is written into ``checkpoints/.tmp-step-N-<pid>/``, every file fsynced, then a
``COMPLETE`` marker (a manifest: each file's name and size) is written and the directory is
renamed to ``step-N``: a kill at any point leaves either the previous complete checkpoint or the
new one, never a partial one presented as complete. A checkpoint is deleted (rotation, or a
re-save of the same step) by first renaming it to ``.tmp-del-...`` so that a kill in the middle
of the deletion never leaves a half-deleted ``step-N``. Leftover temporary directories are
removed on the next start.

State is loaded with ``torch.load(weights_only=True)`` and safetensors only: a crafted pickle in
a checkpoint is refused, never run.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tunedeck.core.errors import RunError

COMPLETE = "COMPLETE"
STATE_FILE = "trainer_state.json"
FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt", STATE_FILE)
# A distributed run's checkpoint also holds every other rank's RNG state (engine/distributed.py).
_RANK_RNG = re.compile(r"^rng-rank(\d+)\.pt$")
# An FSDP checkpoint (engine/fsdp.py): model and optimizer as DCP shards in sharded/ instead.
_SHARDED = re.compile(r"^sharded/[\w.]+$")
SHARDED_REPLACES = ("model.safetensors", "optimizer.pt")
# Write boundaries, in order, at which the ``boundary(label)`` callback of save_checkpoint and
# rotate is called (tests crash, fail or stall at each: engine/faults.py).
BOUNDARIES = ("start", "model", "optimizer", "scheduler", "rng", "state", "before-marker",
              "before-rename", "after-rename", "rotate")


class CheckpointError(RunError):
    """A checkpoint is incomplete, corrupt or unsafe to load."""


class UnsafeCheckpoint(CheckpointError):
    """A checkpoint file holds a pickle that would run code: refused, never loaded."""


def _fsync(path: Path) -> None:
    """Flush a file's data, or a directory's entries (a rename is durable only after this)."""
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
        # The training device's generator only: a resume may see a different set of GPUs.
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if isinstance(cuda, (list, tuple)):  # older checkpoints: every visible GPU's state
            cuda = cuda[torch.cuda.current_device()] if torch.cuda.current_device() < len(cuda) else None
        if cuda is not None:
            torch.cuda.set_rng_state(cuda)


Boundary = Callable[[str], None] | None


def _discard(path: Path, boundary: Boundary = None) -> None:
    """Delete a checkpoint directory: rename it out of the complete set first, then remove it."""
    doomed = path.with_name(f".tmp-del-{path.name}-{os.getpid()}")
    try:
        os.replace(path, doomed)
    except FileNotFoundError:
        return
    if boundary is not None:
        boundary("rotate")
    shutil.rmtree(doomed, ignore_errors=True)


def save_checkpoint(ckpt_root: Path, step: int, model: Any, optimizer: Any, scheduler: Any,
                    train_state: dict[str, Any], boundary: Boundary = None,
                    extra: dict[str, Any] | None = None, sharded: Path | None = None) -> Path:
    """Write ``step-N`` crash-safely; ``boundary(label)`` is called at each of BOUNDARIES.
    ``extra``: more files (name -> object to torch.save), e.g. other ranks' RNG states; the
    manifest lists them, so the checkpoint is complete only with every one written.
    ``sharded``: FSDP's DCP directory, already written by every rank; it moves in as sharded/
    in place of the model and optimizer files (``model`` and ``optimizer`` are then None)."""
    import torch

    def _boundary(label: str) -> None:
        if boundary is not None:
            boundary(label)

    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step}"
    tmp = ckpt_root / f".tmp-step-{step}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _boundary("start")
        if sharded is not None:
            os.replace(sharded, tmp / "sharded")
        else:
            _save_weights(model, tmp / "model.safetensors")
        _boundary("model")
        if sharded is None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        _boundary("optimizer")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        _boundary("scheduler")
        torch.save(rng_state(), tmp / "rng.pt")
        for name, obj in (extra or {}).items():
            torch.save(obj, tmp / name)
        _boundary("rng")
        (tmp / STATE_FILE).write_text(json.dumps(train_state, indent=2), encoding="utf-8")
        _boundary("state")
        shards = sorted(f"sharded/{f.name}" for f in (tmp / "sharded").iterdir()) if sharded else []
        for f in [*tmp.iterdir(), *(tmp / n for n in shards)]:
            _fsync(f)
        _boundary("before-marker")
        names = tuple(f for f in FILES if not (shards and f in SHARDED_REPLACES))
        names += tuple(shards) + tuple(extra or {})
        manifest = {"step": step, "files": {f: (tmp / f).stat().st_size for f in names}}
        (tmp / COMPLETE).write_text(json.dumps(manifest), encoding="utf-8")
        _fsync(tmp / COMPLETE)
        _fsync(tmp)
        _boundary("before-rename")
        if final.exists():  # same step saved twice (e.g. a requested save, then a stop)
            _discard(final, boundary)
        os.replace(tmp, final)
        _fsync(ckpt_root)
        _boundary("after-rename")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def is_complete(path: Path, any_name: bool = False) -> bool:
    """A checkpoint counts only with its marker written last and every file it lists intact."""
    if not (path.is_dir() and not path.is_symlink() and (path / COMPLETE).is_file()
            and (path / STATE_FILE).is_file()):
        return False
    if path.name.startswith(".") and not any_name:
        return False
    try:
        manifest = json.loads((path / COMPLETE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict):  # older marker (the step number alone)
        return not any_name
    files = manifest.get("files")
    if not isinstance(files, dict):
        return False
    sharded = any(_SHARDED.match(f) for f in files)
    needed = set(FILES) - (set(SHARDED_REPLACES) if sharded else set())
    if not needed <= set(files) or any(
            f not in FILES and not _RANK_RNG.match(f) and not _SHARDED.match(f) for f in files):
        return False
    for name, size in files.items():
        try:
            if (path / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def list_complete(ckpt_root: Path) -> list[Path]:
    if not ckpt_root.is_dir():
        return []
    out = []
    for p in ckpt_root.iterdir():
        if p.name.startswith("step-") and not p.is_symlink() and is_complete(p):
            try:
                out.append((int(p.name.split("-", 1)[1]), p))
            except ValueError:
                continue
    return [p for _, p in sorted(out)]


_TMP_STEP = re.compile(r"^\.tmp-step-(\d+)-\d+$")


def clean_leftovers(ckpt_root: Path) -> list[str]:
    """Tidy up after a crash: remove temporary and incomplete checkpoint directories.

    A temporary directory whose marker was written (killed just before or during the final
    rename) holds a whole checkpoint: it is finished (renamed to ``step-N``), not thrown away.
    Returns what was removed or recovered, for the log.
    """
    done: list[str] = []
    if not ckpt_root.is_dir():
        return done
    for p in sorted(ckpt_root.iterdir()):
        m = _TMP_STEP.match(p.name)
        final = ckpt_root / f"step-{m.group(1)}" if m else None
        if final is not None and not is_complete(final) and is_complete(p, any_name=True):
            if final.exists() or final.is_symlink():
                _remove(final)
            os.replace(p, final)
            _fsync(ckpt_root)
            done.append(f"{p.name} (complete: recovered as {final.name})")
        elif p.name.startswith(".tmp-") or (p.name.startswith("step-") and not is_complete(p)):
            _remove(p)
            done.append(p.name)
    return done


def _remove(p: Path) -> None:
    if p.is_symlink() or not p.is_dir():
        p.unlink(missing_ok=True)
    else:
        shutil.rmtree(p, ignore_errors=True)


def rotate(ckpt_root: Path, keep: int, protect: Path | None = None,
           boundary: Boundary = None) -> list[str]:
    """Keep the newest ``keep`` complete checkpoints (plus ``protect``, e.g. the best one).

    The newest complete checkpoint is never deleted, whatever ``keep`` says.
    """
    complete = list_complete(ckpt_root)
    if not complete:
        return []
    newest = complete[-1]
    keepers = set(complete[-max(1, keep):]) | {newest}
    if protect is not None:
        keepers.add(protect)
    removed = []
    for p in complete:
        if p not in keepers:
            _discard(p, boundary)
            removed.append(p.name)
    return removed


def load_rank_rng(path: Path) -> dict[int, Any]:
    """The other ranks' RNG states a distributed run saved ({rank: state}; {} for one process)."""
    import torch

    out = {}
    for f in path.iterdir():
        m = _RANK_RNG.match(f.name)
        if m:
            try:
                out[int(m.group(1))] = torch.load(f, weights_only=True, map_location="cpu")
            except Exception as e:  # the unpickler raises many types for damaged bytes
                raise CheckpointError(f"{f}: corrupt or unsafe ({type(e).__name__}: {e})") from None
    return out


def load_train_state(path: Path) -> dict[str, Any]:
    return json.loads((path / STATE_FILE).read_text(encoding="utf-8"))


def _save_weights(model: Any, path: Path) -> None:
    """The model's weights; of a LoRA (PEFT) model only the trainable ones -- adapters and
    modules_to_save -- since the frozen base is the run's (RUN/base or the hub model)."""
    from safetensors.torch import save_file, save_model

    from tunedeck.core.engine.adapters import is_adapter_model

    if is_adapter_model(model):
        save_file({n: p.detach().contiguous() for n, p in model.named_parameters()
                   if p.requires_grad}, str(path))
    else:
        save_model(model, str(path))


def load_weights(path: Path, model: Any) -> None:
    """A checkpoint's model weights into ``model`` (safetensors: no code runs)."""
    from safetensors.torch import load_file, load_model

    from tunedeck.core.engine.adapters import is_adapter_model

    file = path / "model.safetensors"
    try:
        if not is_adapter_model(model):
            load_model(model, str(file))
            return
        state = load_file(str(file))
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{file}: cannot load ({e})") from None
    lacking = [n for n, p in model.named_parameters() if p.requires_grad and n not in state]
    _, unexpected = model.load_state_dict(state, strict=False)
    if lacking or unexpected:
        raise CheckpointError(f"{file}: not this run's LoRA adapter weights ({len(lacking)} "
                              f"missing, {len(unexpected)} unexpected)")


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNG state; return the trainer state.

    Only safetensors and ``torch.load(weights_only=True)``: a pickle that would import or call
    anything beyond tensors and plain containers is refused (``UnsafeCheckpoint``), never run.
    """
    import pickle

    import torch

    if not is_complete(path):
        raise CheckpointError(f"{path} is not a complete checkpoint")

    def safe_load(name: str) -> Any:
        try:
            return torch.load(path / name, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as e:
            text = str(e)
            m = re.search(r"Unsupported global: (GLOBAL \S+)", text)
            if m:  # it names a callable to import: what a code-running pickle needs
                raise UnsafeCheckpoint(
                    f"{path / name}: refused to load: it holds a pickle that would run code "
                    f"({m.group(1)} is not allowed); it was not written by tunedeck or was "
                    f"tampered with. Delete {path} to resume from an earlier checkpoint") from None
            m = re.search(r"WeightsUnpickler error: ([^\n]*\n*[^\n]*)", text)
            why = " ".join((m.group(1) if m else text).split())[:160]
            raise CheckpointError(f"{path / name}: corrupt or not a tunedeck file ({why})") from None
        except (EOFError, RuntimeError, ValueError, OSError, IndexError, KeyError, TypeError,
                AttributeError, UnicodeDecodeError, OverflowError, MemoryError) as e:
            # Random bytes reach the unpickler in many shapes ("pop from empty list" ...).
            raise CheckpointError(f"{path / name}: corrupt or unreadable ({type(e).__name__}: {e})") from None

    try:
        state = load_train_state(path)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path / STATE_FILE}: corrupt ({e})") from None
    # Read (and vet) every pickle before touching the model, so a refused file changes nothing.
    # model and optimizer None: an FSDP checkpoint, whose shards every rank loads (engine/fsdp.py)
    opt_sd = safe_load("optimizer.pt") if optimizer is not None else None
    sched_sd, rng = safe_load("scheduler.pt"), safe_load("rng.pt")
    if model is not None:
        load_weights(path, model)
    try:
        if optimizer is not None:
            optimizer.load_state_dict(opt_sd)
        scheduler.load_state_dict(sched_sd)
        set_rng_state(rng)
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as e:
        raise CheckpointError(f"{path}: state does not match this model/profile ({e})") from None
    return state
