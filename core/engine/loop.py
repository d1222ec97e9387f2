"""The training loop: our own, on Accelerate, read top to bottom in ``TrainingLoop.train``.

Per optimizer step: plan-driven micro-batches (``batching``), summed losses normalised by the
step's target count (so token-budget batches of varying rows weigh every target equally),
gradient clipping, AdamW, linear warm-up/decay (``optim_step``). The loss is accumulated on the
device and read only at log intervals; finiteness is checked one step late through a
non-blocking copy, so the GPU never waits for the host on an ordinary step. Control requests
(stop, checkpoint, evaluate) and signals are honoured at step boundaries, and a stop during an
evaluation is seen at its next batch (``evaluation``).

Reliability (docs/reliability.md): a resumed run continues bit-identically (RNG, data position,
accumulators, optimizer and scheduler come back from the checkpoint: ``training_checkpoints``);
a non-finite loss or gradient stops the run within one step and no checkpoint with non-finite
weights is written; a CUDA out-of-memory error in a step retries it with half the micro-batch
and twice the accumulation (same effective batch), and one in evaluation halves only the
evaluation batch.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

from tunedeck.core.engine import batching as B
from tunedeck.core.engine import distributed as D
from tunedeck.core.engine.compile_shapes import (BoundedShapes, CompileChoice, compile_model,
                                                 fixed_budget, resolve_compile)
from tunedeck.core.engine.evaluation import Evaluation
from tunedeck.core.engine.faults import FaultHooks
from tunedeck.core.engine.inputs import TrainingInputs
from tunedeck.core.engine.optim_step import DIVERGED_CAUSES, OptimizerStep, make_optimizer
from tunedeck.core.engine.precision import peak_flops, resolve_precision
from tunedeck.core.engine.state import Diverged, StopRequested, StopTraining, TrainState
from tunedeck.core.engine.training_checkpoints import TrainingCheckpoints
from tunedeck.core.runs.events import EventWriter
from tunedeck.core.runs.rundir import RunDir


class TrainingLoop(OptimizerStep, Evaluation, TrainingCheckpoints):
    def __init__(self, inputs: TrainingInputs, run: RunDir, events: EventWriter,
                 should_stop: Callable[[], bool] = lambda: False,
                 status: Callable[..., None] = lambda **kw: None,
                 hooks: FaultHooks | None = None,
                 on_eval: Callable[[int, dict[str, Any]], bool] | None = None):
        import torch
        from accelerate import Accelerator

        self.p = inputs
        self.profile = inputs.profile
        self.t = inputs.profile.training
        self.run = run
        self.events = events
        self.should_stop = should_stop
        self.status = status
        self.hooks = hooks if hooks is not None else FaultHooks.from_env()
        # Told every validation evaluation (step, metrics); True ends the run: Pruned.
        self.on_eval = on_eval
        self.precision = resolve_precision(self.t.precision)
        mp = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[self.precision]
        self.accelerator = Accelerator(mixed_precision=mp, cpu=not torch.cuda.is_available())
        self._scaler = getattr(self.accelerator, "scaler", None)  # fp16 on a GPU only
        self.device = self.accelerator.device
        self.multiple = 8  # batch widths round up to this (a compiled run: to compile_shapes' ladder)
        self.shapes: BoundedShapes | None = None  # a compiled run's bounded batch shapes
        self.compile_choice: CompileChoice | None = None  # set by build(): on/off and why
        self.pad_id = int(inputs.tokenizer.pad_token_id or 0)
        self.state = TrainState()
        self.plans: dict[int, list[np.ndarray]] = {}
        self._pending: tuple[Any, Any, int] | None = None  # last step's finiteness flag, unread
        # Marks when that flag's non-blocking copy from the GPU has landed (one event, reused).
        self._copied = torch.cuda.Event() if self.device.type == "cuda" else None
        self._last_saved: tuple[int, ...] | None = None  # position of the newest checkpoint
        self._gnorm: Any = None  # the last step's gradient norm, read at log intervals
        self._t_start = 0.0
        self._peak: float | None = None
        D.attach(self, should_stop)  # several processes: rank_group, the agreed stop check

    # --- the loop ---------------------------------------------------------------------------

    def train(self) -> str:
        """Run to the end; returns 'finished' (early stopping counts as finished). A stop raises
        StopTraining after a checkpoint, or StopRequested when nothing was trained yet; a
        search's pruner (``on_eval``) raises Pruned right after an evaluation."""
        st = self.state
        stopping_early = self._begin()
        while not stopping_early and st.step < st.total_steps:
            if st.batch_in_epoch >= len(self.plan(st.epoch)):
                stopping_early = self._end_epoch()  # evaluation or checkpoint, requests
                continue
            self._train_step()  # forward/backward over up to `ga` micro-batches, optimizer step
            if st.step % self.t.log_every_steps == 0 or st.step == st.total_steps:
                self._log_window()  # one 'step' event over the steps since the last one
            stopping_early = self._at_step_boundary()  # requests, evaluation, checkpoint
        self._end()
        return "finished"

    def _begin(self) -> bool:
        """Log window on the device, the untrained baseline evaluation, and an evaluation a stop
        interrupted before the checkpoint this run resumed from. True: early stopping."""
        import torch

        st = self.state
        self.model.train()
        self._peak = peak_flops()
        w = st.window
        w.loss_sum = torch.full((), float(w.loss_sum), device=self.device, dtype=torch.float64)
        w.t0, w.step0 = time.perf_counter(), st.step
        if (self.t.eval_at_start and st.step == 0 and st.last_eval_step < 0
                and self.p.validation is not None):
            # The curve starts where the model starts, and the gain of fine-tuning is visible.
            # Evaluation draws no random numbers: data order is untouched. A stop here raises
            # StopRequested: nothing trained, nothing to checkpoint.
            self.do_eval()
        self._t_start = time.perf_counter() - st.train_time_s
        if 0 < st.step < st.total_steps and self._eval_due() and st.last_eval_step != st.step:
            return self._guarded(self._scheduled_eval)
        return False

    def _train_step(self) -> None:
        st = self.state
        micro = self.plan(st.epoch)[st.batch_in_epoch: st.batch_in_epoch
                                    + self.t.gradient_accumulation_steps]
        n_targets = int(sum(self.p.train.n_targets[m].sum() for m in micro))
        step_loss, self._gnorm = self.optimizer_step(micro, n_targets)
        tokens = int(sum(int(self.p.train.lengths[m].sum()) for m in micro))
        samples = int(sum(len(m) for m in micro))
        st.window.add(step_loss, n_targets, tokens, samples)
        st.step += 1
        st.batch_in_epoch += len(micro)
        st.tokens_seen += tokens
        st.samples_seen += samples
        self.hooks.fire(f"step:{st.step}")

    def _log_window(self) -> None:
        st, w = self.state, self.state.window
        self.check_pending()
        now = time.perf_counter()
        dt = max(1e-9, now - w.t0)
        loss = float(w.loss_sum) / max(1, w.count)
        if not math.isfinite(loss):
            raise Diverged(f"loss is {loss} at step {st.step}; "
                           f"{DIVERGED_CAUSES.format(lr=self.t.learning_rate)}")
        st.train_time_s = now - self._t_start
        per_step = st.train_time_s / max(1, st.step)
        tps = w.tokens / dt
        ev = dict(step=st.step, total_steps=st.total_steps,
                  epoch=round(st.epoch + st.batch_in_epoch / max(1, len(self.plan(st.epoch))), 4),
                  loss=loss, lr=self.scheduler.get_last_lr()[0], grad_norm=float(self._gnorm),
                  tokens_per_s=tps, samples_per_s=w.samples / dt,
                  step_time_s=dt / max(1, st.step - w.step0), elapsed_s=st.train_time_s,
                  eta_s=per_step * (st.total_steps - st.step),
                  mfu=(6 * self.n_params * tps / self._peak) if self._peak else None)
        self.events.emit("step", **ev)
        self.status(step=st.step, total_steps=st.total_steps, epoch=ev["epoch"], loss=loss,
                    tokens_per_s=tps, eta_s=ev["eta_s"])
        w.restart(st.step)

    def _at_step_boundary(self) -> bool:
        """Requests, then the scheduled evaluation and checkpoint, then a stop (checkpoint
        first). True: early stopping."""
        st, t = self.state, self.t
        requests = D.take_requests(self)
        try:
            self._requested_eval_and_checkpoint(requests)
            if self._eval_due() and st.step < st.total_steps and self._scheduled_eval():
                return True
            if t.save_every_steps and st.step % t.save_every_steps == 0 and st.step < st.total_steps:
                self.save_checkpoint("periodic")
        except StopRequested:  # an evaluation saw a stop at a batch: checkpoint here, then stop
            requests.append("stop")
        self._stop_if_requested(requests)
        return False

    def _end_epoch(self) -> bool:
        """The epoch's evaluation (evaluations per epoch) or its checkpoint (no validation
        split). The evaluation comes before the epoch advances: a stop during it checkpoints
        a position that evaluates again on resume. True: early stopping."""
        st, t = self.state, self.t
        per_epoch_eval = t.eval_every_steps == 0 and self.p.validation is not None
        try:
            if per_epoch_eval:
                self.do_eval()
            st.epoch += 1
            st.batch_in_epoch = 0
            if per_epoch_eval and self.early_stop():
                return True
            if t.save_every_steps == 0 and (per_epoch_eval or self.p.validation is None):
                # Each evaluation, or each epoch's end without one, is the resume point.
                self.check_pending()
                self.save_checkpoint("eval" if per_epoch_eval else "epoch")
        except StopRequested:
            self._stop_if_requested(["stop"])
        return self._guarded(lambda: self._control(D.take_requests(self)))

    def _end(self) -> None:
        st = self.state
        self.check_pending()
        st.train_time_s = time.perf_counter() - self._t_start
        if self.p.validation is not None and st.last_eval_step != st.step:
            self._guarded(self.do_eval)

    # --- phases' parts ----------------------------------------------------------------------

    def _eval_due(self) -> bool:
        every = self.t.eval_every_steps
        return bool(every) and self.state.step % every == 0

    def _scheduled_eval(self) -> bool:
        self.do_eval()
        if self.early_stop():
            return True
        if self.t.save_every_steps == 0:
            self.save_checkpoint("eval")
        return False

    def _guarded(self, fn: Callable[[], Any]) -> bool:
        """``fn`` where an evaluation may see a stop: checkpoint, then StopTraining."""
        try:
            return bool(fn())
        except StopRequested:
            self._stop_if_requested(["stop"])
            return False  # not reached: _stop_if_requested raised

    def _control(self, requests: list[str]) -> bool:
        self._requested_eval_and_checkpoint(requests)
        self._stop_if_requested(requests)
        return False

    def _requested_eval_and_checkpoint(self, requests: list[str]) -> None:
        if "evaluate" in requests:
            self.do_eval()
        if "checkpoint" in requests:
            self.save_checkpoint("requested")

    def _stop_if_requested(self, requests: list[str]) -> None:
        """A stop request or signal: checkpoint, then raise StopTraining."""
        if "stop" in requests or self.should_stop():
            self.save_checkpoint("stop")
            raise StopTraining

    # --- planning and setup -----------------------------------------------------------------

    def plan(self, epoch: int) -> list[np.ndarray]:
        if epoch not in self.plans:
            sh = self.shapes  # compiled: ladder widths, one budget for every epoch
            self.plans = {epoch: B.plan_epoch(
                self.p.train.lengths if sh is None else sh.snapped, self.t.seed, epoch,
                batching=self.t.batching, batch_size=self.t.batch_size,
                batch_tokens=self.t.batch_tokens if sh is None else sh.budget,
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

    def build(self, model: Any) -> None:
        """Optimizer, schedule, and the model placed on the device (compiled when asked)."""
        from transformers import get_linear_schedule_with_warmup

        if self.fsdp:  # sharded before the optimizer: AdamW holds the shards (engine/fsdp.py)
            from tunedeck.core.engine.fsdp import shard

            model = shard(model, self.device, self.precision)
        optimizer = make_optimizer(model, self.t)
        self.state.total_steps, _ = self.planned_total_steps()
        self.compile_choice = resolve_compile(self.t.compile, self.device.type,
                                              self.state.total_steps)
        if self.compile_choice.on:  # bounded shapes change the plan: count the steps again
            self.shapes = self.bounded_shapes()
            self.state.total_steps, _ = self.planned_total_steps()
        warmup = int(math.ceil(self.t.warmup_ratio * self.state.total_steps))
        self.scheduler = get_linear_schedule_with_warmup(optimizer, warmup, self.state.total_steps)
        # FSDP: not prepared (Accelerate would wrap the sharded model in DDP on top).
        self.model, self.optimizer = ((model, optimizer) if self.fsdp
                                      else self.accelerator.prepare(model, optimizer))
        self.raw_model = model
        self.p.task.bind_model(model)
        self.n_params = sum(p.numel() for p in model.parameters())
        self.fwd_model = self.model
        if self.shapes is not None:
            self.fwd_model = compile_model(self.model, len(self.shapes.shapes()))

    def bounded_shapes(self) -> BoundedShapes:
        """A compiled run's shapes: the ladder's widths, and the budget epoch 0 packs them to
        (kept for every epoch, so each width always pads to the same rows)."""
        lengths = self.p.train.lengths
        if self.t.batching == "rows":  # fixed rows already: only the widths need bounding
            return BoundedShapes(lengths, 0, fixed_rows=self.t.batch_size)
        sh = BoundedShapes(lengths, 0)
        plan = B.plan_epoch(sh.snapped, self.t.seed, 0, batching=self.t.batching,
                            batch_size=self.t.batch_size, batch_tokens=self.t.batch_tokens,
                            multiple=self.multiple)
        return BoundedShapes(lengths, fixed_budget(plan, sh.snapped))

    def to_device(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        import torch

        nb = self.device.type == "cuda"
        return {k: torch.from_numpy(v).to(self.device, non_blocking=nb) for k, v in batch.items()}
