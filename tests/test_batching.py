"""Batch plans: every example exactly once per epoch, budgets respected, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from tunedeck.core.engine.batching import auto_batch_tokens, plan_epoch, plan_eval, round_up
from tunedeck.core.engine.examples import TokenizedSet


def lengths(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(np.log(40), 0.6, n).astype(int), 1, 256)


@pytest.mark.parametrize("batching", ["tokens", "rows"])
def test_each_example_once_per_epoch(batching):
    L = lengths()
    plan = plan_epoch(L, 1, 0, batching=batching, batch_size=16, batch_tokens=0, multiple=8)
    flat = np.concatenate(plan)
    assert sorted(flat.tolist()) == list(range(len(L)))


def test_token_budget_respected_and_padding_small():
    L = lengths()
    budget = 2048
    plan = plan_epoch(L, 1, 0, batching="tokens", batch_size=16, batch_tokens=budget, multiple=8)
    padded = 0
    for b in plan:
        width = round_up(int(L[b].max()), 8)
        assert len(b) * width <= budget or len(b) == 1
        padded += len(b) * width
    assert L.sum() / padded > 0.85  # length-sorted buckets: little padding
    rows = plan_epoch(L, 1, 0, batching="rows", batch_size=16, batch_tokens=0, multiple=8)
    rows_padded = sum(len(b) * round_up(int(L[b].max()), 8) for b in rows)
    assert rows_padded > padded * 1.3


def test_auto_budget_keeps_average_rows_near_batch_size():
    L = lengths()
    plan = plan_epoch(L, 3, 0, batching="tokens", batch_size=32, batch_tokens=0, multiple=8)
    assert 0.8 * len(L) / 32 <= len(plan) <= 1.35 * len(L) / 32
    assert auto_batch_tokens(L, 32, 8) >= round_up(int(L.max()), 8)


def test_deterministic_per_seed_and_epoch():
    L = lengths()
    kw = dict(batching="tokens", batch_size=16, batch_tokens=0, multiple=8)
    a = plan_epoch(L, 5, 2, **kw)
    b = plan_epoch(L, 5, 2, **kw)
    c = plan_epoch(L, 5, 3, **kw)
    assert all((x == y).all() for x, y in zip(a, b)) and len(a) == len(b)
    assert any(len(x) != len(y) or (x != y).any() for x, y in zip(a, c))


def test_eval_plan_covers_all_sorted():
    L = lengths(100)
    plan = plan_eval(L, 7)
    flat = np.concatenate(plan)
    assert sorted(flat.tolist()) == list(range(100))
    assert (np.diff(L[flat]) >= 0).all()


def test_collate_pads_and_masks():
    ts = TokenizedSet(ids=np.arange(1, 10, dtype=np.int64), offsets=np.array([0, 2, 7, 9]),
                      labels=np.array([0, 1, 0]), label_offsets=None,
                      n_targets=np.array([1, 1, 1]), rows=np.array([1, 2, 3]))
    b = ts.collate([0, 1], pad_id=0, multiple=8)
    assert b["input_ids"].shape == (2, 8)
    assert b["attention_mask"].sum() == 7
    assert b["input_ids"][0, :2].tolist() == [1, 2] and b["input_ids"][0, 2:].sum() == 0
    assert b["labels"].tolist() == [0, 1]
