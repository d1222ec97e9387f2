"""LoRA / QLoRA through PEFT, and gradient checkpointing: the model a run trains.

After ``load_model`` the worker calls ``prepare_for_training``: gradient checkpointing when the
profile asks, then (``[lora] enabled``) the base weights are frozen and PEFT's LoRA layers are
put on the target modules (``get_peft_model``). QLoRA loads the base in 4/8 bits through
bitsandbytes (``quantization_kwargs``, used by ``models.load_model``) and runs
``prepare_model_for_kbit_training``.

Where the frozen base lives (PEFT's adapter_config.json ``base_model_name_or_path``): a base
that ``from_pretrained`` can load again by its name (a hub id, a local directory) is recorded by
that name (a local directory as its absolute path). A base that cannot be reloaded by name -- a
fresh model built from ``[model.config]`` (random weights), or a pretrained one whose token
embeddings were resized for the run's tokenizer -- is saved once into ``RUN/base/``
(``save_pretrained``, before the adapters go in) and recorded as that directory's absolute path.
A resume loads ``RUN/base/`` back, so the frozen weights under a resumed adapter are the same
bits; ``run_model`` finds ``RUN/base/`` next to ``model/`` even after the run folder moved.

Torch-free at import (the launch checks import it): torch, peft and transformers load inside.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from tunedeck.core.errors import ModelError, ProfileError

PEFT_TASK_TYPES = {"classification": "SEQ_CLS", "causal-lm": "CAUSAL_LM",
                   "seq2seq": "SEQ_2_SEQ_LM"}
# Classifier heads by the names transformers gives them (BERT-style 'classifier', decoder
# 'score'): PEFT's own SEQ_CLS_HEAD_NAMES.
HEAD_NAMES = ("classifier", "score")
BASE_DIR = "base"
ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_model(model: Any) -> bool:
    """A PEFT model (LoRA layers around a frozen base)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def is_adapter_dir(path: Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def check_quantization(profile: Any) -> None:
    """``[quantization] bits`` needs a CUDA GPU and bitsandbytes: refuse before any run
    directory exists, saying which is missing."""
    bits = profile.quantization.bits
    if not bits:
        return
    if profile.model.config is not None:
        raise ProfileError(f"quantization.bits = {bits}: quantization loads pretrained weights; "
                           "a model built from [model.config] has none. Name a pretrained "
                           "model (model.name) or set quantization.bits = 0")
    import torch

    missing = []
    if not torch.cuda.is_available():
        missing.append("this machine has no CUDA GPU (torch.cuda.is_available() is False)")
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("the bitsandbytes package is not installed (pip install bitsandbytes)")
    if missing:
        raise ProfileError(
            f"quantization.bits = {bits}: QLoRA quantizes the base model with bitsandbytes, "
            f"which needs CUDA; {' and '.join(missing)}. Set quantization.bits = 0 to train "
            f"LoRA adapters on a full-precision base here, or run on a CUDA GPU machine")


def quantization_kwargs(profile: Any) -> dict[str, Any]:
    """``from_pretrained`` keywords of a 4/8-bit base (empty without quantization)."""
    bits = profile.quantization.bits
    if not bits:
        return {}
    import torch
    from transformers import BitsAndBytesConfig

    if bits == 4:
        # NF4 with double quantization and bf16 compute: the QLoRA paper's recipe.
        qcfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.bfloat16)
    else:
        qcfg = BitsAndBytesConfig(load_in_8bit=True)
    # A quantized model cannot be moved after loading: it is placed on this process's GPU here.
    return {"quantization_config": qcfg, "device_map": {"": torch.cuda.current_device()},
            "dtype": torch.bfloat16}


