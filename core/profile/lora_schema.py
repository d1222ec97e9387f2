"""The profile's ``[lora]`` and ``[quantization]`` sections: LoRA adapters through PEFT, and
QLoRA (a 4/8-bit frozen base through bitsandbytes). Their own module so that schema.py stays
one screen a section. Whether the machine can quantize (CUDA + bitsandbytes) is checked before a
run exists by ``tunedeck.core.engine.adapters.check_quantization``, not here: a profile written
on a laptop is still a valid profile for the GPU box."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True,
                              strict=True)


class LoraSection(_Section):
    enabled: bool = Field(
        False,
        description="Train LoRA adapters (PEFT) on a frozen base model instead of every weight. "
        "Checkpoints then hold only the adapter and its optimizer state; model/ holds the "
        "adapter (adapter_config.json + adapter_model.safetensors); 'tunedeck export RUN "
        "--merged OUT' writes merged full weights.",
    )
    r: int = Field(16, ge=1, le=4096, description="LoRA rank: the adapters' inner dimension.")
    alpha: float = Field(
        32, gt=0, le=1_000_000,
        description="LoRA scaling numerator: the update is scaled by alpha / r (2r is usual).",
    )
    dropout: float = Field(0.05, ge=0, lt=1.0, description="Dropout on the adapters' input.")
    target_modules: list[str] = Field(
        ["auto"],
        description="Which layers get adapters. ['auto']: every linear (and GPT-2 Conv1D) layer "
        "of the architecture -- the attention and MLP projections -- except the output head "
        "and the classifier (PEFT's 'all-linear'). Or module names or name suffixes, e.g. "
        "['q_proj', 'v_proj']. A plain \"auto\" is read as ['auto'].",
    )
    modules_to_save: list[str] = Field(
        ["auto"],
        description="Modules trained in full and saved beside the adapter. ['auto']: the "
        "classifier head for classification ('classifier' or 'score', found on the model; PEFT "
        "always trains a new head in full), nothing more for causal LM and seq2seq. Or module "
        "names to add, e.g. ['embed_tokens'].",
    )

    @field_validator("target_modules", "modules_to_save", mode="before")
    @classmethod
    def _auto_as_list(cls, v: Any) -> Any:
        return [v] if v == "auto" else v

    @field_validator("target_modules", "modules_to_save")
    @classmethod
    def _names_ok(cls, v: list[str], info: ValidationInfo) -> list[str]:
        if any(not n.strip() for n in v):
            raise ValueError("module names cannot be empty")
        if "auto" in v and len(v) > 1:
            raise ValueError("'auto' stands alone: give ['auto'] or a list of module names")
        if info.field_name == "target_modules" and not v:
            raise ValueError("give at least one module name, or ['auto']")
        return v


class QuantizationSection(_Section):
    bits: int = Field(
        0, ge=0, le=8,
        description="0, 4 or 8. Load the frozen base model in 4-bit (NF4, QLoRA) or 8-bit through "
        "bitsandbytes; 0 = no quantization. Needs lora.enabled = true, a CUDA GPU and the "
        "bitsandbytes package; elsewhere the run is refused before it starts.",
    )

    @field_validator("bits")
    @classmethod
    def _bits_ok(cls, v: int) -> int:
        if v not in (0, 4, 8):
            raise ValueError("use 4 (NF4, QLoRA), 8, or 0 (no quantization)")
        return v
