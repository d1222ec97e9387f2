"""One run inside the worker, in four phases read top to bottom:

  setup     data, tokenizer (saved into the run), model, the training loop
  restore   the newest good checkpoint (resume), or a fresh start
  train     the loop, to its end, a stop (checkpoint first) or divergence
  finalize  best weights back, model/ written, test metrics

A stop before the loop (signal or control file, see worker.StopFlag) raises StopRequested out
of ``execute``: nothing trained, nothing to checkpoint; the worker ends the run ``stopped``.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Callable

from tunedeck.core.engine import distributed as D
from tunedeck.core.engine.state import StopRequested
from tunedeck.core.errors import DataError
from tunedeck.core.runs.events import EventWriter
from tunedeck.core.runs.rundir import RunDir


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def check_same_data(run: RunDir, fingerprint: str) -> None:
    """A resumed run must see the rows it started with: changed data would re-draw the split
    (rows it trained on could land in test) and break the exact-resume promise."""
    recorded = run.read_status().get("data_fingerprint")
    if recorded and fingerprint and recorded != fingerprint:
        raise DataError(
            f"the data changed since run {run.id} started (a data file, or the split/cleaning "
            "settings, differ): resuming would re-split it and could put rows it trained on "
            "into the test split. Restore the original data, or start a new run with "
            "'tunedeck start'")


class TrainingRun:
    def __init__(self, run: RunDir, resume: bool, inputs: Any, events: EventWriter,
                 status: Callable[..., None], stop: Any, hooks: Any = None,
                 on_eval: Callable[[int, dict[str, Any]], bool] | None = None):
        from tunedeck.core.engine.faults import FaultHooks

        self.run, self.resume, self.inputs, self.events = run, resume, inputs, events
        self.status = status  # the heartbeat's update
        self.stop = stop  # worker.StopFlag: callable, and whether a signal raises StopRequested
        self.hooks = hooks if hooks is not None else FaultHooks.from_env()
        self.on_eval = on_eval  # a search trial's pruner: True after an evaluation ends the run
        self.reached = int(run.read_status().get("step") or 0)  # where a previous worker got to
        self.loop: Any = None

    def execute(self) -> tuple[str, str]:
        """(end state, message) of a run that got to its loop; StopRequested before that."""
        self.setup()
        self.restore()
        ended = self.train()
        return ended if ended is not None else self.finalize()

    def _phase(self, name: str) -> None:
        """Entering a phase: a stop that landed between phases is seen here."""
        if self.stop():
            raise StopRequested(f"stop requested before {name}")
        self.status(phase=name)

    # --- setup ------------------------------------------------------------------------------

    def setup(self) -> None:
        from tunedeck.core.engine.adapters import prepare_for_training
        from tunedeck.core.engine.inputs import build_model, prepare_inputs
        from tunedeck.core.engine.loop import TrainingLoop
        from tunedeck.core.profile import load

        self.profile = profile = load(self.run.profile_path)
        self.status(name=profile.name, task=profile.task.type)
        seed_everything(profile.training.seed)
        tok_dir = self.run.path / "tokenizer"
        if self.inputs is None:
            self._phase("preparing data")
            self._log("preparing data")
            self.hooks.fire("prepare")
            with D.node_inputs_gate():  # distributed: this machine tokenizes once
                self.inputs = prepare_inputs(
                    profile, log=self._log,
                    tokenizer_dir=tok_dir if self.resume and (D.is_main() or tok_dir.is_dir()) else None,
                    stop_requested=self.stop, hooks=self.hooks,
                    warn=lambda m: self.events.emit("log", level="warning", message=m))
        if self.resume:
            check_same_data(self.run, self.inputs.data_fingerprint)
        self.status(data_fingerprint=self.inputs.data_fingerprint)
        if D.is_main():  # rank 0 alone writes into the run directory
            self._save_tokenizer(tok_dir)
            from tunedeck.core.prepare.pipeline import write_run_recipe

            write_run_recipe(self.run.path, self.inputs.data_stats)  # [[data.prepare]], hf:
        self._phase("loading the model")
        self.hooks.fire("load")
        # Seed again right before the weights are initialised: a fresh start, a start whose
        # data was prepared by the CLI and a resume without a checkpoint build the same model.
        seed_everything(profile.training.seed)
        model = build_model(self.inputs, log=self._log)
        D.seed_rank(profile.training.seed)
        model = prepare_for_training(model, profile, self.run.path, self._log)  # LoRA, GC
        self._phase("building the optimizer")
        self.loop = TrainingLoop(self.inputs, self.run, self.events, should_stop=self.stop,
                                 status=self.status, hooks=self.hooks, on_eval=self.on_eval)
        self.loop.build(model)
        if not self.resume:
            log_memory_estimate(profile, model, self.events)

    def _log(self, message: str) -> None:
        self.events.emit("log", level="info", message=message)

    def _save_tokenizer(self, tok_dir: Any) -> None:
        if tok_dir.is_dir():
            return
        tmp = self.run.path / ".tokenizer.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.inputs.tokenizer.save_pretrained(str(tmp))
        os.replace(tmp, tok_dir)

    # --- restore ----------------------------------------------------------------------------

    def restore(self) -> None:
        from tunedeck.core.engine import checkpoint as C

        removed = C.clean_leftovers(self.run.checkpoints_dir) if D.is_main() else []
        if removed:
            self.events.emit("log", level="warning", message=(
                f"checkpoint leftovers of an earlier crash cleaned up: {', '.join(removed)}"))
        group = self.loop.rank_group
        if group is not None:  # rank 0 decides (its resume flag) and shares it with every rank
            resumed_from = group.restore(
                self.loop, self._load_newest_checkpoint if self.resume else lambda: None,
                lambda m: self.events.emit("log", level="warning", message=m))
        else:
            resumed_from = self._load_newest_checkpoint() if self.resume else None
        loop, st = self.loop, self.loop.state
        device = str(loop.device) + (f" ({_gpu_name()})" if loop.device.type == "cuda" else "")
        if resumed_from is not None:
            if self.reached > st.step:
                self.events.emit("log", level="warning", message=(
                    f"the previous worker got to step {self.reached} and ended without a "
                    f"checkpoint there; resuming from {resumed_from.name}: "
                    f"{self.reached - st.step} steps are trained again (same data order, same "
                    "results)"))
            self.events.emit("run_resumed", step=st.step, checkpoint=str(resumed_from),
                             total_steps=st.total_steps)
        else:
            if self.resume:
                self.events.emit("log", level="warning",
                                 message="no complete checkpoint: starting from step 0")
            self._emit_run_started(device)
        self.status(step=st.step, total_steps=st.total_steps, device=device,
                    model_params=loop.n_params)

    def _load_newest_checkpoint(self) -> Any:
        """The newest checkpoint that loads; a corrupt one (a disk fault after it was completed)
        is skipped with a warning; a tampered one is refused, never worked around."""
        from tunedeck.core.engine import checkpoint as C

        ckpts = C.list_complete(self.run.checkpoints_dir)
        while ckpts:
            try:
                self.loop.resume_from(ckpts[-1])
                return ckpts[-1]
            except C.UnsafeCheckpoint:
                raise
            except C.CheckpointError as e:
                self.events.emit("log", level="warning", message=f"skipping checkpoint: {e}")
                ckpts.pop()
                if not ckpts:
                    raise
        return None

    def _emit_run_started(self, device: str) -> None:
        from tunedeck.core.engine.adapters import parameter_counts

        p, loop, inputs = self.profile, self.loop, self.inputs
        self.events.emit("run_started", profile=p.name, task=p.task.type,
                         model=p.model.name if p.model.config is None else "config",
                         model_params=loop.n_params,
                         trainable_params=parameter_counts(loop.raw_model)[0],
                         dataset_sizes=inputs.sizes(),
                         label_names=inputs.label_names, device=device,
                         precision=loop.precision, total_steps=loop.state.total_steps,
                         **_compile_fields(loop.compile_choice),
                         data_stats=inputs.data_stats, tokenize_cache_hit=inputs.cache_hit,
                         trust_remote_code=p.model.trust_remote_code)

    # --- train ------------------------------------------------------------------------------

    def train(self) -> tuple[str, str] | None:
        """The loop; (state, message) when it ended early, None when it ran to its end."""
        from tunedeck.core.engine.state import Diverged, Pruned, StopTraining

        self._phase("training")
        # From here a signal only sets the flag: the loop checkpoints at the next step boundary
        # (an evaluation checks it per batch), and nothing interrupts a checkpoint being written.
        self.stop.interrupting(False)
        st = self.loop.state
        try:
            self.loop.train()
        except StopTraining:
            self.status(step=st.step)
            self.events.emit("run_stopped", step=st.step,
                             message="stopped on request; 'tunedeck resume' continues it")
            return "stopped", f"stopped at step {st.step}"
        except Diverged as e:
            self.events.emit("run_diverged", step=st.step, message=str(e))
            return "diverged", str(e)
        except Pruned as e:
            self.status(step=st.step)
            self.events.emit("run_pruned", step=st.step, message=str(e))
            return "pruned", str(e)
        return None

    # --- finalize ---------------------------------------------------------------------------

    def finalize(self) -> tuple[str, str]:
        """model/ (the best evaluation's weights with load_best_model_at_end), the test
        split's metrics into metrics.json, run_finished."""
        from tunedeck.core.fsutil import atomic_write_json

        if not D.is_main():
            if self.loop.fsdp:  # sharded: this rank's part of every collective below
                return self._finalize_fsdp_other_rank()
            return "finished", ""  # rank 0 writes model/ and evaluates the test split
        self.status(phase="finishing")
        loop, st, run = self.loop, self.loop.state, self.run
        weights_step = st.step
        if self.profile.training.load_best_model_at_end:
            weights_step = loop.load_best_weights() or weights_step
        self._save_model()
        split = "test" if self.inputs.test is not None else "validation"
        metrics = loop.evaluate(split) or {}
        metrics.update(self._generation_metrics(split) if not loop.fsdp else self._no_generation())
        report = {"split": split, **metrics, "steps": st.step, "weights_step": weights_step,
                  "tokens_seen": st.tokens_seen, "train_time_s": st.train_time_s,
                  "best": {"metric": self.inputs.task.metric_for_best, "value": st.best_metric,
                           "step": st.best_step}}
        atomic_write_json(run.metrics_path, report)
        self._write_model_card(report)
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        # The step whose weights were evaluated (the best evaluation's with load_best_model_at_end).
        self.events.emit("eval", split=split, step=weights_step, metrics=scalars)
        self.events.emit("run_finished", metrics=scalars, model_dir=str(run.model_dir),
                         step=st.step)
        self.status(final_metrics=scalars)
        return "finished", ""

    def _no_generation(self) -> dict[str, Any]:
        """FSDP: generating on sharded weights would need every rank in step; model/ holds the
        full weights, so 'tunedeck eval' computes the generation metrics afterwards."""
        if self.profile.task.type != "classification" and self.profile.evaluation.metrics:
            self.events.emit("log", level="warning", message=(
                "[evaluation] generation metrics are not computed at the end of an FSDP run; "
                f"run 'tunedeck eval {self.run.id}' for them (model/ holds the full weights)"))
        return {}

    def _finalize_fsdp_other_rank(self) -> tuple[str, str]:
        """FSDP, ranks > 0: the same collectives as rank 0's finalize, in the same order (the
        best weights' shards, the full-weights gather for model/, the test forward)."""
        from tunedeck.core.engine.fsdp import full_state_dict

        if self.profile.training.load_best_model_at_end:
            self.loop.load_best_weights()
        full_state_dict(self.loop.model)
        self.loop.evaluate("test" if self.inputs.test is not None else "validation")
        return "finished", ""

    def _generation_metrics(self, split: str) -> dict[str, Any]:
        """[evaluation] metrics on generations (causal LM / seq2seq): only when asked for."""
        from tunedeck.core.eval.run_eval import end_of_training_generation_metrics

        model = self.loop.accelerator.unwrap_model(self.loop.model)
        return end_of_training_generation_metrics(self.run, self.profile, model,
                                                  self.inputs.tokenizer, split)

    def _write_model_card(self, report: dict[str, Any]) -> None:
        from tunedeck.core.eval.model_card import write_model_card

        device = self.loop.device
        name = str(device) + (f" ({_gpu_name()})" if device.type == "cuda" else "")
        write_model_card(self.run.model_dir, profile=self.profile,
                         profile_text=self.run.profile_path.read_text(encoding="utf-8"),
                         sizes=self.inputs.sizes(), fingerprint=self.inputs.data_fingerprint,
                         report=report, device=name)

    def _save_model(self) -> None:
        """Written aside, then renamed into place: never a half-written model/."""
        unwrapped = self.loop.accelerator.unwrap_model(self.loop.model)
        tmp = self.run.path / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if self.loop.fsdp:  # the full weights, gathered from every rank's shards
            from tunedeck.core.engine.fsdp import full_state_dict, save_pretrained_full

            save_pretrained_full(unwrapped, tmp, full_state_dict(self.loop.model))
        else:
            unwrapped.save_pretrained(str(tmp))
        self.inputs.tokenizer.save_pretrained(str(tmp))
        shutil.rmtree(self.run.model_dir, ignore_errors=True)
        os.replace(tmp, self.run.model_dir)


def log_memory_estimate(profile: Any, model: Any, events: EventWriter) -> None:
    """Log the memory estimate; warn (do not refuse: an OOM backs off) when it will not fit."""
    try:
        from tunedeck.core.engine.memory_estimate import format_bytes, memory_report

        rep = memory_report(profile, model=model)
    except Exception as e:  # an estimate must never stop a run
        events.emit("log", level="info", message=f"memory estimate unavailable: {e}")
        return
    if rep.get("error") or rep.get("fits") is None:
        return
    est = rep["estimate"]
    msg = (f"memory estimate {format_bytes(est['total'])} of {format_bytes(rep['free_bytes'])} "
           f"free on {rep['device']}")
    if not rep["fits"]:
        msg += "; it will likely not fit: " + "; ".join(rep["suggestions"])
    events.emit("log", level="info" if rep["fits"] else "warning", message=msg,
                kind="memory_estimate", estimate=est, free_bytes=rep["free_bytes"],
                fits=rep["fits"])


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def _compile_fields(choice: Any) -> dict[str, Any]:
    """The run_started fields saying whether the model is compiled, and why (issue 14)."""
    if choice is None:
        return {}
    return {"compile": "on" if choice.on else "off", "compile_setting": choice.setting,
            "compile_reason": choice.reason}
