"""A run's model at a chosen checkpoint, ready to evaluate or predict: the one loader of
``tunedeck eval`` (``run_eval``), ``tunedeck predict --file`` (``batch_predict``), single-text
``predict`` and ``serve-predict`` (``tunedeck.core.predict``) and ``tunedeck samples``.

``final`` is RUN/model (what training wrote at its end); ``step-N`` is RUN/checkpoints/step-N
(its safetensors weights put into the run's architecture; of a LoRA run, its adapter on the
run's frozen base); ``best`` is the checkpoint of the
best validation evaluation that the run recorded (status.json ``best``, the same as the
``BEST`` column of ``tunedeck runs``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunedeck.core.errors import RunError, UserError
from tunedeck.core.fsutil import read_json
from tunedeck.core.runs.rundir import RunDir

_STEP = re.compile(r"^step-(\d+)$")


@dataclass
class RunModel:
    """Everything needed to run a model of a run on new rows."""

    run: RunDir
    profile: Any
    task: Any
    tokenizer: Any
    model: Any
    device: Any
    precision: str  # "fp32" | "bf16" | "fp16": the autocast training used
    label_names: list[str] | None
    checkpoint: str  # "final" | "best" -> resolved to "final" or "step-N"
    step: int | None  # the training step of the weights, when known

    def autocast(self) -> Any:
        """The same autocast as the training loop's evaluation (none in fp32)."""
        import contextlib

        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)


def resolve_checkpoint(run: RunDir, checkpoint: str) -> tuple[str, Path | None, int | None]:
    """(name, checkpoint folder or None for RUN/model, step) of ``final``/``best``/``step-N``."""
    from tunedeck.core.engine import checkpoint as C

    metrics = read_json(run.metrics_path) or {}
    if checkpoint == "final":
        return "final", None, metrics.get("weights_step") or run.read_status().get("step")
    if checkpoint == "best":
        best_step = (run.read_status().get("best") or {}).get("step")
        if not best_step:
            raise UserError(f"run {run.id} has no best validation evaluation yet (it records one "
                            f"at its first evaluation after step 0); use --checkpoint final or "
                            f"step-N")
        if metrics.get("weights_step") == best_step and _has_final(run):
            return "final", None, best_step  # load_best_model_at_end put it into model/
        checkpoint = f"step-{best_step}"
    match = _STEP.match(checkpoint)
    if not match:
        raise UserError(f"--checkpoint {checkpoint!r}: use 'final', 'best' or 'step-N' "
                        f"(the folders in {run.checkpoints_dir})")
    path = run.checkpoints_dir / checkpoint
    if not C.is_complete(path):
        have = ", ".join(p.name for p in C.list_complete(run.checkpoints_dir)) or "none"
        raise UserError(f"run {run.id} has no complete checkpoint {checkpoint} (complete "
                        f"checkpoints: {have}); pick one of those, 'final' or 'best'")
    return checkpoint, path, int(match.group(1))


def _has_final(run: RunDir) -> bool:
    """RUN/model holds full weights (config.json) or a LoRA adapter (adapter_config.json)."""
    return (run.model_dir / "config.json").is_file() or (run.model_dir /
                                                         "adapter_config.json").is_file()


def load_run_model(run: RunDir, checkpoint: str = "final") -> RunModel:
    """The run's profile, task, tokenizer and the weights of ``checkpoint`` on the best device."""
    import torch

    from tunedeck.core.engine.inputs import quiet_libraries
    from tunedeck.core.engine.precision import resolve_precision
    from tunedeck.core.profile import load
    from tunedeck.core.tasks import make_task

    if not run.profile_path.is_file():
        raise RunError(f"{run.path}: no profile.toml; this is not a run directory")
    quiet_libraries()
    profile = load(run.profile_path)
    name, ckpt_path, step = resolve_checkpoint(run, checkpoint)
    if ckpt_path is None and not _has_final(run):
        raise RunError(f"run {run.id} has no final model yet (state {run.effective_state()[0]}); "
                       f"it is written when training finishes. Evaluate a checkpoint instead: "
                       f"--checkpoint step-N or best")
    tokenizer = _load_tokenizer(run)
    label_names = _label_names(run) if profile.task.type == "classification" else None
    task = make_task(profile.task.type, label_names)
    task.configure(profile)
    model = _load_weights(run, profile, task, tokenizer, ckpt_path)
    if task.label_names is None and profile.task.type == "classification":
        id2label = model.config.id2label or {}
        task.label_names = [str(id2label[i]) for i in sorted(id2label)]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    return RunModel(run, profile, task, tokenizer, model, device,
                    resolve_precision(profile.training.precision), task.label_names, name, step)


def _load_tokenizer(run: RunDir) -> Any:
    from transformers import AutoTokenizer

    for folder in (run.model_dir, run.path / "tokenizer"):
        if (folder / "tokenizer_config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
            return tokenizer
    raise RunError(f"run {run.id} has no saved tokenizer (neither {run.model_dir} nor "
                   f"{run.path / 'tokenizer'}); it is saved once the data is prepared")


def _label_names(run: RunDir) -> list[str] | None:
    """The class names in id order, as the run recorded them at its start."""
    from tunedeck.core.runs.events import read_all

    for event in read_all(run.events_path):
        if event.type == "run_started" and event.data.get("label_names"):
            return [str(n) for n in event.data["label_names"]]
    return None


def _load_weights(run: RunDir, profile: Any, task: Any, tokenizer: Any,
                  ckpt_path: Path | None) -> Any:
    """RUN/model, or the run's architecture with a checkpoint's safetensors weights in it."""
    import torch
    import transformers

    from tunedeck.core.engine import checkpoint as C

    if profile.lora.enabled:  # its frozen base (RUN/base or the named model) + the adapter
        from tunedeck.core.engine.adapters import load_adapter_model

        return load_adapter_model(run.path, profile, task, tokenizer, ckpt_path)
    auto_cls = getattr(transformers, task.auto_class)
    if _has_final(run):
        model = auto_cls.from_pretrained(str(run.model_dir), dtype=torch.float32)
    else:
        from tunedeck.core.models import build_config

        config = build_config(profile, tokenizer, task.config_overrides())
        model = auto_cls.from_config(config)
        emb = model.get_input_embeddings()
        if emb is not None and len(tokenizer) > emb.num_embeddings:
            model.resize_token_embeddings(len(tokenizer))
    if ckpt_path is not None:
        C.load_weights(ckpt_path, model)
    return model
