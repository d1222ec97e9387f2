"""torch.compile for the training step: what ``training.compile`` ("auto", "on", "off") means
on this device, and the bounded batch shapes that keep a compiled model from recompiling.

Token-budget batches differ in rows and in width from step to step, and a graph compiled for
static shapes recompiles for each new (rows, width) until torch._dynamo's recompile limit, then
runs eager. With compile on, widths come from a short ladder (``WIDTH_LADDER``: each rung at most
a third above the last, so padding stays small) and every batch of width w is padded to the same
rows, ``budget // w``, with padding rows that hold one pad token and no target (label -100):
one graph per rung, a handful per run. Marking the dimensions dynamic instead (one graph) was
measured slower than eager on a CPU (benchmarks/README.md, "Compile").

"auto" (the default): on a CUDA GPU when the run is long enough to repay the compile
(``AUTO_MIN_STEPS`` optimizer steps; not yet measured on a GPU); off on a CPU, where inductor's
compile took 0.5-1 minute per run on 2 quiet cores (7-13 under load) and its graphs then ran
slower than eager, 0.6-0.8x useful tokens per CPU-second on bert-tiny and lm-tiny
(benchmarks/compile.py, benchmarks/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tunedeck.core.tasks.base import IGNORE

WIDTH_LADDER = (64, 128, 192, 256, 320, 384, 512, 640, 768, 1024, 1280, 1536, 2048, 2560, 3072,
                4096, 5120, 6144, 8192)
# "auto" on a GPU: at least this many optimizer steps (several minutes at a fraction of a second
# a step), so that a few graph compiles of tens of seconds each are repaid.
AUTO_MIN_STEPS = 1000


@dataclass(frozen=True)
class CompileChoice:
    on: bool
    setting: str  # "auto", "on" or "off", as the profile says
    reason: str

    def describe(self) -> str:
        return f"compile {'on' if self.on else 'off'} ({self.setting}): {self.reason}"


def resolve_compile(setting: bool | str, device_type: str, total_steps: int) -> CompileChoice:
    """Whether this run compiles its model, and why (said in doctor and the run's first event)."""
    setting = {True: "on", False: "off"}.get(setting, setting) if isinstance(setting, bool) \
        else setting
    if setting in ("on", "off"):
        return CompileChoice(setting == "on", setting, f"training.compile = '{setting}'")
    if device_type != "cuda":
        return CompileChoice(False, "auto", "on a CPU inductor's graphs measured slower than "
                             "eager (0.6-0.8x per CPU-second) after minutes of compiling "
                             "(benchmarks/README.md, 'Compile')")
    if total_steps < AUTO_MIN_STEPS:
        return CompileChoice(False, "auto", f"{total_steps} steps is too short to repay the "
                             f"compile (auto compiles runs of {AUTO_MIN_STEPS}+ steps on a GPU)")
    return CompileChoice(True, "auto", f"a GPU run of {total_steps} steps (auto compiles runs "
                         f"of {AUTO_MIN_STEPS}+ steps on a GPU)")


def ladder_width(length: int) -> int:
    """The smallest rung >= length (beyond the ladder: the next multiple of its top rung)."""
    for w in WIDTH_LADDER:
        if length <= w:
            return w
    top = WIDTH_LADDER[-1]
    return -(-int(length) // top) * top


class BoundedShapes:
    """The bounded (rows, width) shapes of a compiled run: lengths snapped to the ladder for the
    planner, one token budget for every epoch, and the padding of each batch up to its shape."""

    def __init__(self, lengths: np.ndarray, budget: int, fixed_rows: int = 0):
        self.snapped = np.array([ladder_width(int(n)) for n in lengths], dtype=np.int64)
        self.budget = max(int(budget), int(self.snapped.max(initial=WIDTH_LADDER[0])))
        self.fixed_rows = fixed_rows  # batching = "rows": every batch has these rows

    def rows_for(self, width: int) -> int:
        return self.fixed_rows or max(1, self.budget // width)

    def shapes(self) -> list[tuple[int, int]]:
        """Every (rows, width) this run's batches can take (one graph each)."""
        return [(self.rows_for(w), int(w)) for w in np.unique(self.snapped)]

    def pad(self, batch: dict[str, np.ndarray], pad_id: int) -> dict[str, np.ndarray]:
        """``batch`` (collated numpy arrays) padded to its (rows, width) bound. A padding row
        is one attended pad token (a row with nothing attended gives NaN attention) and has no
        target, so it changes neither the loss nor the gradients."""
        n, width = batch["input_ids"].shape
        w = ladder_width(width)
        rows = max(n, self.rows_for(w))
        out: dict[str, np.ndarray] = {}
        for key, arr in batch.items():
            fill = {"input_ids": pad_id, "labels": IGNORE}.get(key, 0)
            # 2-D arrays widen to their own rung (a seq2seq target has its own width).
            shape = (rows,) + ((ladder_width(arr.shape[1]),) if arr.ndim == 2 else ())
            padded = np.full(shape, fill, dtype=arr.dtype)
            padded[tuple(slice(0, d) for d in arr.shape)] = arr
            out[key] = padded
        if "attention_mask" in out:
            out["attention_mask"][n:, 0] = 1
        if "position_ids" in out:  # packed rows: a widened tail counts on as a sequence of its own
            out["position_ids"][:, width:] = np.arange(w - width)
            out["position_ids"][n:] = np.arange(w)
        return out


def fixed_budget(plan: list[np.ndarray], snapped: np.ndarray) -> int:
    """The padded-token budget an epoch's plan was packed to (its fullest batch)."""
    return max((len(b) * int(snapped[b].max()) for b in plan if len(b)), default=0)


def compile_model(model: Any, n_shapes: int) -> Any:
    """The model compiled with static shapes (inductor); room for one graph per shape."""
    import torch
    import torch._dynamo.config as dynamo_config

    limit = n_shapes + 2
    for name in ("recompile_limit", "cache_size_limit"):
        if getattr(dynamo_config, name, limit) < limit:
            setattr(dynamo_config, name, limit)
    return torch.compile(model, dynamic=False)
