"""Instruction packing: useful tokens per second with and without ``data.packing`` (issue 11).

Same examples, same tiny Llama-shaped model (random weights, same seed), same optimizer, same
token budget per micro-batch; three ways to batch them:

- ``rows``: ``training.batching = "rows"`` (shuffled rows, padded to the batch's longest);
- ``tokens``: the engine's default length-sorted token-budget batches (little padding already);
- ``packed``: ``core.data.packing.pack_examples`` rows (several examples per row, position ids
  restarting per example: a block-diagonal causal mask through transformers' masking_utils),
  in the same token-budget batches.

Useful tokens = the examples' real tokens (no padding). Each mode runs a warm-up step, then
``--steps`` optimizer steps (or one pass over the data, whichever ends first), timed on the wall
clock. The examples' lengths follow a long tail like chat data (most short, a few long)."""

from __future__ import annotations

import argparse
import time

import numpy as np


def make_examples(n: int, vocab: int, max_len: int, seed: int = 0) -> "object":
    from datasets import Dataset

    from tunedeck.core.tasks.base import IGNORE

    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(mean=4.2, sigma=0.7, size=n).astype(int), 12, max_len)
    ids, labels = [], []
    for n_tok in lengths:
        row = rng.integers(3, vocab, size=int(n_tok)).tolist()
        head = int(n_tok) // 3  # a prompt third, masked out of the loss
        ids.append(row)
        labels.append([IGNORE] * head + row[head:])
    n_targets = [sum(1 for x in lab[1:] if x != IGNORE) for lab in labels]
    return Dataset.from_dict({"input_ids": ids, "labels": labels, "n_targets": n_targets,
                              "row": list(range(1, n + 1))})


def run_mode(mode: str, ds: "object", args: argparse.Namespace) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tunedeck.core.data.packing import pack_examples
    from tunedeck.core.engine import batching as B
    from tunedeck.core.engine.examples import TokenizedSet
    from tunedeck.core.engine.inputs import _token_features
    from tunedeck.core.tasks.causal_lm import CausalLMTask

    data = pack_examples(ds, args.max_length) if mode == "packed" else ds
    ts = TokenizedSet.from_dataset(_token_features(data))
    plan = B.plan_epoch(ts.lengths, 0, 0, batching="rows" if mode == "rows" else "tokens",
                        batch_size=args.batch_size if mode == "rows" else 0,
                        batch_tokens=0 if mode == "rows" else args.batch_tokens, multiple=8)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.hidden * 3,
        num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=args.max_length))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    task = CausalLMTask()
    useful = padded = 0
    t0 = None
    for k, idx in enumerate(plan[: args.steps + 1]):
        batch = {key: torch.from_numpy(v) for key, v in ts.collate(idx, 0, 8).items()}
        out = model(**task.forward_kwargs(batch))
        loss = task.loss_sum(out.logits, batch["labels"]) / max(1, int(ts.n_targets[idx].sum()))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if k == 0:
            t0 = time.perf_counter()  # the first step (allocations, warm-up) is not timed
            continue
        useful += int(ts.lengths[idx].sum())
        padded += int(batch["input_ids"].numel())
    wall = time.perf_counter() - (t0 or time.perf_counter())
    return {"mode": mode, "rows": len(ts), "steps": min(args.steps, len(plan) - 1),
            "useful_tok_s": useful / wall if wall else 0.0,
            "pad_pct": 100.0 * (padded - useful) / max(1, padded), "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=16, help="rows per batch in 'rows' mode")
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    import datasets
    import torch

    datasets.disable_progress_bars()
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = make_examples(args.examples, args.vocab, args.max_length)
    lengths = np.asarray([len(x) for x in ds["input_ids"]])
    print(f"{len(lengths)} examples, lengths median {int(np.median(lengths))}, mean "
          f"{lengths.mean():.0f}, max {lengths.max()}; max_length {args.max_length}, "
          f"budget {args.batch_tokens} tokens, {torch.get_num_threads()} threads")
    print(f"{'mode':8} {'rows':>6} {'steps':>5} {'useful tok/s':>13} {'pad %':>6} {'wall s':>7}")
    results = [run_mode(m, ds, args) for m in ("rows", "tokens", "packed")]
    for r in results:
        print(f"{r['mode']:8} {r['rows']:6d} {r['steps']:5d} {r['useful_tok_s']:13,.0f} "
              f"{r['pad_pct']:6.1f} {r['wall_s']:7.1f}")
    base = {r["mode"]: r["useful_tok_s"] for r in results}
    print(f"packed / tokens = {base['packed'] / base['tokens']:.2f}x, "
          f"packed / rows = {base['packed'] / base['rows']:.2f}x")


if __name__ == "__main__":
    main()
