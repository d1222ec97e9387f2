"""What a run knows about itself between steps (saved in every checkpoint), and how a run ends
early: stop requests, divergence, out of memory, a checkpoint that cannot be written."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

from tunedeck.core.errors import UserError


class StopRequested(BaseException):
    """A stop (signal or ``control/*-stop``) seen outside a step boundary: during data
    preparation, tokenization, model loading or an evaluation. A BaseException, like
    KeyboardInterrupt, so that no ``except Exception`` on the way swallows it."""


class StopTraining(Exception):
    """Raised at a step boundary when a stop was requested; the loop checkpoints first."""


class Diverged(Exception):
    pass


class Pruned(Exception):
    """A search trial's pruner ended the run after a validation evaluation (``on_eval``)."""


class OutOfMemory(UserError):
    """Out of device memory even at one row per micro-batch (or one row per eval batch)."""


class CheckpointWriteError(UserError):
    """A checkpoint could not be written (disk full, permissions); earlier ones are intact."""


@dataclass
class LogWindow:
    """Sums since the last ``step`` event. The loss stays on the device (a float tensor once the
    loop starts) so an ordinary step never waits for the host; a checkpoint keeps the sums so a
    resumed run's first log line covers the same steps as an uninterrupted run's."""

    loss_sum: Any = 0.0
    count: int = 0  # loss targets
    tokens: int = 0
    samples: int = 0
    t0: float = field(default_factory=time.perf_counter)  # wall clock: not saved
    step0: int = 0

    def add(self, step_loss: Any, n_targets: int, tokens: int, samples: int) -> None:
        if step_loss is not None:
            self.loss_sum += step_loss
        self.count += n_targets
        self.tokens += tokens
        self.samples += samples

    def restart(self, step: int) -> None:
        if hasattr(self.loss_sum, "zero_"):
            self.loss_sum.zero_()
        else:
            self.loss_sum = 0.0
        self.count = self.tokens = self.samples = 0
        self.t0, self.step0 = time.perf_counter(), step


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done
    epoch: int = 0  # epoch in progress
    batch_in_epoch: int = 0  # micro-batches of this epoch consumed
    total_steps: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    best_eval_loss: float | None = None
    evals_without_improvement: int = 0
    batch_scale: int = 1  # OOM back-off: micro-batches are split into this many parts
    eval_batch_size: int = 0  # evaluation rows per batch; lowered by an OOM in evaluation
    oom_retries: int = 0
    tokens_seen: int = 0
    samples_seen: int = 0
    train_time_s: float = 0.0
    last_eval_step: int = -1
    grad_scaler: dict[str, Any] | None = None  # fp16 loss scale, so a resume keeps it
    window: LogWindow = field(default_factory=LogWindow)

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's trainer_state.json; the window's sums keep their old key names
        (pending_*) so checkpoints of earlier versions resume."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "window"}
        w = self.window
        d.update(pending_loss_sum=float(w.loss_sum), pending_count=w.count,
                 pending_tokens=w.tokens, pending_samples=w.samples)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainState":
        # Unknown keys (e.g. the unbounded loss "history" of earlier versions) are dropped.
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "window"}
        st = cls(**known)
        st.window = LogWindow(float(d.get("pending_loss_sum", 0.0)), int(d.get("pending_count", 0)),
                              int(d.get("pending_tokens", 0)), int(d.get("pending_samples", 0)),
                              step0=st.step)
        return st
