"""Promise 2: crash-safe checkpoints. A kill at any write boundary leaves the previous complete
checkpoint loadable and never presents a partial one as complete; leftovers are cleaned (or,
when provably whole, finished) on the next start; rotation never deletes the newest and keeps
the best; a full disk is a clear error, state failed, last good checkpoint intact."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tunedeck.core.engine import checkpoint as C
from test_reliability_support import (  # noqa: F401 - fixtures
    all_weights_finite, checkpoint_steps, clean_hooks, cli, cls_setup, fork_call, of_type,
    one_thread, resume_fg, run_ids, runs_dir, status, train_fg)

pytestmark = pytest.mark.usefixtures("one_thread", "clean_hooks")


def _parts(seed: int = 0):
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    x = torch.randn(4, 8)
    model(x).sum().backward()
    opt.step()
    sched.step()
    return model, opt, sched


def _save(root: Path, step: int, seed: int = 0, boundary=None) -> Path:
    model, opt, sched = _parts(seed)
    return C.save_checkpoint(root, step, model, opt, sched, {"step": step, "seed": seed},
                             boundary=boundary)


def _kill_at(label: str):
    def hook(lbl: str) -> None:
        if lbl == label:
            os.kill(os.getpid(), signal.SIGKILL)
    return hook


def _load_ok(path: Path) -> dict:
    model, opt, sched = _parts(99)
    return C.load_checkpoint(path, model, opt, sched)


SAVE_BOUNDARIES = [b for b in C.BOUNDARIES if b != "rotate"]


@pytest.mark.parametrize("label", SAVE_BOUNDARIES)
def test_kill_at_each_write_boundary(tmp_path, label):
    root = tmp_path / "checkpoints"
    _save(root, 1)

    def child():
        _save(root, 2, seed=1, boundary=_kill_at(label))

    assert fork_call(child) == ("signal", signal.SIGKILL)
    complete = checkpoint_steps(tmp_path)
    # Never a partial checkpoint presented as complete; the previous one is always there.
    assert complete == ([1, 2] if label == "after-rename" else [1])
    for p in root.iterdir():
        if p.name.startswith("step-"):
            assert C.is_complete(p), p
    assert _load_ok(root / "step-1")["step"] == 1
    # Next start: leftovers go; a temp dir with its marker written is a whole checkpoint.
    C.clean_leftovers(root)
    assert not [p for p in root.iterdir() if p.name.startswith(".")]
    whole = label in ("before-rename", "after-rename")
    assert checkpoint_steps(tmp_path) == ([1, 2] if whole else [1])
    if whole:
        assert _load_ok(root / "step-2")["seed"] == 1


def test_kill_while_replacing_the_same_step(tmp_path):
    """Re-saving step 2 (e.g. a stop right after a periodic save), killed between moving the
    old copy aside and renaming the new one into place: the new one is recovered."""
    root = tmp_path / "checkpoints"
    _save(root, 1)
    _save(root, 2)

    def child():
        _save(root, 2, seed=7, boundary=_kill_at("rotate"))

    assert fork_call(child) == ("signal", signal.SIGKILL)
    assert checkpoint_steps(tmp_path) == [1]  # the one left is whole and loadable
    C.clean_leftovers(root)
    assert checkpoint_steps(tmp_path) == [1, 2]
    assert _load_ok(root / "step-2")["seed"] == 7


def test_kill_during_rotation(tmp_path):
    root = tmp_path / "checkpoints"
    for s in (1, 2, 3):
        _save(root, s)

    def child():
        C.rotate(root, keep=1, boundary=_kill_at("rotate"))

    assert fork_call(child) == ("signal", signal.SIGKILL)
    # The checkpoint being deleted was renamed out of the complete set first.
    assert checkpoint_steps(tmp_path) == [2, 3]
    C.clean_leftovers(root)
    assert not [p for p in root.iterdir() if p.name.startswith(".")]
    assert _load_ok(root / "step-3")["step"] == 3


def test_truncated_or_unmarked_files_are_not_complete(tmp_path):
    root = tmp_path / "checkpoints"
    a, b = _save(root, 1), _save(root, 2)
    with open(b / "optimizer.pt", "r+b") as f:  # a disk fault after the marker
        f.truncate(10)
    (a / C.COMPLETE).unlink()
    assert checkpoint_steps(tmp_path) == []
    assert C.clean_leftovers(root) == ["step-1", "step-2"]


def test_rotation_keeps_newest_and_best(tmp_path):
    root = tmp_path / "checkpoints"
    for s in range(1, 6):
        _save(root, s)
    assert C.rotate(root, keep=2, protect=root / "step-2") == ["step-1", "step-3"]
    assert checkpoint_steps(tmp_path) == [2, 4, 5]
    assert C.rotate(root, keep=0) == ["step-2", "step-4"]  # newest survives whatever keep says
    assert checkpoint_steps(tmp_path) == [5]
    # A newer *incomplete* checkpoint does not count as the newest.
    (root / "step-9").mkdir()
    assert C.rotate(root, keep=1) == []
    assert checkpoint_steps(tmp_path) == [5]


def test_run_keeps_best_checkpoint(tmp_path, monkeypatch):
    """keep_checkpoints = 1 with a checkpoint at every evaluation: the newest and the best
    (by the validation metric, here made to peak at step 4) both survive."""
    from tunedeck.core.engine.loop import TrainingLoop

    def fake_evaluate(self, split="validation"):
        f1 = 0.9 if self.state.step == 4 else 0.5
        return {"eval_loss": 1.0 / (1 + self.state.step), "accuracy": f1, "f1_macro": f1}

    monkeypatch.setattr(TrainingLoop, "evaluate", fake_evaluate)
    prof = cls_setup(tmp_path, eval_every_steps=2, save_every_steps=0, keep_checkpoints=1)
    run = train_fg(prof)
    assert status(run)["best"]["step"] == 4
    newest = max(e["step"] for e in of_type(run, "checkpoint"))
    assert newest > 4
    assert checkpoint_steps(run) == [4, newest]


def test_disk_full_while_saving(tmp_path, capsys, clean_hooks):
    """ENOSPC while writing step-6: state failed with a clear message, step-3 intact and
    loadable, no temporary directory left; resume (with space again) finishes."""
    prof = cls_setup(tmp_path, save_every_steps=3, keep_checkpoints=5)
    clean_hooks.setenv("TUNEDECK_TEST_HOOKS", "ckpt:optimizer@6=ENOSPC")
    assert cli("train", str(prof)) == 1
    clean_hooks.delenv("TUNEDECK_TEST_HOOKS")
    run = runs_dir(prof) / run_ids(prof).pop()
    st = status(run)
    assert st["state"] == "failed"
    msg = st["message"]
    assert "step-6" in msg and "No space left on device" in msg and "step-3" in msg, msg
    assert "Traceback" not in msg
    assert of_type(run, "run_failed")[-1]["error"] == msg
    assert checkpoint_steps(run) == [3]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert all_weights_finite(run)
    assert msg in capsys.readouterr().err
    assert resume_fg(run) == 0
    assert status(run)["state"] == "finished"


def test_state_file_is_plain_json(tmp_path):
    p = _save(tmp_path / "checkpoints", 4)
    assert json.loads((p / C.STATE_FILE).read_text()) == {"step": 4, "seed": 0}
    manifest = json.loads((p / C.COMPLETE).read_text())
    assert manifest["step"] == 4 and set(manifest["files"]) == set(C.FILES)


def test_disk_full_while_logging(tmp_path, monkeypatch):
    """ENOSPC from the event log (not a checkpoint): failed, a one-line message saying what to
    do, and the checkpoints written before are intact."""
    import errno

    from tunedeck.core.runs.events import EventWriter

    orig = EventWriter.emit

    def emit(self, type, **data):
        if type == "step" and data.get("step") == 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        return orig(self, type, **data)

    monkeypatch.setattr(EventWriter, "emit", emit)
    prof = cls_setup(tmp_path, save_every_steps=2)
    assert cli("train", str(prof)) == 1
    run = runs_dir(prof) / run_ids(prof).pop()
    st = status(run)
    assert st["state"] == "failed"
    assert "No space left on device" in st["message"] and "events.jsonl" in st["message"]
    assert "free disk space" in st["message"] and "tunedeck resume" in st["message"]
    assert checkpoint_steps(run) == [2, 4]


def test_corrupt_complete_checkpoint_falls_back_to_the_previous(tmp_path, clean_hooks):
    """Same size, garbage content (a disk fault after the marker): resume skips it with a
    warning and continues from the previous checkpoint."""
    prof = cls_setup(tmp_path, save_every_steps=2, keep_checkpoints=3)
    clean_hooks.setenv("TUNEDECK_TEST_HOOKS", "step:5=TERM")
    assert cli("train", str(prof)) == 0
    clean_hooks.delenv("TUNEDECK_TEST_HOOKS")
    run = runs_dir(prof) / run_ids(prof).pop()
    assert checkpoint_steps(run) == [2, 4, 5]
    bad = run / "checkpoints" / "step-5" / "optimizer.pt"
    bad.write_bytes(os.urandom(bad.stat().st_size))
    assert resume_fg(run) == 0
    assert status(run)["state"] == "finished"
    assert of_type(run, "run_resumed")[-1]["step"] == 4
    assert any("skipping checkpoint" in d["message"] and "step-5" in d["message"]
               for d in of_type(run, "log"))