def prepare_for_training(model: Any, profile: Any, run_dir: Path,
                         log: Callable[[str], None] = lambda m: None) -> Any:
    """Gradient checkpointing, then LoRA (PEFT) when the profile asks; else ``model`` as is."""
    gc = profile.training.gradient_checkpointing
    if gc and not profile.quantization.bits:
        # Non-reentrant: works with frozen inputs (LoRA) without enable_input_require_grads.
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers 5's new name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if not profile.lora.enabled:
        return model
    if profile.quantization.bits:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gc,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    base_ref = _pin_base(model, profile, Path(run_dir), log)
    peft_model = wrap_with_lora(model, profile)
    peft_model.peft_config["default"].base_model_name_or_path = base_ref
    peft_model.peft_config["default"].revision = profile.model.revision
    trainable, total = parameter_counts(peft_model)
    log(f"LoRA r={profile.lora.r} alpha={profile.lora.alpha:g} on "
        f"{', '.join(target_summary(peft_model))}: {trainable:,} of {total:,} parameters "
        f"trainable ({100 * trainable / max(1, total):.2f}%)")
    return peft_model


def check_lora_targets(profile: Any, auto_cls: Any, config: Any) -> None:
    """A ``lora.target_modules`` name the architecture lacks: a ModelError before any run
    exists (the model is built on the meta device, costing no memory)."""
    if not profile.lora.enabled:
        return
    import torch

    with torch.device("meta"):
        try:
            model = auto_cls.from_config(config)
        except Exception:  # noqa: BLE001 - models.check_model_builds reports a bad config
            return
        wrap_with_lora(model, profile)


def wrap_with_lora(model: Any, profile: Any) -> Any:
    """The base model with PEFT LoRA layers on its target modules (base weights frozen)."""
    from peft import LoraConfig, get_peft_model

    lora, task = profile.lora, profile.task.type
    targets = "all-linear" if lora.target_modules == ["auto"] else list(lora.target_modules)
    if lora.modules_to_save == ["auto"]:
        to_save = [n for n in HEAD_NAMES if task == "classification"
                   and getattr(model, n, None) is not None] or None
    else:
        to_save = list(lora.modules_to_save) or None
    from transformers.pytorch_utils import Conv1D

    # GPT-2-style Conv1D layers store their weight transposed; PEFT must be told (it warns and
    # fixes it per layer otherwise).
    conv1d = any(isinstance(m, Conv1D) for m in model.modules())
    cfg = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                     target_modules=targets, modules_to_save=to_save, fan_in_fan_out=conv1d,
                     task_type=PEFT_TASK_TYPES[task])
    try:
        with _quiet():
            return get_peft_model(model, cfg)
    except ValueError as e:  # a target module name the architecture does not have
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                        if n and not n.rsplit(".", 1)[-1].isdigit() and not list(m.children())})
        first = str(e).split(". ")[0].rstrip(".")
        raise ModelError(f"lora.target_modules: {first}; this model's layers are named "
                         f"{', '.join(names[:40])}: fix the list, or use ['auto']") from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """transformers' deprecation notes that PEFT's own calls trigger (not the user's to fix)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def parameter_counts(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = trainable = 0
    for prm in model.parameters():
        total += prm.numel()
        trainable += prm.numel() if prm.requires_grad else 0
    return trainable, total


def target_summary(peft_model: Any) -> list[str]:
    """The adapted layers by their short names (c_attn, c_fc ...), and the fully trained ones."""
    cfg = peft_model.peft_config["default"]
    short = sorted({str(n).rsplit(".", 1)[-1] for n in (cfg.target_modules or [])})
    trained = sorted({m.split(".modules_to_save", 1)[0].rsplit(".", 1)[-1]
                      for m, _ in peft_model.named_modules() if m.endswith(".modules_to_save")})
    return short + [f"{n} (trained in full)" for n in trained]


def _pin_base(model: Any, profile: Any, run_dir: Path, log: Callable[[str], None]) -> str:
    """Where the frozen base is reloaded from (see the module docstring); on a resume, the
    saved base's weights are put back into ``model``."""
    base = run_dir / BASE_DIR
    if (base / "config.json").is_file():
        _load_base_weights(model, base)
        return str(base.resolve())
    if _reloadable_by_name(model, profile):
        from tunedeck.core.models import resolve_model_path

        return resolve_model_path(profile.model.name)
    tmp = run_dir / ".base.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    os.replace(tmp, base)
    log(f"frozen base weights saved to {base} (a model built from [model.config] or with "
        "resized embeddings cannot be reloaded by its name)")
    return str(base.resolve())


