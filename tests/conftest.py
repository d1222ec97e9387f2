"""Shared fixtures: tiny models, tokenizers and data built locally (nothing downloads)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tdhelpers import *  # noqa: F401,F403  (older tests load names from here)

# One math thread per test process (and the workers they start): the suite runs two xdist
# processes on two cores, and oversubscribed OpenMP threads spin against each other.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# The suite is a CPU suite: its exact-resume checks promise bit-identical results on CPU in fp32,
# which GPU kernels do not. On a GPU box, hide the GPUs from the tests and the workers they start.
os.environ["CUDA_VISIBLE_DEVICES"] = ""
# Runs go where each test's profile or --runs-dir says, whatever the developer's shell exports.
os.environ.pop("TUNEDECK_RUNS_DIR", None)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Every test gets the same session cache unless it asks for its own; never ~/.cache.
    monkeypatch.setenv("TUNEDECK_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "tunedeck-cache"))


@pytest.fixture
def cls_csv(tmp_path: Path) -> Path:
    p = tmp_path / "reviews.csv"
    with p.open("w", encoding="utf-8") as f:
        f.write("text,label\n")
        for text, label in make_classification_rows(240):
            f.write(f"{text},{label}\n")
    return p


@pytest.fixture
def lm_jsonl(tmp_path: Path) -> Path:
    import json

    rng = random.Random(1)
    p = tmp_path / "pairs.jsonl"
    with p.open("w", encoding="utf-8") as f:
        for i in range(160):
            a, b = rng.randint(0, 9), rng.randint(0, 9)
            f.write(json.dumps({"prompt": f"add {a} and {b}", "response": f"{a + b}"}) + "\n")
    return p


