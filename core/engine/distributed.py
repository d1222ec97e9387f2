"""The rank side of a distributed run: several training processes started by torchrun under
``tunedeck.core.runs.distributed_launch`` (docs/distributed.md). Who this process is, how one
global batch is dealt to the ranks, and the few collectives that keep them in step.

Rules (issue 12): every rank builds the single-process run's batch plan, and each optimizer
step's micro-batches are dealt to the ranks by tokens, so the global batch, the number of
optimizer steps and the learning-rate schedule do not depend on the process count; each rank
scales its summed loss by ``world_size / global targets``, so DDP's gradient average equals the
single-process gradient. Requests (stop, checkpoint, evaluate) are agreed with one all-reduce
at each step boundary, so every rank stops, evaluates and checkpoints at the same step. Rank 0
alone writes events, status and files; a checkpoint holds rank 0's model and optimizer
(replicated under DDP) and every rank's RNG state, gathered before its COMPLETE marker.

Data preparation and tokenization happen before the process group exists (the Accelerator is
created after them): a slow tokenization can never hit a collective timeout. On each machine
local rank 0 prepares first; the others wait for its marker file, then read the token cache.

Torch-free at import (the launcher and the TUI import the rank helpers).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

DIST_DIR_ENV = "TUNEDECK_DIST_DIR"  # this machine's supervisor folder: pid, exit, ready files
SUPERVISOR_ENV = "TUNEDECK_SUPERVISOR_PID"  # status.json's pid: `stop` signals the supervisor
ACTIONS = ("stop", "checkpoint", "evaluate")
INPUTS_READY, INPUTS_FAILED = "inputs-ready", "inputs-failed"


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def rank() -> int:
    return _env_int("RANK", 0)


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0)


def world_size() -> int:
    return _env_int("WORLD_SIZE", 1)


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    return rank() == 0


def reported_pid() -> int:
    """The pid status.json shows: the supervisor's in a distributed run (it forwards a stop
    to every rank), this process's otherwise."""
    return _env_int(SUPERVISOR_ENV, 0) or os.getpid()


def dist_dir() -> Path | None:
    d = os.environ.get(DIST_DIR_ENV)
    return Path(d) if d and is_distributed() else None


# --- this rank's files for the supervisor -------------------------------------------------

def announce_rank() -> None:
    """``rank-K.pid``: the supervisor forwards a stop signal to every rank it lists."""
    d = dist_dir()
    if d is not None:
        _write_json(d / f"rank-{rank()}.pid", {"pid": os.getpid(), "local_rank": local_rank()})


def record_exit(state: str, message: str = "") -> None:
    """``rank-K.exit``: how this rank ended. A rank without one was killed (kill -9, OOM)."""
    d = dist_dir()
    if d is not None:
        _write_json(d / f"rank-{rank()}.exit", {"state": state, "message": message})


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj), encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def node_inputs_gate(poll_s: float = 0.2) -> Iterator[None]:
    """Around data preparation: local rank 0 prepares (and fills the token cache) first, the
    other ranks of this machine wait for its marker, then prepare from the cache. No collective
    runs meanwhile (the process group does not exist yet), so nothing can time out; a stop
    signal interrupts the wait like any other pre-loop phase (worker.StopFlag)."""
    from tunedeck.core.errors import RunError

    d = dist_dir()
    if d is None:
        yield
        return
    if local_rank() != 0:
        while not (d / INPUTS_READY).exists():
            if (d / INPUTS_FAILED).exists():
                raise RunError("local rank 0 failed preparing the data; its error is the run's")
            time.sleep(poll_s)
        yield
        return
    try:
        yield
    except BaseException:
        (d / INPUTS_FAILED).touch()
        raise
    (d / INPUTS_READY).touch()


def seed_rank(seed: int) -> None:
    """After the model is built (identical on every rank): other ranks draw their own dropout
    masks; rank 0 keeps the single-process run's stream."""
    if rank() > 0:
        import random

        import torch

        random.seed(seed + rank())
        np.random.seed((seed + rank()) % (2**32))
        torch.manual_seed(seed + rank())


# --- batches -------------------------------------------------------------------------------

