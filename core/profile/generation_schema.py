"""The profile's ``[generation]`` section: how ``predict``, the try-it box and ``eval`` generate
text with a causal LM or seq2seq run (``tunedeck.core.eval.generation_settings`` turns it into
``model.generate`` arguments)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class GenerationSection(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True,
                              strict=True)

    max_new_tokens: int = Field(
        64, ge=1, le=32_768, description="Tokens generated at most per answer (predict, try-it "
        "box, eval; [evaluation] max_new_tokens, when set, wins for eval).",
    )
    do_sample: bool = Field(
        False, description="Sample instead of greedy decoding (at temperature 1 when temperature "
        "is 0). A temperature above 0 samples anyway.",
    )
    temperature: float = Field(
        0.0, ge=0, le=100.0, description="Sampling temperature; 0 = greedy (deterministic).",
    )
    top_p: float = Field(
        1.0, gt=0, le=1.0, description="Nucleus sampling: keep the smallest set of tokens whose "
        "probability reaches top_p (when sampling).",
    )
    stop: list[str] = Field(
        [], description="Strings that end an answer (generation stops there; the answer is cut "
        "before them), e.g. ['\\n\\n', '###']. EOS and the chat template's end-of-turn token "
        "always stop it.",
    )

    @field_validator("stop")
    @classmethod
    def _stop_ok(cls, v: list[str]) -> list[str]:
        if any(s == "" for s in v):
            raise ValueError("a stop string is empty; remove it or write the text that ends an "
                             "answer, e.g. ['###']")
        return v
