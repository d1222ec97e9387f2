"""Evaluation inside a run: the validation/test loss and task metrics, the out-of-memory
back-off (halves only the evaluation batch), the best-metric and early-stopping bookkeeping.

A validation evaluation checks for a stop before every batch and raises ``StopRequested``:
a stop is seen within one batch, not after the whole split. ``Evaluation`` is a part of
``loop.TrainingLoop`` (it uses the loop's model, data, state, hooks, events and status).
"""

from __future__ import annotations

from typing import Any

from tunedeck.core.engine import batching as B
from tunedeck.core.engine.precision import free_device_memory
from tunedeck.core.engine.state import OutOfMemory, Pruned, StopRequested


class Evaluation:
    def eval_batch_size(self) -> int:
        return self.state.eval_batch_size or self.t.eval_batch_size or 2 * self.t.batch_size

    def eval_forward(self, batch: dict[str, Any]) -> Any:
        # Distributed: rank 0 alone evaluates, so not through DDP (its forward syncs buffers).
        model = self.raw_model if getattr(self, "rank_group", None) is not None else self.model
        with self.accelerator.autocast():
            return model(**self.p.task.forward_kwargs(batch))

    def evaluate(self, split: str = "validation") -> dict[str, Any] | None:
        """Metrics of ``split`` (None when it is empty). A validation evaluation stops at the
        next batch when a stop is requested; the final test evaluation runs to its end."""
        import torch

        data = self.p.validation if split == "validation" else self.p.test
        if data is None or len(data) == 0:
            return None
        interruptible = split == "validation"
        if interruptible:
            self.hooks.fire("eval", self.state.step)
        self.model.eval()
        try:
            while True:
                bs = self.eval_batch_size()
                oom = False
                try:
                    return self._evaluate(data, bs, interruptible)
                except torch.OutOfMemoryError:
                    oom = True
                if oom:  # outside the except block: its traceback holds the batch's tensors
                    self._eval_oom_backoff(split, bs)
        finally:
            self.model.train()

    def _evaluate(self, data: Any, bs: int, interruptible: bool) -> dict[str, Any]:
        import torch

        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        count = 0
        acc: dict[str, Any] = {}
        with torch.no_grad():
            for idx in B.plan_eval(data.lengths, bs):
                if interruptible:
                    self.hooks.fire("eval-batch", self.state.step)
                    if self.should_stop():
                        raise StopRequested("stop requested during evaluation")
                batch = self.to_device(data.collate(idx, self.pad_id, self.multiple))
                out = self.eval_forward(batch)
                loss_sum += self.p.task.loss_sum(out.logits, batch["labels"]).double()
                count += int(data.n_targets[idx].sum())
                self.p.task.eval_accumulate(acc, out.logits, batch["labels"])
        loss = float(loss_sum) / max(1, count)
        return self.p.task.eval_metrics(acc, loss)

    def _eval_oom_backoff(self, split: str, bs: int) -> None:
        free_device_memory()
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

    def do_eval(self) -> dict[str, Any] | None:
        """A validation evaluation at this step: event, best metric, early-stopping count."""
        self.check_pending()
        group = getattr(self, "rank_group", None)
        metrics = (group.validation_metrics(self) if group is not None
                   else self.evaluate("validation"))
        st = self.state
        st.last_eval_step = st.step
        if metrics is None:
            return None
        self.events.emit("eval", split="validation", step=st.step,
                         metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        self._record_best(metrics)
        self.status(best={"metric": self.p.task.metric_for_best, "value": st.best_metric,
                          "step": st.best_step}, eval_loss=metrics["eval_loss"])
        on_eval = getattr(self, "on_eval", None)
        if on_eval is not None and on_eval(st.step, metrics):
            raise Pruned(f"pruned after the evaluation at step {st.step}")
        return metrics

    def _record_best(self, metrics: dict[str, Any]) -> None:
        st = self.state
        val = metrics.get(self.p.task.metric_for_best)
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

    def early_stop(self) -> bool:
        pat = self.t.early_stopping_patience
        if pat and self.state.evals_without_improvement >= pat:
            self.events.emit("log", level="info", message=(
                f"early stopping at step {self.state.step}: validation loss did not improve "
                f"for {pat} evaluations"))
            return True
        return False
