"""The tokenized-data cache (core/engine/token_cache.py): atomic publish, the first writer
wins, a write error is a warning only, temporary directories of dead processes are removed."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_reliability_support import cls_setup, fork_call  # noqa: F401
from tunedeck.core.engine import token_cache as TC


@pytest.fixture
def profile(tmp_path, monkeypatch):
    from tunedeck.core.profile import load, resolve_paths

    monkeypatch.setenv("TUNEDECK_CACHE_DIR", str(tmp_path / "cache"))
    path = cls_setup(tmp_path / "p")
    return resolve_paths(load(path), path.parent)


def _prepare(profile, **kw):
    from tunedeck.core.engine.inputs import prepare_inputs

    logs: list[str] = []
    warns: list[str] = []
    inputs = prepare_inputs(profile, log=logs.append, warn=warns.append, **kw)
    return inputs, logs, warns


def _entries(tmp_path: Path) -> list[str]:
    d = tmp_path / "cache" / "tokenized"
    return sorted(os.listdir(d)) if d.is_dir() else []


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_write_error_is_a_warning_and_training_data_is_intact(profile, tmp_path, monkeypatch):
    from datasets import Dataset

    def read_only(self, *a, **kw):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(Dataset, "save_to_disk", read_only)
    inputs, _, warns = _prepare(profile)
    assert len(inputs.train) > 0 and not inputs.cache_hit
    assert len(warns) == 1 and "cannot cache" in warns[0] and "Read-only" in warns[0]
    assert _entries(tmp_path) == []  # no temporary directory left either
    monkeypatch.undo()
    monkeypatch.setenv("TUNEDECK_CACHE_DIR", str(tmp_path / "cache"))
    again, _, _ = _prepare(profile)
    assert np.array_equal(again.train.ids, inputs.train.ids)


def test_cache_root_that_is_a_file(profile, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("TUNEDECK_CACHE_DIR", str(blocker))
    inputs, _, warns = _prepare(profile)
    assert len(inputs.train) > 0 and warns


def test_the_first_writer_wins_and_a_complete_entry_is_never_replaced(profile, tmp_path):
    first, _, _ = _prepare(profile)
    (entry,) = _entries(tmp_path)
    path = tmp_path / "cache" / "tokenized" / entry
    inode = path.stat().st_ino
    # A second writer of the same key (it tokenized before it saw the entry): its rename fails,
    # it uses the entry it found, and the entry a reader may have mapped stays where it is.
    cache = TC.TokenCache(entry, log=lambda m: None, warn=lambda m: None)
    from datasets import load_from_disk

    splits = cache.store({"train": load_from_disk(str(path / "train")), "validation": None,
                          "test": None})
    assert path.stat().st_ino == inode and _entries(tmp_path) == [entry]
    assert np.array_equal(splits["train"].ids, first.train.ids)


def test_two_processes_tokenizing_the_same_data(profile, tmp_path):
    """Both tokenize at once (held at the tokenize hook so they overlap), one entry results,
    both get the same examples, nothing temporary is left."""
    from tunedeck.core.engine.faults import FaultHooks

    out = tmp_path / "out"
    out.mkdir()

    def child(n: int):
        def run():
            inputs, _, warns = _prepare(profile, hooks=FaultHooks({"tokenize": "SLEEP0.5"}))
            np.save(out / f"{n}.npy", inputs.train.ids)
            return 1 if warns else 0
        return run

    pids = []
    for n in (1, 2):
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                code = child(n)()
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, st = os.waitpid(pid, 0)
        assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0
    assert np.array_equal(np.load(out / "1.npy"), np.load(out / "2.npy"))
    (entry,) = _entries(tmp_path)
    assert (tmp_path / "cache" / "tokenized" / entry / TC.COMPLETE).is_file()


def test_temporary_dirs_of_dead_processes_are_removed(profile, tmp_path):
    root = tmp_path / "cache" / "tokenized"
    root.mkdir(parents=True)
    host = socket.gethostname().replace("-", "_")
    dead, live = _dead_pid(), os.getppid()
    names = {"dead": f".tmp-abc-{host}-{dead}", "old": f"abc.tmp{dead}",
             "live": f".tmp-abc-{host}-{live}", "other-host": f".tmp-abc-elsewhere-{dead}"}
    for n in names.values():
        (root / n).mkdir()
        (root / n / "part").write_text("x")
    _prepare(profile)
    left = set(_entries(tmp_path))
    assert names["dead"] not in left and names["old"] not in left
    assert names["live"] in left and names["other-host"] in left
