"""Memory estimate: will this profile's training fit on this machine?

``memory_report(profile)`` estimates the peak memory of one training step -- weights,
gradients, AdamW state, activations for batch x max_length at the profile's precision, logits,
and a fixed overhead -- and compares it with the free memory of the device training will use
(``torch.cuda.mem_get_info`` on a GPU, available RAM on CPU). When it will not fit it says which
setting to change, and to what. ``format_memory_report(report)`` renders it for the terminal
(``tunedeck profile check --preflight``).

The model is instantiated on the meta device (no weights are allocated or downloaded; a hub
model needs its config.json locally or in the HF cache). The activation term follows
Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models"): per
layer about 34·s·b·h bytes at 16-bit plus 5·a·s²·b for attention scores when no fused attention
kernel is used; with training.gradient_checkpointing only each layer's input is kept, plus
one layer's activations being recomputed. With [lora] only the adapters (and modules_to_save)
have gradients and AdamW state; with [quantization] the base's linear weights take 4 or 8 bits
each. It is an estimate: treat 'fits' within ~20% of the limit as borderline.
"""

from __future__ import annotations

import math
from typing import Any

from tunedeck.core.errors import ModelError
from tunedeck.core.profile.schema import Profile

GiB = 1024 ** 3
MiB = 1024 ** 2
SAFETY = 0.90  # plan to use at most this share of the free memory (fragmentation, allocator)
CUDA_OVERHEAD = 600 * MiB  # CUDA context, cuBLAS/cuDNN workspaces
CPU_OVERHEAD = 400 * MiB  # the Python process with torch and transformers imported


def _resolve_device() -> dict[str, Any]:
    import torch

    if torch.cuda.is_available():
        try:
            free, total = torch.cuda.mem_get_info()
        except RuntimeError:  # a busy GPU in exclusive-process mode: it has no free memory here
            free, total = 0, torch.cuda.get_device_properties(0).total_memory
        return {"device": f"cuda:0 ({torch.cuda.get_device_name(0)})", "kind": "cuda",
                "free_bytes": int(free), "total_bytes": int(total),
                "bf16": bool(torch.cuda.is_bf16_supported())}
    import psutil

    from tunedeck.core.engine.precision import cpu_has_bf16

    vm = psutil.virtual_memory()
    return {"device": "cpu", "kind": "cpu", "free_bytes": int(vm.available),
            "total_bytes": int(vm.total), "bf16": cpu_has_bf16()}


def _config(profile: Profile) -> Any:
    from transformers import AutoConfig

    from tunedeck.core.models import config_from_table, hf_load

    m = profile.model
    if m.config is not None:
        # Token ids come from the tokenizer at training time and do not change the size; None
        # keeps the architecture's defaults (e.g. gpt2's 50256) from warning about the vocab.
        table = {"bos_token_id": None, "eos_token_id": None, "pad_token_id": None, **m.config}
        return config_from_table(table, {"vocab_size": 2000})  # ~ a tokenizer trained on the data
    return hf_load(AutoConfig, m.name, "config", revision=m.revision,
                   trust_remote_code=m.trust_remote_code)


def _meta_model(profile: Profile, config: Any) -> Any:
    import torch
    import transformers

    from tunedeck.core.tasks import make_task

    task = make_task(profile.task.type, ["a", "b"] if profile.task.type == "classification" else None)
    for k, v in task.config_overrides().items():
        setattr(config, k, v)
    auto = getattr(transformers, task.auto_class)
    with torch.device("meta"):
        try:
            model = auto.from_config(config, trust_remote_code=profile.model.trust_remote_code)
        except TypeError:
            model = auto.from_config(config)
    return model


