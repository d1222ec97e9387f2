"""One optimizer step: micro-batch forward/backward with the loss summed on the device, the
out-of-memory back-off, gradient clipping, and the finiteness check read one step late.

``OptimizerStep`` is a part of ``loop.TrainingLoop`` (it uses the loop's accelerator, model,
optimizer, scheduler, state, hooks, events and status callback), kept here so the loop module
reads as the loop.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tunedeck.core.engine.precision import free_device_memory
from tunedeck.core.engine.state import Diverged, OutOfMemory

DIVERGED_CAUSES = (
    "likely causes: learning rate too high (training.learning_rate = {lr:g}; try 10x lower), "
    "fp16 overflow (use training.precision = 'bf16' or 'fp32'), or extreme input data; no "
    "checkpoint with non-finite weights was written, start a new run with the fix")


def make_optimizer(model: Any, t: Any) -> Any:
    """AdamW, no weight decay on biases and norms."""
    import torch

    decay, no_decay = [], []
    for name, prm in model.named_parameters():
        if not prm.requires_grad:
            continue
        (no_decay if prm.ndim < 2 or "norm" in name.lower() else decay).append(prm)
    groups = [{"params": decay, "weight_decay": t.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # One fused kernel per step on CUDA and on CPU (torch >= 2.4). On CPU the foreach path makes
    # some ten passes over every parameter with fresh temporaries: a third of a small model's
    # step (benchmarks/throughput.py, sms workload).
    try:
        return torch.optim.AdamW(groups, fused=True, lr=t.learning_rate)
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(groups, foreach=True, lr=t.learning_rate)


class OptimizerStep:
    def forward_loss(self, idx: np.ndarray) -> Any:
        arrays = self.p.train.collate(idx, self.pad_id, self.multiple)
        if self.shapes is not None:  # compiled: pad to one of the run's few (rows, width)
            arrays = self.shapes.pad(arrays, self.pad_id)
        batch = self.to_device(arrays)
        out = self.fwd_model(**self.p.task.forward_kwargs(batch))
        return self.p.task.loss_sum(out.logits, batch["labels"])

    def micro_rows(self, micro: list[np.ndarray]) -> int:
        """Rows in the largest piece of this step's micro-batches after the OOM split."""
        return max((math.ceil(len(m) / self.state.batch_scale) for m in micro), default=0)

    def optimizer_step(self, micro: list[np.ndarray], n_targets: int) -> tuple[Any, Any]:
        """Forward/backward over ``micro``, then clip and step; returns (summed loss, grad norm).
        The loss and gradient finiteness flag is copied without blocking and read before the
        next optimizer step (or any checkpoint): a bad step stops the run within one."""
        import torch

        group = getattr(self, "rank_group", None)
        if group is not None:  # distributed: this rank's share of each micro-batch
            step_loss = group.accumulate(self, micro, float(max(1, n_targets)))
        else:
            step_loss = self._accumulate_with_backoff(micro, float(max(1, n_targets)))
        if getattr(self, "fsdp", False):  # sharded DTensor gradients: a norm over every rank
            from tunedeck.core.engine.fsdp import clip_and_norm

            gnorm = clip_and_norm(self.model, self.t.max_grad_norm)
        elif self.t.max_grad_norm > 0:
            gnorm = self.accelerator.clip_grad_norm_(self.model.parameters(), self.t.max_grad_norm)
        else:
            gnorm = torch.linalg.vector_norm(torch.stack([
                p.grad.detach().norm() for p in self.model.parameters() if p.grad is not None]))
        lossf = step_loss.float() if step_loss is not None else torch.zeros((), device=self.device)
        # fp16: the loss scaler skips steps with inf gradients and lowers the scale, so an inf
        # gradient norm is routine there; a diverging fp16 run shows in the loss.
        grad_ok = (torch.ones((), dtype=torch.bool, device=self.device) if self._scaler
                   else torch.isfinite(gnorm.detach().float()))
        flag = torch.stack([torch.isfinite(lossf), grad_ok])
        self.check_pending()
        flag = flag.to("cpu", non_blocking=True)
        if self._copied is not None:
            self._copied.record()
        self._pending = (flag, self._copied, self.state.step + 1)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return step_loss, gnorm

    def _accumulate_with_backoff(self, micro: list[np.ndarray], denom: float) -> Any:
        import torch

        while True:
            oom = False
            try:
                return self._accumulate(micro, denom)
            except torch.OutOfMemoryError:
                oom = True
            if oom:  # outside the except block, so the failed attempt's tensors can be freed
                self.optimizer.zero_grad(set_to_none=True)
                free_device_memory()
                self._oom_backoff(micro)

    def _accumulate(self, micro: list[np.ndarray], denom: float) -> Any:
        """Forward/backward over one step's micro-batches; returns the step's summed loss."""
        step_loss = None
        nan = self.hooks.nan_at(self.state.step + 1)
        for idx in micro:
            scale = self.state.batch_scale
            parts = np.array_split(idx, scale) if scale > 1 else [idx]
            for part in parts:
                if len(part) == 0:
                    continue
                loss = self.forward_loss(part)
                if nan:
                    loss = loss * float("nan")
                self.accelerator.backward(loss / denom)
                d = loss.detach().double()
                step_loss = d if step_loss is None else step_loss + d
        return step_loss

    def _oom_backoff(self, micro: list[np.ndarray]) -> None:
        """After an OOM in a training step: halve the micro-batch, double the accumulation."""
        st = self.state
        rows = self.micro_rows(micro)
        where = (f"training step {st.step + 1} (micro-batch of {rows} rows, max_length "
                 f"{self.t.max_length}, precision {self.precision})")
        if rows <= 1:
            raise OutOfMemory(
                f"out of device memory in {where}, even with one row per micro-batch; lower "
                "training.max_length, use training.precision = 'bf16', or pick a smaller model "
                "('tunedeck profile check --preflight' estimates the memory a profile needs)")
        st.batch_scale *= 2
        st.oom_retries += 1
        new_rows = self.micro_rows(micro)
        accum = self.t.gradient_accumulation_steps * st.batch_scale
        msg = (f"out of device memory in {where}; retrying with micro-batches of at most "
               f"{new_rows} rows and {accum}x gradient accumulation (same effective batch)")
        self.events.emit("log", level="warning", message=msg, kind="oom_backoff",
                         step=st.step + 1, batch_scale=st.batch_scale, micro_batch_rows=new_rows,
                         gradient_accumulation=accum)
        self.status(batch_scale=st.batch_scale, micro_batch_rows=new_rows,
                    gradient_accumulation=accum, oom_retries=st.oom_retries)

    def check_pending(self) -> None:
        """Read the last step's finiteness flag (waits for its copy from the GPU)."""
        if self._pending is not None:
            (flag, copied, step), self._pending = self._pending, None
            if copied is not None:
                copied.synchronize()
            self.check_finite(flag, step)

    def check_finite(self, flag: Any, step: int) -> None:
        loss_ok, grad_ok = (bool(x) for x in flag.reshape(-1)[:2])
        if loss_ok and grad_ok:
            return
        what = "loss" if not loss_ok else "gradient norm (loss was finite)"
        raise Diverged(f"{what} became NaN/Inf at step {step}; "
                       f"{DIVERGED_CAUSES.format(lr=self.t.learning_rate)}")
