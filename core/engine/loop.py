"""The training loop: our own, on Accelerate.

Per optimizer step: plan-driven micro-batches (``batching``), summed losses normalised by the
step's target count (so token-budget batches of varying rows weigh every target equally),
gradient clipping, AdamW, linear warm-up/decay. The loss is accumulated on the device and read
only at log intervals; finiteness is checked one step late through a non-blocking copy, so the
GPU never waits for the host on an ordinary step. Control requests (stop, checkpoint, evaluate)
and signals are honoured at step boundaries.

Reliability (docs/reliability.md): a resumed run continues bit-identically (RNG, data position,
accumulators, optimizer and scheduler come back from the checkpoint); a non-finite loss or
gradient stops the run within one step and no checkpoint with non-finite weights is written;
a CUDA out-of-memory error in a step retries it with half the micro-batch and twice the
accumulation (same effective batch), and one in evaluation halves only the evaluation batch.
"""

from __future__ import annotations

import errno
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tunedeck.core.engine import batching as B
from tunedeck.core.engine import checkpoint as C
from tunedeck.core.engine.setup import Prepared
from tunedeck.core.errors import UserError
from tunedeck.core.runs.events import EventWriter
from tunedeck.core.runs.rundir import RunDir

# Dense bf16 tensor-core peaks, most specific name first (first match wins): "H100 PCIe" is not an
# SXM H100, "GH200" is not an H200.
PEAK_FLOPS = {"GH200": 989e12, "H100 PCIe": 756e12, "H100 NVL": 835e12, "H100": 989e12,
              "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12,
              "4090": 165e12, "3090": 71e12, "V100": 125e12, "T4": 65e12}


class StopTraining(Exception):
    """Raised at a step boundary when a stop was requested; the loop checkpoints first."""


class Diverged(Exception):
    pass


class OutOfMemory(UserError):
    """Out of device memory even at one row per micro-batch (or one row per eval batch)."""


class CheckpointWriteError(UserError):
    """A checkpoint could not be written (disk full, permissions); earlier ones are intact."""


# --- fault injection for tests -------------------------------------------------------------
# Off unless the environment asks. Used by tests/test_reliability_*.py and scripts/reliability.py
# to put a real SIGKILL, signal, disk-full error or NaN at an exact point of a real run.
#   TUNEDECK_TEST_KILL_AT_STEP=N          SIGKILL the worker right after optimizer step N
#   TUNEDECK_TEST_HOOKS="WHERE=ACTION;..."
#       WHERE:  step:N (right after optimizer step N) | ckpt:LABEL or ckpt:LABEL@N (a write
#               boundary of checkpoint.save_checkpoint / rotate, see checkpoint._boundary)
#               | step:* (every step, with SLEEPseconds) | eval or eval@N (start of a validation evaluation) | prepare (start of data
#               preparation in the worker)
#       ACTION: KILL | TERM | INT | HUP (that signal to the worker itself) | ENOSPC (raise
#               OSError(ENOSPC)) | NAN (step:N only: the loss of step N is made NaN)
#               | SLEEPs (step:* only: sleep s seconds after every step)
_SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT,
            "HUP": signal.SIGHUP}


class FaultHooks:
    def __init__(self, spec: dict[str, str] | None = None):
        self.spec = dict(spec or {})

    @classmethod
    def from_env(cls, env: Any = None) -> "FaultHooks":
        env = os.environ if env is None else env
        spec: dict[str, str] = {}
        kill = env.get("TUNEDECK_TEST_KILL_AT_STEP", "").strip()
        if kill:
            spec[f"step:{int(kill)}"] = "KILL"
        for item in env.get("TUNEDECK_TEST_HOOKS", "").split(";"):
            if "=" in item:
                where, action = item.split("=", 1)
                spec[where.strip()] = action.strip().upper()
        return cls(spec)

    def __bool__(self) -> bool:
        return bool(self.spec)

    def nan_at(self, step: int) -> bool:
        return self.spec.get(f"step:{step}") == "NAN"

    def fire(self, where: str, step: int | None = None) -> None:
        if not self.spec:
            return
        action = self.spec.get(f"{where}@{step}") if step is not None else None
        action = action or self.spec.get(where)
        delay = self.spec.get(where.split(":")[0] + ":*", "")
        if delay.startswith("SLEEP"):  # step:*=SLEEP0.05 slows every step (lifecycle tests)
            time.sleep(float(delay[5:] or 0.05))
        if not action or action == "NAN":
            return
        if action == "ENOSPC":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.kill(os.getpid(), _SIGNALS[action])
        if action == "KILL":  # pragma: no cover - never returns
            time.sleep(60)


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
    pending_loss_sum: float = 0.0  # loss summed since the last log line (kept across resume)
    pending_count: int = 0
    pending_tokens: int = 0
    pending_samples: int = 0
    history: list[list[float]] = field(default_factory=list)  # [step, loss] at log intervals
    grad_scaler: dict[str, Any] | None = None  # fp16 loss scale, so a resume keeps it

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainState":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def resolve_precision(precision: str) -> str:
    import torch

    if precision == "auto":
        if torch.cuda.is_available():
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if cpu_has_bf16() else "fp32"
    return precision