def deal_by_tokens(idx: np.ndarray, lengths: np.ndarray, parts: int) -> list[np.ndarray]:
    """One micro-batch's rows in ``parts`` shares of about equal tokens: longest row first to
    the share with the fewest tokens so far (ties: the lower rank); each share keeps the batch's
    order. Deterministic: every rank computes every share and keeps its own."""
    owner = np.zeros(len(idx), dtype=np.int64)
    load = np.zeros(parts, dtype=np.int64)
    for j in np.argsort(-lengths[idx], kind="stable"):
        k = int(np.argmin(load))
        owner[j] = k
        load[k] += int(lengths[idx[j]])
    return [idx[owner == k] for k in range(parts)]


# --- collectives --------------------------------------------------------------------------

class RankGroup:
    """The loop's link to the other ranks (``loop.rank_group``; None in a single process)."""

    def __init__(self, device: Any):
        import torch.distributed as dist

        self.dist = dist
        self.device = device
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self.is_main = self.rank == 0
        self.stop_agreed = False  # latched: what every rank's loop sees as should_stop()

    def agree(self, requests: list[str], local_stop: bool) -> list[str]:
        """Rank 0's control requests and any rank's stop signal, the same on every rank."""
        import torch

        wanted = [local_stop or "stop" in requests, "checkpoint" in requests,
                  "evaluate" in requests]
        flags = torch.tensor([int(w) for w in wanted], dtype=torch.int64, device=self.device)
        self.dist.all_reduce(flags, op=self.dist.ReduceOp.MAX)
        agreed = [a for a, f in zip(ACTIONS, flags.tolist()) if f]
        self.stop_agreed = self.stop_agreed or "stop" in agreed
        return agreed

    def share(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        self.dist.barrier()

    def accumulate(self, loop: Any, micro: list[np.ndarray], denom: float) -> Any:
        """This rank's share of each micro-batch, forward/backward; the gradient all-reduce runs
        once, on the last one. Returns the step's summed loss over every rank."""
        import torch

        step_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        lengths = loop.p.train.lengths
        for k, idx in enumerate(micro):
            mine = deal_by_tokens(idx, lengths, self.size)[self.rank]
            weight = self.size / denom  # DDP averages over ranks: x size restores the sum
            if len(mine) == 0:
                # Fewer rows than ranks: one row with no weight keeps this rank's backward (and
                # so the gradient all-reduce) in step with the others.
                mine, weight = idx[:1], 0.0
            last = k == len(micro) - 1
            # FSDP2 reduce-scatters each micro-batch into the sharded gradients (no no_sync).
            with contextlib.nullcontext() if last or loop.fsdp else loop.model.no_sync():
                loss = loop.forward_loss(mine)
                loop.accelerator.backward(loss * weight)
            if weight:
                step_loss += loss.detach().double()
        self.dist.all_reduce(step_loss)
        return step_loss

    def validation_metrics(self, loop: Any) -> dict[str, Any] | None:
        """Rank 0 evaluates (with the unwrapped model: no collective inside) and shares the
        result, so early stopping and the best step are decided once for every rank."""
        from tunedeck.core.engine.state import StopRequested

        if self.stop_agreed:
            raise StopRequested("stop requested before the evaluation")
        if loop.fsdp:  # sharded weights: every rank runs the forward, rank 0's result counts
            return self.share(loop.evaluate("validation"))
        return self.share(loop.evaluate("validation") if self.is_main else None)

    def gather_rng(self) -> dict[str, Any]:
        """Every rank's RNG state; on rank 0 the other ranks' as checkpoint files to add."""
        from tunedeck.core.engine.checkpoint import rng_state

        parts: list[Any] | None = [None] * self.size if self.is_main else None
        self.dist.gather_object(rng_state(), parts, dst=0)
        if not self.is_main or parts is None:
            return {}
        return {f"rng-rank{k}.pt": parts[k] for k in range(1, self.size)}

    def restore(self, loop: Any, load_newest: Callable[[], Path | None], warn: Callable[[str], None]
                ) -> Path | None:
        """Rank 0 loads the newest good checkpoint (or none); every rank gets its weights,
        optimizer, schedule, position and its own RNG state from rank 0."""
        payload = self._checkpoint_payload(loop, load_newest, warn) if self.is_main else None
        payload = self.share(payload)
        if payload is None:
            return None
        if loop.fsdp:  # each rank reads its own shards of the model and optimizer
            from tunedeck.core.engine.fsdp import SHARDED_DIR, load_sharded

            load_sharded(loop.model, loop.optimizer, Path(payload["path"]) / SHARDED_DIR)
        for tensor in [] if loop.fsdp else loop.accelerator.unwrap_model(loop.model).state_dict().values():
            self.dist.broadcast(tensor, src=0)
        if not self.is_main:
            self._apply_payload(loop, payload)
        return Path(payload["path"])

    def _checkpoint_payload(self, loop: Any, load_newest: Callable[[], Path | None],
                            warn: Callable[[str], None]) -> dict[str, Any] | None:
        from tunedeck.core.engine.checkpoint import load_rank_rng

        path = load_newest()
        if path is None:
            return None
        rngs = load_rank_rng(path)
        saved = len(rngs) + 1
        if saved != self.size:
            warn(f"{path.name} was written by {saved} process(es), this run has {self.size}: "
                 "same global batch and steps (the batch is dealt by tokens), but ranks without "
                 "a saved RNG state draw new dropout masks, so it is not bit-identical to an "
                 "uninterrupted run")
        optimizer = None if loop.fsdp else loop._inner_optimizer().state_dict()  # FSDP: DCP
        return {"path": str(path), "optimizer": optimizer,
                "scheduler": loop.scheduler.state_dict(), "state": loop.state.to_dict(),
                "rng": rngs}

    def _apply_payload(self, loop: Any, payload: dict[str, Any]) -> None:
        from tunedeck.core.engine.checkpoint import set_rng_state
        from tunedeck.core.engine.state import TrainState

        total = loop.state.total_steps
        if payload["optimizer"] is not None:
            loop._inner_optimizer().load_state_dict(payload["optimizer"])
        loop.scheduler.load_state_dict(payload["scheduler"])
        loop.state = TrainState.from_dict(payload["state"])
        loop.state.total_steps = loop.state.total_steps or total
        if loop._scaler is not None and loop.state.grad_scaler:
            loop._scaler.load_state_dict(loop.state.grad_scaler)
        rng = payload["rng"].get(self.rank)
        if rng is not None:
            set_rng_state(rng)
        loop._last_saved = loop._position()


def attach(loop: Any, should_stop: Callable[[], bool]) -> None:
    """Make ``loop`` distributed when the Accelerator runs several processes: its stop check
    becomes the agreed (latched) one, so every rank sees the same answer at the same point."""
    loop.rank_group = None
    loop.fsdp = False
    if loop.accelerator.num_processes <= 1:
        return
    loop.fsdp = loop.profile.distributed.strategy == "fsdp"  # engine/fsdp.py
    loop.rank_group = RankGroup(loop.device)
    loop.local_stop = should_stop
    loop.should_stop = lambda: loop.rank_group.stop_agreed


def take_requests(loop: Any) -> list[str]:
    """The loop's control requests at a step boundary: read by rank 0, agreed by all."""
    group = loop.rank_group
    if group is None:
        return loop.run.take_requests()
    mine = loop.run.take_requests() if group.is_main else []
    return group.agree(mine, bool(loop.local_stop()))


# --- memory -------------------------------------------------------------------------------

def per_process_estimate(profile: Any, est: dict[str, int], processes: int
                         ) -> tuple[dict[str, int], str | None]:
    """One process's (one GPU's) share of a step's memory (``memory_estimate.estimate``) and a
    note saying how it was split. DDP: weights, AdamW state and gradients on every GPU, plus
    DDP's gradient buckets (about one more gradient copy); activations and logits 1/N (each
    micro-batch is dealt by tokens). FSDP: weights, gradients and AdamW state 1/N as well."""
    world = processes * profile.distributed.nodes
    if world <= 1:
        return est, None
    out = dict(est)
    for key in ("activations", "logits", "tokens_per_micro_batch"):
        out[key] = -(-est[key] // world)
    out["rows_per_micro_batch"] = max(1, -(-est["rows_per_micro_batch"] // world))
    if profile.distributed.strategy == "fsdp":
        for key in ("weights", "gradients", "optimizer"):
            out[key] = -(-est[key] // world)
        how = "FSDP shards weights, gradients and AdamW state"
    else:
        out["gradients"] = 2 * est["gradients"]
        how = ("DDP keeps the whole model, gradients (plus its all-reduce buckets) and AdamW "
               "state on each")
    return out, (f"per process, {world} processes ({processes} per machine): {how}; "
                 "activations are 1/N (each micro-batch is dealt to the processes by tokens)")
