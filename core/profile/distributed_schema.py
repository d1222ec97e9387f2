"""The profile's ``[distributed]`` section: how many training processes, on how many machines
(the values ``torchrun`` / ``accelerate launch`` take). One process on one machine is exactly
the single-process run; anything more goes through ``tunedeck.core.runs.distributed_launch``
(docs/distributed.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DistributedSection(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True,
                              strict=True)

    processes: int | Literal["auto"] = Field(
        "auto",
        description="Training processes on each machine (one per GPU): 'auto' = every visible "
        "GPU (CUDA_VISIBLE_DEVICES narrows it), 1 on a machine without one; or a number (on a "
        "CPU, N gloo processes). 1 process on 1 machine is the ordinary single-process run.",
    )
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="'ddp': every process holds the whole model, gradients are averaged "
        "(DistributedDataParallel). 'fsdp': parameters, gradients and AdamW state sharded "
        "across processes (FSDP2, one unit per transformer block); checkpoints are sharded "
        "(torch.distributed.checkpoint), model/ holds the full weights; fp32 or bf16 only.",
    )
    nodes: int = Field(
        1, ge=1, le=1024,
        description="Machines taking part. With more than 1, run 'tunedeck start PROFILE "
        "--node-rank K' on each machine K = 1 .. nodes-1 as well as on machine 0 "
        "(docs/distributed.md).",
    )
    node_rank: int = Field(
        0, ge=0, le=1023,
        description="This machine's number, 0 .. nodes-1; 0 is the main machine (it holds the "
        "run directory: events, checkpoints, model/). 'tunedeck start --node-rank K' sets it.",
    )
    main_address: str = Field(
        "127.0.0.1", min_length=1, max_length=255,
        description="Address of machine 0 that every machine can reach (torchrun's "
        "--master-addr). Only used with nodes > 1.",
    )
    main_port: int = Field(
        29500, ge=0, le=65535,
        description="A free TCP port on machine 0 for the rendezvous (torchrun's "
        "--master-port). Only used with nodes > 1 (one machine picks a free port itself).",
    )

    @model_validator(mode="after")
    def _node_rank_ok(self) -> "DistributedSection":
        if self.node_rank >= self.nodes:
            raise ValueError(f"node_rank {self.node_rank} needs nodes > {self.node_rank} "
                             f"(nodes is {self.nodes}; machines are numbered 0 .. nodes-1)")
        if isinstance(self.processes, int) and not 1 <= self.processes <= 1024:
            raise ValueError(f"processes must be 'auto' or 1 .. 1024, not {self.processes}")
        return self
