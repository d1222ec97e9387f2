"""Helpers shared by tests/test_reliability_*.py (and scripts/reliability.py); no tests here.

Fast reliability tests run real training in this process (torch imported once) and put a real
SIGKILL / signal into a *forked* child, so a "worker killed at step N" costs a fraction of a
second instead of a fresh interpreter. Torch's OpenMP pool does not survive fork, so every
run here uses one intra-op thread (same in parent and child: bit-identical comparisons).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from tdhelpers import (  # noqa: E402,F401 - re-exported for the reliability tests
    ROOT, TINY_BERT, TUNEDECK, cli_env, make_classification_rows, tiny_cls_profile,
    tiny_lm_profile)


@pytest.fixture
def one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def clean_hooks(monkeypatch):
    for k in ("TUNEDECK_TEST_KILL_AT_STEP", "TUNEDECK_TEST_HOOKS"):
        monkeypatch.delenv(k, raising=False)
    yield monkeypatch


def write_cls_csv(path: Path, n: int = 120, seed: int = 0) -> Path:
    with path.open("w", encoding="utf-8") as f:
        f.write("text,label\n")
        for text, label in make_classification_rows(n, seed):
            f.write(f"{text},{label}\n")
    return path


def write_lm_jsonl(path: Path, n: int = 120, seed: int = 1) -> Path:
    import random

    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for _ in range(n):
            a, b = rng.randint(0, 9), rng.randint(0, 9)
            f.write(json.dumps({"prompt": f"add {a} and {b}", "response": f"{a + b}"}) + "\n")
    return path


def cls_setup(tmp: Path, n: int = 120, **training: Any) -> Path:
    """A data file and a tiny classification profile in ``tmp``; returns the profile path."""
    tmp.mkdir(parents=True, exist_ok=True)
    csv = write_cls_csv(tmp / "reviews.csv", n)
    training.setdefault("epochs", 2)
    training.setdefault("log_every_steps", 1)
    return tiny_cls_profile(tmp, csv, **training)


def lm_setup(tmp: Path, n: int = 120, **training: Any) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    data = write_lm_jsonl(tmp / "pairs.jsonl", n)
    training.setdefault("epochs", 2)
    training.setdefault("log_every_steps", 1)
    return tiny_lm_profile(tmp, data, **training)


def runs_dir(profile: Path) -> Path:
    return profile.parent / "runs"


def run_ids(profile: Path) -> set[str]:
    d = runs_dir(profile)
    return set(os.listdir(d)) if d.is_dir() else set()


def fork_call(fn: Callable[[], Any], env: dict[str, str] | None = None,
              timeout: float = 120.0) -> tuple[str, int]:
    """Run ``fn`` in a forked child; ('signal', n) if it was killed, else ('exit', code)."""
    import torch

    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 70
        try:
            torch.set_num_threads(1)
            os.environ.update(env or {})
            res = fn()
            code = res if isinstance(res, int) else 0
        except BaseException:  # noqa: BLE001 - the parent sees the exit code
            import traceback

            traceback.print_exc()
            code = 71
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"forked child {pid} did not finish in {timeout}s")
        time.sleep(0.02)
    if os.WIFSIGNALED(status):
        return "signal", os.WTERMSIG(status)
    return "exit", os.WEXITSTATUS(status)


def cli(*args: str) -> int:
    from tunedeck.core.cli import main

    return main(list(args))


def train_fg(profile: Path, *sets: str) -> Path:
    """``tunedeck train PROFILE`` in this process; returns the new run directory."""
    before = run_ids(profile)
    argv = ["train", str(profile)]
    for s in sets:
        argv += ["--set", s]
    cli(*argv)
    new = run_ids(profile) - before
    assert len(new) == 1, new
    return runs_dir(profile) / new.pop()


def train_killed(profile: Path, env: dict[str, str]) -> tuple[Path, tuple[str, int]]:
    """``tunedeck train`` in a forked child with fault hooks from ``env``; (run dir, outcome)."""
    before = run_ids(profile)
    outcome = fork_call(lambda: cli("train", str(profile)), env=env)
    new = run_ids(profile) - before
    assert len(new) == 1, (new, outcome)
    return runs_dir(profile) / new.pop(), outcome


def resume_fg(run: Path) -> int:
    return cli("resume", run.name, "--foreground", "--runs-dir", str(run.parent))


def events(run: Path) -> list[dict[str, Any]]:
    out = []
    for line in (run / "events.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def of_type(run: Path, kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events(run) if e["type"] == kind]


def step_losses(run: Path) -> list[tuple[int, float]]:
    return [(d["step"], d["loss"]) for d in of_type(run, "step")]


def status(run: Path) -> dict[str, Any]:
    return json.loads((run / "status.json").read_text(encoding="utf-8"))


def weights(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def same_weights(a: Path, b: Path) -> bool:
    import torch

    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def checkpoint_steps(run: Path) -> list[int]:
    from tunedeck.core.engine.checkpoint import list_complete

    return [int(p.name.split("-")[1]) for p in list_complete(run / "checkpoints")]


def all_weights_finite(run: Path) -> bool:
    import torch

    from tunedeck.core.engine.checkpoint import list_complete

    for ck in list_complete(run / "checkpoints"):
        for t in weights(ck).values():
            if not torch.isfinite(t).all():
                return False
    return True
