"""Helpers shared by the tests: tiny data, tiny-model profiles, the CLI command.

A module with a unique name (not conftest) so that `from tdhelpers import ...` resolves the same
from tests/ and tests/tui/ under pytest-xdist.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SMS = SHARED / "datasets" / "sms_spam" / "SMSSpamCollection"

WORDS = {
    "pos": ["great", "love", "excellent", "happy", "wonderful", "fantastic", "good", "nice"],
    "neg": ["awful", "hate", "terrible", "sad", "horrible", "bad", "poor", "worst"],
}
FILLER = ["the", "movie", "was", "really", "and", "plot", "acting", "i", "it", "this", "film",
          "quite", "very", "story", "ending", "scenes"]


def make_classification_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(["pos", "neg"])
        words = rng.choices(FILLER, k=rng.randint(3, 12)) + rng.choices(WORDS[label], k=2)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


TINY_BERT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2,
             "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 400,
             "max_position_embeddings": 128}
TINY_GPT = {"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 2, "vocab_size": 400,
            "n_positions": 128}


def write_profile(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def tiny_cls_profile(tmp_path: Path, data: Path, **training) -> Path:
    import tomli_w

    # fp32: the exact-resume promise is bit-identical weights in fp32 on CPU ('auto' may pick
    # bf16 autocast on CPUs with AVX512-BF16/AMX).
    t = {"epochs": 3, "learning_rate": 3e-3, "batch_size": 16, "max_length": 32,
         "log_every_steps": 5, "warmup_ratio": 0.1, "precision": "fp32"}
    t.update(training)
    doc = {"name": "tiny-cls", "task": {"type": "classification"},
           "model": {"config": TINY_BERT}, "data": {"train": str(data)}, "training": t,
           "output": {"runs_dir": str(tmp_path / "runs")}}
    return write_profile(tmp_path / "cls.toml", tomli_w.dumps(doc))


def tiny_lm_profile(tmp_path: Path, data: Path, **training) -> Path:
    import tomli_w

    t = {"epochs": 3, "learning_rate": 3e-3, "batch_size": 16, "max_length": 32,
         "log_every_steps": 5, "precision": "fp32"}
    t.update(training)
    doc = {"name": "tiny-lm", "task": {"type": "causal-lm"}, "model": {"config": TINY_GPT},
           "data": {"train": str(data), "prompt_column": "prompt", "response_column": "response"},
           "training": t, "output": {"runs_dir": str(tmp_path / "runs")}}
    return write_profile(tmp_path / "lm.toml", tomli_w.dumps(doc))


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


TUNEDECK = [sys.executable, "-m", "tunedeck.core.cli"]