def _dims(config: Any) -> dict[str, int]:
    def get(*names: str, default: int = 0) -> int:
        for n in names:
            v = getattr(config, n, None)
            if isinstance(v, int) and v > 0:
                return v
        return default

    h = get("hidden_size", "n_embd", "d_model", default=768)
    return {
        "hidden": h,
        "layers": get("num_hidden_layers", "n_layer", "num_layers", default=12)
        + get("num_decoder_layers", default=0),
        "heads": get("num_attention_heads", "n_head", "num_heads", default=max(1, h // 64)),
        "intermediate": get("intermediate_size", "n_inner", "d_ff", default=4 * h),
        "vocab": get("vocab_size", default=32000),
    }


def estimate(profile: Profile, params: int, dims: dict[str, int], precision: str,
             fused_attention: bool, sizes: dict[str, int] | None = None) -> dict[str, int]:
    """Peak bytes of one training step, by component. ``sizes`` (``adapters.memory_sizes``):
    trainable parameters (LoRA: the adapters; the frozen base has no gradients nor AdamW
    state) and the base's linear weights (stored in 4/8 bits with [quantization])."""
    t = profile.training
    rows = t.batch_size
    seq = t.max_length
    tokens = rows * seq
    if t.batching == "tokens" and t.batch_tokens:
        # A token budget: rows x padded width stays under it (one over-long row excepted).
        tokens = max(t.batch_tokens, seq)
        rows = max(1, tokens // seq)
    act_bytes = 2 if precision in ("bf16", "fp16") else 4
    h, layers, heads = dims["hidden"], dims["layers"], dims["heads"]
    ffn_ratio = dims["intermediate"] / max(1, h)
    # 34·s·b·h bytes per layer at 16-bit with a 4h FFN: 17 values per token per hidden unit.
    per_token_layer = (17 + 2 * (ffn_ratio - 4)) * h * act_bytes
    scores = 0 if fused_attention else int(2.5 * heads * rows * seq * seq * act_bytes)
    if t.gradient_checkpointing:
        # Only each layer's input (the fp32 residual stream) is kept; one layer at a time is
        # recomputed with all its activations during the backward pass.
        activations = layers * tokens * h * 4 + tokens * per_token_layer + scores
    else:
        activations = layers * (tokens * per_token_layer + scores)
    if profile.task.type in ("causal-lm", "seq2seq"):
        # Logits at the compute dtype, their fp32 copy for the loss, and its gradient.
        logits = tokens * dims["vocab"] * (act_bytes + 4 + 4)
    else:
        logits = 0
    trainable = sizes["trainable"] if sizes else params
    bits = profile.quantization.bits
    quantized = min(sizes["quantizable"], params - trainable) if sizes and bits else 0
    # Mixed precision keeps fp32 master weights; NF4 with double quantization adds ~0.13 bits
    # of constants per weight, 8-bit one fp32 scale per row (rounded up to 0.02 bytes each).
    weights = 4 * (params - quantized) + int(quantized * (bits / 8 + 0.02))
    return {
        "weights": weights,
        "gradients": 4 * trainable,
        "optimizer": 8 * trainable,  # AdamW: exp_avg + exp_avg_sq in fp32
        "activations": int(activations),
        "logits": int(logits),
        "tokens_per_micro_batch": int(tokens),
        "rows_per_micro_batch": int(rows),
    }


def memory_report(profile: Profile, device: dict[str, Any] | None = None,
                     model: Any = None) -> dict[str, Any]:
    """Estimate a profile's training memory against the free memory where it would run.

    ``device`` (``{"device", "kind", "free_bytes", "total_bytes", "bf16"}``) overrides the
    detected one (tests, or planning for another machine). ``model``: an already built model
    (the worker passes its own) instead of sizing one from the profile.
    """
    dev = dict(device) if device is not None else _resolve_device()
    if device is None and model is not None and dev["kind"] == "cuda":
        import torch

        dev["free_bytes"] += int(torch.cuda.memory_allocated())  # the model counted once, below
    t = profile.training
    precision = t.precision
    if precision == "auto":  # as tunedeck.core.engine.precision.resolve_precision decides it
        precision = "bf16" if dev.get("bf16") else "fp32"
    report: dict[str, Any] = {
        "device": dev["device"], "free_bytes": dev["free_bytes"],
        "total_bytes": dev.get("total_bytes"), "precision": precision,
        "batch_size": t.batch_size, "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "max_length": t.max_length, "model": profile.model.name if profile.model.config is None
        else f"config ({profile.model.config.get('model_type', '?')})",
        "fits": None, "suggestions": [], "notes": [], "error": None,
    }
    try:
        config, sizes = _model_sizes(profile, model)
    except ModelError as e:
        report["error"] = str(e)
        return report
    except Exception as e:  # an exotic config: say so, never crash the check
        report["error"] = f"cannot size the model: {type(e).__name__}: {e}"
        return report
    params, dims = sizes["total"], _dims(config)
    fused = dev.get("kind") == "cuda"  # SDPA's flash/memory-efficient kernels: no s x s scores
    est = _per_process(profile, estimate(profile, params, dims, precision, fused, sizes), report)
    overhead = CUDA_OVERHEAD if dev.get("kind") == "cuda" else CPU_OVERHEAD
    static = est["weights"] + est["gradients"] + est["optimizer"]
    dynamic = est["activations"] + est["logits"]
    total = static + dynamic + overhead
    budget = int(dev["free_bytes"] * SAFETY)
    report.update(params=params, trainable_params=sizes["trainable"], dims=dims,
                  estimate={**est, "overhead": overhead, "total": total},
                  budget_bytes=budget, fits=total <= budget, headroom_bytes=budget - total)
    if dev.get("kind") == "cpu":
        report["notes"].append("training on CPU: memory is RAM; expect it to be slow for large models")
    if total > budget:
        report["suggestions"] = _suggest(profile, dev, precision, est, static, overhead, budget)
    elif total > 0.8 * budget:
        report["notes"].append("borderline: within 20% of the free memory; an OOM in a step "
                               "is retried with half the micro-batch automatically")
    return report


def _model_sizes(profile: Profile, model: Any) -> tuple[Any, dict[str, int]]:
    """(config, ``adapters.memory_sizes``) of ``model``, or of one built from the profile on
    the meta device."""
    from tunedeck.core.engine.adapters import memory_sizes

    if model is None:
        model = _meta_model(profile, _config(profile))
    return model.config, memory_sizes(profile, model)


def _suggest(profile: Profile, dev: dict[str, Any], precision: str, est: dict[str, int],
             static: int, overhead: int, budget: int) -> list[str]:
    t = profile.training
    out: list[str] = []
    room = budget - static - overhead
    if room <= 0:
        out.append(
            f"the model alone needs {format_bytes(static)} (fp32 weights, gradients and AdamW state) of "
            f"{format_bytes(budget)} usable: pick a smaller model (model.name) or a device with more "
            "memory; batch settings cannot fix this")
        if not profile.lora.enabled:
            out.append("or set lora.enabled = true: only small adapters train, the base needs "
                       "no gradients nor AdamW state (and quantization.bits = 4 on CUDA stores "
                       "it in 4 bits)")
        return out
    dynamic = est["activations"] + est["logits"]
    cur_rows = est["rows_per_micro_batch"]
    per_row = dynamic / max(1, cur_rows)
    rows = min(cur_rows - 1, int(room // max(1.0, per_row)))
    if rows >= 1:
        ga = t.gradient_accumulation_steps * math.ceil(cur_rows / rows)
        eff = cur_rows * t.gradient_accumulation_steps
        if t.batching == "tokens" and t.batch_tokens:
            out.append(f"set training.batch_tokens = {rows * t.max_length} and "
                       f"training.gradient_accumulation_steps = {ga} (about the same effective batch)")
        else:
            out.append(f"set training.batch_size = {rows} and training.gradient_accumulation_steps "
                       f"= {ga} (same effective batch of about {eff} rows)")
    # Activations grow at least linearly with the sequence length.
    frac = room / max(1, dynamic)
    length = max(8, int(t.max_length * frac) // 8 * 8)
    if length < t.max_length:
        out.append(f"or lower training.max_length to {length} (from {t.max_length})")
    if not t.gradient_checkpointing:
        out.append("or set training.gradient_checkpointing = true (activations of one layer "
                   "at a time; about a third more compute)")
    if precision == "fp32" and dev.get("kind") == "cuda":
        out.append("or set training.precision = 'bf16'" + ("" if dev.get("bf16") else
                   " / 'fp16' (this GPU has no bf16)") + " to halve activation memory")
    if rows < 1:
        out.append("even one row does not fit at this max_length: lower training.max_length or "
                   "pick a smaller model")
    return out


def format_bytes(n: int | float | None) -> str:
    if n is None:
        return "?"
    n = float(n)
    if abs(n) >= GiB:
        return f"{n / GiB:.2f} GiB"
    if abs(n) >= MiB:
        return f"{n / MiB:.0f} MiB"
    return f"{n / 1024:.0f} KiB"


def _per_process(profile: Profile, est: dict[str, int], report: dict[str, Any]) -> dict[str, int]:
    """[distributed]: one GPU's share (engine/distributed.py says how it splits), noted."""
    from tunedeck.core.engine.distributed import per_process_estimate
    from tunedeck.core.runs.distributed_launch import resolve_processes

    est, split = per_process_estimate(profile, est, resolve_processes(profile.distributed))
    if split:
        report["notes"].append(split)
    return est


def format_memory_report(report: dict[str, Any]) -> str:
    """Human-readable pre-flight report (one screen)."""
    lines = [f"pre-flight memory estimate for {report['model']} on {report['device']}"]
    if report.get("error"):
        lines.append(f"  cannot estimate: {report['error']}")
        return "\n".join(lines)
    est = report["estimate"]
    lines.append(f"  parameters        {report['params']:,}  ({report['precision']}, batch "
                 f"{report['batch_size']} x max_length {report['max_length']} = "
                 f"{est['tokens_per_micro_batch']:,} tokens per micro-batch)")
    trainable = report.get("trainable_params", report["params"])
    if trainable < report["params"]:
        lines.append(f"  trainable         {trainable:,}  (LoRA adapters; the frozen base has no "
                     "gradients nor AdamW state)")
    for key, label in (("weights", "weights"), ("gradients", "gradients"),
                       ("optimizer", "AdamW state"), ("activations", "activations"),
                       ("logits", "logits"), ("overhead", "overhead")):
        if est.get(key):
            lines.append(f"  {label:<17} {format_bytes(est[key]):>11}")
    lines.append(f"  {'total':<17} {format_bytes(est['total']):>11}   free {format_bytes(report['free_bytes'])}"
                 f" (planning with {int(SAFETY * 100)}%: {format_bytes(report['budget_bytes'])})")
    if report["fits"]:
        lines.append(f"  fits, with {format_bytes(report['headroom_bytes'])} to spare")
    else:
        lines.append(f"  WILL NOT FIT: {format_bytes(-report['headroom_bytes'])} short")
        lines += [f"  - {s}" for s in report["suggestions"]]
    lines += [f"  note: {n}" for n in report["notes"]]
    return "\n".join(lines)
