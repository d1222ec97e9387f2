"""``[distributed] strategy = "fsdp"``: the model sharded with FSDP2 (``torch.distributed.fsdp.
fully_shard``, one unit per transformer block plus the root), sharded checkpoints through
torch.distributed.checkpoint (DCP), and the full weights gathered for model/ (docs/distributed.md).

Everything here is collective: every rank calls it at the same point, in the same order (the
loop's step-boundary agreement guarantees it). The DDP and single-process paths never come here.

Rules kept from DDP (engine/distributed.py): the batch plan, the dealing by tokens and the loss
weight ``world / global targets`` are the same (FSDP2's reduce-scatter averages over ranks, as
DDP's all-reduce does), so the loss curve equals the single-process one at the same global batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunedeck.core.errors import RunError

SHARDED_DIR = "sharded"  # inside step-N: DCP's .metadata and one __R_0.distcp per rank


def is_fsdp(loop: Any) -> bool:
    """This loop shards its model (strategy "fsdp" with more than one process)."""
    return bool(getattr(loop, "fsdp", False))


def block_classes(model: Any) -> set[type]:
    """The transformer block classes: transformers names them in ``_no_split_modules``."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    return {type(m) for m in model.modules() if type(m).__name__ in names}


def shard(model: Any, device: Any, precision: str) -> Any:
    """FSDP2 over ``model`` in place: each transformer block, then the root (embeddings, heads,
    tied weights stay in the root's unit). Returns the same module, now an ``FSDPModule``."""
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if precision == "fp16":
        # FSDP2 has no loss scaler of its own and Accelerate's does not see an unprepared model.
        raise RunError("distributed.strategy = 'fsdp' runs in fp32 or bf16: set "
                       "training.precision = 'bf16' (or 'fp32') instead of fp16")
    import torch.distributed as dist

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
          if precision == "bf16" else MixedPrecisionPolicy())
    model.to(device)
    # DDP copies rank 0's weights to every rank when it wraps the model; FSDP2 keeps each rank's
    # own slice, so any difference between the ranks' initial weights would mix two models.
    with torch.no_grad():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)
    blocks = block_classes(model)
    for module in list(model.modules()):
        if type(module) in blocks:
            fully_shard(module, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    return model


def clip_and_norm(model: Any, max_norm: float) -> Any:
    """The global gradient norm over every rank's shards (clipped to ``max_norm`` when > 0).
    A sharded gradient's norm is a partial DTensor: ``full_tensor`` sums it over the ranks."""
    import torch
    from torch.distributed.tensor import DTensor

    grads = [p.grad for p in model.parameters() if p.grad is not None]
    total = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
    if isinstance(total, DTensor):
        total = total.full_tensor()
    if max_norm > 0:
        torch.nn.utils.clip_grads_with_norm_(grads, max_norm, total)
    return total


def _options(full: bool = False) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=full, cpu_offload=full)


def save_sharded(model: Any, optimizer: Any, where: Path) -> None:
    """Every rank writes its shard of the model and the optimizer state into ``where``; DCP's
    coordinator (rank 0) writes ``.metadata`` last, once every rank's write is done."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_sd, optim_sd = get_state_dict(model, optimizer, options=_options())
    dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(where))


def load_sharded(model: Any, optimizer: Any, where: Path) -> None:
    """A checkpoint's shards into this rank's model and optimizer. DCP reads the pieces each
    rank now owns, so another process count reshards (the caller warns)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    from tunedeck.core.engine.checkpoint import CheckpointError

    model_sd, optim_sd = get_state_dict(model, optimizer, options=_options())
    state = {"model": model_sd, "optimizer": optim_sd}
    try:
        dcp.load(state, checkpoint_id=str(where))
    except Exception as e:  # DCP wraps a rank's failure in its own exception types
        raise CheckpointError(f"{where}: cannot load the sharded state ({type(e).__name__}: "
                              f"{str(e).strip().splitlines()[0][:300] if str(e).strip() else ''})"
                              ) from None
    set_state_dict(model, optimizer, model_state_dict=state["model"],
                   optim_state_dict=state["optimizer"], options=_options())


def load_sharded_model(model: Any, where: Path) -> None:
    """Only the model's shards (load_best_model_at_end)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict

    model_sd = get_model_state_dict(model, options=_options())
    state = {"model": model_sd}
    dcp.load(state, checkpoint_id=str(where))
    set_model_state_dict(model, state["model"], options=_options())


def full_state_dict(model: Any) -> dict[str, Any]:
    """The whole model's weights on CPU, gathered from every rank's shards: on rank 0 only
    (the others get {})."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options(full=True))


def save_pretrained_full(model: Any, tmp: Path, state: dict[str, Any]) -> None:
    """Rank 0: model/ as plain transformers weights from the gathered full state dict."""
    model.save_pretrained(str(tmp), state_dict=state)