def cpu_has_bf16() -> bool:
    """A CPU with bf16 matrix instructions (AVX512-BF16 or AMX): autocast to bf16 pays there."""
    import torch

    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except Exception:  # pragma: no cover - private API; absent or failing means no
            pass
    return False


def peak_flops() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    for key, val in PEAK_FLOPS.items():
        if key in name:
            return val
    return None


class Trainer:
    def __init__(self, prepared: Prepared, run: RunDir, events: EventWriter,
                 should_stop: Callable[[], bool] = lambda: False,
                 status: Callable[..., None] = lambda **kw: None,
                 hooks: FaultHooks | None = None):
        import torch
        from accelerate import Accelerator

        self.p = prepared
        self.profile = prepared.profile
        self.t = prepared.profile.training
        self.run = run
        self.events = events
        self.should_stop = should_stop
        self.status = status
        self.hooks = hooks if hooks is not None else FaultHooks.from_env()
        self.precision = resolve_precision(self.t.precision)
        mp = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[self.precision]
        self.accelerator = Accelerator(mixed_precision=mp, cpu=not torch.cuda.is_available())
        self._scaler = getattr(self.accelerator, "scaler", None)  # fp16 on a GPU only
        self.device = self.accelerator.device
        self.multiple = 64 if self.t.compile else 8
        self.pad_id = int(prepared.tokenizer.pad_token_id or 0)
        self.state = TrainState()
        self.plans: dict[int, list[np.ndarray]] = {}
        self._pending: tuple[Any, Any, int] | None = None  # last step's finiteness flag, unread
        # Marks when that flag's non-blocking copy from the GPU has landed (one event, reused).
        self._copied = torch.cuda.Event() if self.device.type == "cuda" else None
        self._acc: Callable[[], tuple[Any, int, int, int]] | None = None
        self._last_saved: tuple[int, ...] | None = None  # position of the newest checkpoint

    # --- planning ---------------------------------------------------------------------------

    def plan(self, epoch: int) -> list[np.ndarray]:
        if epoch not in self.plans:
            self.plans = {epoch: B.plan_epoch(
                self.p.train.lengths, self.t.seed, epoch, batching=self.t.batching,
                batch_size=self.t.batch_size, batch_tokens=self.t.batch_tokens,
                multiple=self.multiple)}
        return self.plans[epoch]

    def planned_total_steps(self) -> tuple[int, int]:
        """(total optimizer steps, steps per epoch of epoch 0)."""
        ga = self.t.gradient_accumulation_steps
        per_epoch0 = math.ceil(len(self.plan(0)) / ga)
        if self.t.max_steps > 0:
            return self.t.max_steps, per_epoch0
        full = int(math.floor(self.t.epochs))
        total = sum(math.ceil(len(self.plan(e)) / ga) for e in range(full))
        frac = self.t.epochs - full
        if frac > 1e-9:
            total += math.ceil(frac * math.ceil(len(self.plan(full)) / ga))
        self.plans = {}
        return max(1, total), per_epoch0

    # --- model/optimizer --------------------------------------------------------------------

    def build(self, model: Any) -> None:
        import torch
        from transformers import get_linear_schedule_with_warmup

        decay, no_decay = [], []
        for name, prm in model.named_parameters():
            if not prm.requires_grad:
                continue
            (no_decay if prm.ndim < 2 or "norm" in name.lower() else decay).append(prm)
        groups = [{"params": decay, "weight_decay": self.t.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        kwargs: dict[str, Any] = {"lr": self.t.learning_rate}
        # One fused kernel per step on CUDA and on CPU (torch >= 2.4). On CPU the foreach path
        # makes some ten passes over every parameter with fresh temporaries: a third of a small
        # model's step (benchmarks/throughput.py, sms workload).
        try:
            optimizer = torch.optim.AdamW(groups, fused=True, **kwargs)
        except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
            optimizer = torch.optim.AdamW(groups, foreach=True, **kwargs)
        self.state.total_steps, _ = self.planned_total_steps()
        warmup = int(math.ceil(self.t.warmup_ratio * self.state.total_steps))
        self.scheduler = get_linear_schedule_with_warmup(optimizer, warmup, self.state.total_steps)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.raw_model = model
        self.n_params = sum(p.numel() for p in model.parameters())
        self.fwd_model = self.model
        if self.t.compile:
            # Token-budget batches vary in rows as well as width, so static shapes recompile for
            # each new (rows, width) and stop at torch._dynamo's recompile_limit (8 graphs within
            # the first 43 steps of the BERT workload), running eager after that. dynamic=None:
            # one static graph, then one with symbolic rows and width.
            self.fwd_model = torch.compile(self.model, dynamic=None)

    def _inner_optimizer(self) -> Any:
        return self.optimizer.optimizer if hasattr(self.optimizer, "optimizer") else self.optimizer

    def resume_from(self, path: Path) -> None:
        total = self.state.total_steps
        d = C.load_checkpoint(path, self.accelerator.unwrap_model(self.model),
                              self._inner_optimizer(), self.scheduler)
        self.state = TrainState.from_dict(d)
        if self._scaler is not None and self.state.grad_scaler:
            self._scaler.load_state_dict(self.state.grad_scaler)
        self.state.total_steps = self.state.total_steps or total
        st = self.state
        self._last_saved = (st.step, st.epoch, st.batch_in_epoch, st.last_eval_step)

    # --- one batch --------------------------------------------------------------------------

    def to_device(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        import torch

        nb = self.device.type == "cuda"
        return {k: torch.from_numpy(v).to(self.device, non_blocking=nb) for k, v in batch.items()}

    def forward_loss(self, idx: np.ndarray) -> Any:
        batch = self.to_device(self.p.train.collate(idx, self.pad_id, self.multiple))
        out = self.fwd_model(**self.p.task.forward_kwargs(batch))
        return self.p.task.loss_sum(out.logits, batch["labels"])

    def eval_forward(self, batch: dict[str, Any]) -> Any:
        with self.accelerator.autocast():
            return self.model(**self.p.task.forward_kwargs(batch))

    def micro_rows(self, micro: list[np.ndarray]) -> int:
        """Rows in the largest piece of this step's micro-batches after the OOM split."""
        return max((math.ceil(len(m) / self.state.batch_scale) for m in micro), default=0)

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

    # --- evaluation -------------------------------------------------------------------------

    def eval_batch_size(self) -> int:
        return self.state.eval_batch_size or self.t.eval_batch_size or 2 * self.t.batch_size

    def evaluate(self, split: str = "validation") -> dict[str, Any] | None:
        import torch

        data = self.p.validation if split == "validation" else self.p.test
        if data is None or len(data) == 0:
            return None
        if split == "validation":
            self.hooks.fire("eval", self.state.step)
        self.model.eval()
        try:
            while True:
                bs = self.eval_batch_size()
                oom = False
                try:
                    return self._evaluate(data, bs)
                except torch.OutOfMemoryError:
                    oom = True
                if oom:  # outside the except block: its traceback holds the batch's tensors
                    self._eval_oom_backoff(split, bs)
        finally:
            self.model.train()

    def _evaluate(self, data: Any, bs: int) -> dict[str, Any]:
        import torch

        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        count = 0
        acc: dict[str, Any] = {}
        with torch.no_grad():
            for idx in B.plan_eval(data.lengths, bs):
                batch = self.to_device(data.collate(idx, self.pad_id, self.multiple))
                out = self.eval_forward(batch)
                loss_sum += self.p.task.loss_sum(out.logits, batch["labels"]).double()
                count += int(data.n_targets[idx].sum())
                self.p.task.eval_accumulate(acc, out.logits, batch["labels"])
        loss = float(loss_sum) / max(1, count)
        return self.p.task.eval_metrics(acc, loss)

    def _eval_oom_backoff(self, split: str, bs: int) -> None:
        _free_device_memory()
        if bs <= 1:
            raise OutOfMemory(
                f"out of device memory evaluating the {split} split at step {self.state.step}, "
                f"even with one row per batch; lower training.max_length or pick a smaller model")
        self.state.eval_batch_size = max(1, bs // 2)
        self.state.oom_retries += 1
        msg = (f"out of device memory evaluating the {split} split with batches of {bs} rows; "
               f"retrying with {self.state.eval_batch_size} (training batch unchanged)")
        self.events.emit("log", level="warning", message=msg, kind="oom_eval_backoff",
                         step=self.state.step, eval_batch_size=self.state.eval_batch_size)
        self.status(eval_batch_size=self.state.eval_batch_size, oom_retries=self.state.oom_retries)

    # --- checkpoints ------------------------------------------------------------------------

    def check_pending(self) -> None:
        if self._pending is not None:
            (flag, copied, step), self._pending = self._pending, None
            if copied is not None:
                copied.synchronize()  # the non-blocking copy from the GPU has landed
            self.check_finite(flag, step)

    def save_checkpoint(self, reason: str) -> Path | None:
        import torch

        st = self.state
        # Never write non-finite weights: read the last step's flag, then look at the weights.
        self.check_pending()
        unwrapped = self.accelerator.unwrap_model(self.model)
        for name, prm in unwrapped.named_parameters():
            if not torch.isfinite(prm).all():
                raise Diverged(f"weights became NaN/Inf at step {st.step} ({name}); "
                               f"{_CAUSES.format(lr=self.t.learning_rate)}")
        mark = (st.step, st.epoch, st.batch_in_epoch, st.last_eval_step)
        if self._last_saved == mark and (self.run.checkpoints_dir / f"step-{st.step}").is_dir():
            return None  # nothing changed since (e.g. a stop right after a periodic save)
        if self._scaler is not None:
            st.grad_scaler = self._scaler.state_dict()
        if self._acc is not None:
            loss_acc, count, toks, samples = self._acc()
            st.pending_loss_sum = float(loss_acc)
            st.pending_count, st.pending_tokens, st.pending_samples = count, toks, samples
        hooks = self.hooks
        prev_hook = C._crash_hook
        if hooks:
            C._crash_hook = lambda label: hooks.fire(f"ckpt:{label}", st.step)
        try:
            path = C.save_checkpoint(self.run.checkpoints_dir, st.step, unwrapped,
                                     self._inner_optimizer(), self.scheduler, asdict(st))
            best = self.run.checkpoints_dir / f"step-{st.best_step}" if st.best_step else None
            C.rotate(self.run.checkpoints_dir, self.t.keep_checkpoints, protect=best)
        except OSError as e:
            last = C.list_complete(self.run.checkpoints_dir)
            keep = f"; the last complete checkpoint ({last[-1].name}) is intact" if last else ""
            why = e.strerror or str(e)
            hint = ("free disk space" if e.errno in (errno.ENOSPC, errno.EDQUOT)
                    else "check the directory's permissions and free space")
            raise CheckpointWriteError(
                f"cannot write checkpoint step-{st.step} in {self.run.checkpoints_dir}: {why}"
                f"{keep}; {hint}, then 'tunedeck resume {self.run.id}'") from None
        finally:
            C._crash_hook = prev_hook
        self._last_saved = mark
        self.events.emit("checkpoint", step=st.step, path=str(path), reason=reason)
        return path

    # --- the loop ---------------------------------------------------------------------------

    def train(self) -> str:
        """Run to the end. Returns 'finished' or 'stopped' (early stopping counts as finished)."""
        import torch

        st, t = self.state, self.t
        ga = t.gradient_accumulation_steps
        self.model.train()
        loss_acc = torch.full((), st.pending_loss_sum, device=self.device, dtype=torch.float64)
        count_acc, tok_acc, samples_acc = st.pending_count, st.pending_tokens, st.pending_samples
        self._acc = lambda: (loss_acc, count_acc, tok_acc, samples_acc)
        log_t0 = time.perf_counter()
        log_step0 = st.step
        peak = peak_flops()
        eval_every = t.eval_every_steps
        save_every = t.save_every_steps
        if t.eval_at_start and st.step == 0 and st.last_eval_step < 0 and self.p.validation is not None:
            # The untrained baseline: the curve starts where the model starts, and the gain of
            # fine-tuning is visible. Evaluation draws no random numbers: data order is untouched.
            self.do_eval()
        t_start = time.perf_counter() - st.train_time_s

        while st.step < st.total_steps:
            plan = self.plan(st.epoch)
            if st.batch_in_epoch >= len(plan):
                st.epoch += 1
                st.batch_in_epoch = 0
                if eval_every == 0 and self.p.validation is not None:
                    self.check_pending()
                    self.do_eval()
                    if self.early_stop():
                        break
                    if save_every == 0:
                        self.save_checkpoint("eval")
                elif save_every == 0 and self.p.validation is None:
                    # No evaluations to checkpoint at: each epoch's end is the resume point.
                    self.check_pending()
                    self.save_checkpoint("epoch")
                self._control(self.run.take_requests())
                continue
            # One optimizer step over up to `ga` micro-batches of this epoch.
            micro = plan[st.batch_in_epoch: st.batch_in_epoch + ga]
            n_targets = int(sum(self.p.train.n_targets[m].sum() for m in micro))
            denom = float(max(1, n_targets))
            while True:
                oom = False
                try:
                    step_loss = self._accumulate(micro, denom)
                except torch.OutOfMemoryError:
                    oom = True
                if not oom:
                    break
                # Outside the except block, so the failed attempt's tensors can be freed.
                self.optimizer.zero_grad(set_to_none=True)
                _free_device_memory()
                self._oom_backoff(micro)
            step_tokens = int(sum(int(self.p.train.lengths[m].sum()) for m in micro))
            step_samples = int(sum(len(m) for m in micro))
            if step_loss is not None:
                loss_acc += step_loss
            tok_acc += step_tokens
            samples_acc += step_samples
            count_acc += n_targets
            if t.max_grad_norm > 0:
                gnorm = self.accelerator.clip_grad_norm_(self.model.parameters(), t.max_grad_norm)
            else:
                gnorm = torch.linalg.vector_norm(torch.stack([
                    p.grad.detach().norm() for p in self.model.parameters() if p.grad is not None]))
            # Finiteness of this step's loss and gradient: copied without blocking, read before
            # the next optimizer step (or any checkpoint), so a bad step stops the run within one.
            lossf = step_loss.float() if step_loss is not None else torch.zeros((), device=self.device)
            # fp16: the loss scaler skips steps with inf gradients and lowers the scale, so an
            # inf gradient norm is routine there; a diverging fp16 run shows in the loss.
            grad_ok = (torch.ones((), dtype=torch.bool, device=self.device) if self._scaler
                       else torch.isfinite(gnorm.detach().float()))
            flag = torch.stack([torch.isfinite(lossf), grad_ok])
            self.check_pending()
            flag = flag.to("cpu", non_blocking=True)
            if self._copied is not None:
                self._copied.record()
            self._pending = (flag, self._copied, st.step + 1)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            st.step += 1
            st.batch_in_epoch += len(micro)
            st.tokens_seen += step_tokens
            st.samples_seen += step_samples
            self.hooks.fire(f"step:{st.step}")

            if st.step % t.log_every_steps == 0 or st.step == st.total_steps:
                self.check_pending()
                now = time.perf_counter()
                dt = max(1e-9, now - log_t0)
                loss_val = float(loss_acc) / max(1, count_acc)
                if not math.isfinite(loss_val):
                    raise Diverged(f"loss is {loss_val} at step {st.step}; "
                                   f"{_CAUSES.format(lr=t.learning_rate)}")
                steps = st.step - log_step0
                st.train_time_s = now - t_start
                per_step = st.train_time_s / max(1, st.step)
                tps = tok_acc / dt
                mfu = (6 * self.n_params * tps / peak) if peak else None
                st.history.append([st.step, loss_val])
                ev = dict(step=st.step, total_steps=st.total_steps,
                          epoch=round(st.epoch + st.batch_in_epoch / max(1, len(plan)), 4),
                          loss=loss_val, lr=self.scheduler.get_last_lr()[0],
                          grad_norm=float(gnorm), tokens_per_s=tps, samples_per_s=samples_acc / dt,
                          step_time_s=dt / max(1, steps), elapsed_s=st.train_time_s,
                          eta_s=per_step * (st.total_steps - st.step), mfu=mfu)
                self.events.emit("step", **ev)
                self.status(step=st.step, total_steps=st.total_steps, epoch=ev["epoch"],
                            loss=loss_val, tokens_per_s=tps, eta_s=ev["eta_s"])
                loss_acc.zero_()
                count_acc = 0
                tok_acc = samples_acc = 0
                log_t0 = time.perf_counter()
                log_step0 = st.step
            # Control at the step boundary.
            requests = self.run.take_requests()
            if "evaluate" in requests:
                self.do_eval()
            if "checkpoint" in requests:
                self.save_checkpoint("requested")
            if eval_every and st.step % eval_every == 0 and st.step < st.total_steps:
                self.do_eval()
                if self.early_stop():
                    break
                if save_every == 0:
                    self.save_checkpoint("eval")
            if save_every and st.step % save_every == 0 and st.step < st.total_steps:
                self.save_checkpoint("periodic")
            self._control([r for r in requests if r == "stop"])
        self.check_pending()
        st.train_time_s = time.perf_counter() - t_start
        if self.p.validation is not None and st.last_eval_step != st.step:
            self.do_eval()
        return "finished"

    def _control(self, requests: list[str]) -> None:
        """Stop requests and signals: checkpoint, then raise StopTraining."""
        if "evaluate" in requests:
            self.do_eval()
        if "checkpoint" in requests:
            self.save_checkpoint("requested")
        if "stop" in requests or self.should_stop():
            self.save_checkpoint("stop")
            raise StopTraining

    def check_finite(self, flag: Any, step: int) -> None:
        loss_ok, grad_ok = (bool(x) for x in flag.reshape(-1)[:2])
        if loss_ok and grad_ok:
            return
        what = "loss" if not loss_ok else "gradient norm (loss was finite)"
        raise Diverged(f"{what} became NaN/Inf at step {step}; "
                       f"{_CAUSES.format(lr=self.t.learning_rate)}")

    def do_eval(self) -> dict[str, Any] | None:
        self.check_pending()
        metrics = self.evaluate("validation")
        st = self.state
        st.last_eval_step = st.step
        if metrics is None:
            return None
        self.events.emit("eval", split="validation", step=st.step, metrics=_scalars(metrics))
        key = self.p.task.metric_for_best
        val = metrics.get(key)
        # The untrained model (eval_at_start, step 0) is the baseline, not a "best": there is no
        # checkpoint of it to keep, and a listing should not show it as the run's result.
        better = val is not None and st.step > 0 and (st.best_metric is None or (
            val > st.best_metric if self.p.task.greater_is_better else val < st.best_metric))
        if better:
            st.best_metric, st.best_step = float(val), st.step
        eval_loss = metrics["eval_loss"]
        if st.best_eval_loss is None or eval_loss < st.best_eval_loss - 1e-12:
            st.best_eval_loss = eval_loss
            st.evals_without_improvement = 0
        else:
            st.evals_without_improvement += 1
        self.status(best={"metric": key, "value": st.best_metric, "step": st.best_step},
                    eval_loss=eval_loss)
        return metrics

    def load_best_weights(self) -> int | None:
        """Put the best validation evaluation's weights back (training.load_best_model_at_end);
        returns its step, or None when the final weights stay (already the best, or no
        checkpoint of the best step)."""
        st = self.state
        if st.best_step is None or st.best_step == st.step:
            return None
        path = self.run.checkpoints_dir / f"step-{st.best_step}"
        if not C.is_complete(path):
            self.events.emit("log", level="warning", message=(
                f"load_best_model_at_end: the best evaluation (step {st.best_step}) has no "
                f"checkpoint (save_every_steps = {self.t.save_every_steps} does not save at "
                "evaluations; 0 does): model/ holds the final weights"))
            return None
        try:
            C.load_weights(path, self.accelerator.unwrap_model(self.model))
        except C.CheckpointError as e:  # a damaged best checkpoint must not cost the run
            self.events.emit("log", level="warning", message=(
                f"load_best_model_at_end: {e}; model/ holds the final weights"))
            return None
        self.events.emit("log", level="info", message=(
            f"model/ and the test metrics use the best validation weights: step {st.best_step} "
            f"({self.p.task.metric_for_best} {st.best_metric:.4f}), not the last step {st.step}"))
        return st.best_step

    def early_stop(self) -> bool:
        pat = self.t.early_stopping_patience
        if pat and self.state.evals_without_improvement >= pat:
            self.events.emit("log", level="info", message=(
                f"early stopping at step {self.state.step}: validation loss did not improve "
                f"for {pat} evaluations"))
            return True
        return False


_CAUSES = ("likely causes: learning rate too high (training.learning_rate = {lr:g}; try 10x "
           "lower), fp16 overflow (use training.precision = 'bf16' or 'fp32'), or extreme input "
           "data; no checkpoint with non-finite weights was written, start a new run with the fix")


def _free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