def _reloadable_by_name(model: Any, profile: Any) -> bool:
    if profile.model.config is not None:
        return False
    from transformers import AutoConfig

    from tunedeck.core.models import hf_load

    cfg = hf_load(AutoConfig, profile.model.name, "config", revision=profile.model.revision,
                  trust_remote_code=profile.model.trust_remote_code)
    emb = model.get_input_embeddings()
    return emb is None or emb.num_embeddings == getattr(cfg, "vocab_size", emb.num_embeddings)


def _load_base_weights(model: Any, base: Path) -> None:
    """RUN/base's weights into ``model`` (every shard); a key left out is only allowed where
    save_pretrained dropped a tied copy (GPT-2's lm_head shares the embedding)."""
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    for f in sorted(base.glob("*.safetensors")):
        state.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    own = model.state_dict()
    loaded_ptrs = {own[k].data_ptr() for k in state if k in own}
    untied = [k for k in missing if own[k].data_ptr() not in loaded_ptrs]
    if unexpected or untied:
        raise ModelError(f"{base}: the saved base does not match this profile's model "
                         f"({len(untied)} missing, {len(unexpected)} unexpected weights); "
                         f"start a new run")


def load_adapter_model(run_dir: Path, profile: Any, task: Any, tokenizer: Any,
                       ckpt_path: Path | None) -> Any:
    """A LoRA run's model: its frozen base with the adapter of ``model/`` (``ckpt_path`` None)
    or with a checkpoint's trainable weights."""
    base = load_base_model(Path(run_dir), profile, task, tokenizer)
    if ckpt_path is None:
        from peft import PeftModel

        with _quiet():
            return PeftModel.from_pretrained(base, str(Path(run_dir) / "model"))
    from tunedeck.core.engine import checkpoint as C

    model = wrap_with_lora(base, profile)
    C.load_weights(ckpt_path, model)
    return model


def load_base_model(run_dir: Path, profile: Any, task: Any, tokenizer: Any) -> Any:
    """RUN/base when the run saved one, else the profile's pretrained model (the base the
    adapter was trained on: the run's profile names it)."""
    import torch
    import transformers

    auto_cls = getattr(transformers, task.auto_class)
    base = run_dir / BASE_DIR
    if (base / "config.json").is_file():
        return auto_cls.from_pretrained(str(base), dtype=torch.float32)
    if profile.model.config is not None:
        raise ModelError(f"{base}: missing; this LoRA run's base was built from [model.config] "
                         f"and saved there at its start. Without it the adapter has no base")
    from tunedeck.core.models import build_config, load_model

    config = build_config(profile, tokenizer, task.config_overrides())
    return load_model(profile, auto_cls, config)


def merged(model: Any) -> Any:
    """Full weights: the adapter folded into the base (``merge_and_unload``); a model without
    an adapter as it is."""
    return model.merge_and_unload() if is_adapter_model(model) else model


def memory_sizes(profile: Any, model: Any) -> dict[str, int]:
    """For the memory estimate: total and trainable parameters, and the base's linear weights
    (what bitsandbytes quantizes), of ``model`` -- the worker's own, or a meta-device one that
    is wrapped here (costing no memory) when the profile asks for LoRA."""
    if profile.lora.enabled and not is_adapter_model(model):
        import torch

        with torch.device("meta"):
            model = wrap_with_lora(model, profile)
    trainable, total = parameter_counts(model)
    return {"total": total, "trainable": trainable, "quantizable": _linear_weights(model)}


def _linear_weights(model: Any) -> int:
    """Weights of the linear (and Conv1D) layers, less the output head, the classifier and the
    adapters themselves: what a 4/8-bit load quantizes."""
    import torch
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    n = 0
    for name, mod in model.named_modules():
        if not isinstance(mod, (torch.nn.Linear, Conv1D)) or mod is head:
            continue
        parts = name.split(".")
        if any(p.startswith("lora_") or p in ("modules_to_save", "original_module")
               or p in HEAD_NAMES for p in parts):
            continue
        n += mod.weight.numel()
    return n
