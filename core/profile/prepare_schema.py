"""The profile's ``[[data.prepare]]`` steps: ``tunedeck data`` operations applied at training
time, in order, to copies of the data files (the originals are never touched).

Each step names its ``op`` and that operation's options, spelled as in the recipe a
``tunedeck data`` command writes (``OUT.recipe.toml``'s ``[options]``)::

    [[data.prepare]]
    op = "clean"
    lowercase = true
    near_dup = 0.85

    [[data.prepare]]
    op = "augment"
    synonyms = "synonyms.txt"
    per_row = 2

``clean`` and ``convert`` apply to every data file (``apply_to`` narrows that); ``augment``
only ever to train. Splitting stays ``data.split``'s job.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["train", "validation", "test"]

# Which options each operation takes (the others must be left unset).
OP_FIELDS = {
    "clean": {"lowercase", "strip_urls", "strip_html", "strip_emails", "keep_chars", "dedup",
              "near_dup", "drop_empty", "text_columns", "label_column", "nfc"},
    "convert": {"rename", "map", "chat", "messages_column", "system", "keep_sources"},
    "augment": {"ops", "per_row", "alpha", "synonyms", "model", "text_column", "label_column",
                "seed"},
}


class PrepareStep(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True,
                              strict=True)

    op: Literal["clean", "convert", "augment"] = Field(
        description="The operation: 'clean', 'convert' or 'augment' (as `tunedeck data OP`).")
    apply_to: list[Role] = Field(
        ["train", "validation", "test"],
        description="Which data files the step changes (augment: train only, always).")
    # clean
    lowercase: bool = Field(False, description="clean: lowercase the text.")
    strip_urls: bool = Field(False, description="clean: remove URLs.")
    strip_html: bool = Field(False, description="clean: remove HTML tags, decode entities.")
    strip_emails: bool = Field(False, description="clean: remove e-mail addresses.")
    keep_chars: str | None = Field(
        None, description="clean: remove characters outside this class: 'ascii', 'latin', "
        "'letters', 'printable' or a class body such as 'a-zA-Z0-9 .,!?'.")
    nfc: bool = Field(True, description="clean: Unicode NFC normalisation.")
    dedup: Literal["none", "exact", "normalized"] = Field(
        "exact", description="clean: drop rows equal to an earlier one, exactly or with case, "
        "punctuation and spacing ignored ('normalized').")
    near_dup: float | None = Field(
        None, gt=0, lt=1, description="clean: also drop near-duplicates with MinHash Jaccard "
        "similarity >= this (e.g. 0.85).")
    drop_empty: bool = Field(True, description="clean: drop rows whose text is empty.")
    text_columns: list[str] = Field(
        [], description="clean: the text columns (empty: the profile's input columns).")
    label_column: str | None = Field(
        None, description="clean/augment: the label column (empty: the profile's).")
    # convert
    rename: dict[str, str] = Field({}, description="convert: {old = 'new'} column renames.")
    map: dict[str, str] = Field(
        {}, description="convert: {new = 'a+b'}: a column built from others, joined with a "
        "blank line (prompt = 'instruction+input').")
    chat: Literal["to-pairs", "from-pairs"] | None = Field(
        None, description="convert: a messages list -> prompt/response, or back.")
    messages_column: str = Field("messages", description="convert: the chat column.")
    system: str | None = Field(None, description="convert from-pairs: a first system message.")
    keep_sources: bool = Field(False, description="convert: keep the columns a map reads.")
    # augment
    ops: list[Literal["synonym", "insert", "swap", "delete"]] = Field(
        [], description="augment: token operations (empty: all four with a synonym source, "
        "else swap and delete).")
    per_row: int = Field(2, ge=1, le=100, description="augment: new rows per original row.")
    alpha: float = Field(0.1, gt=0, le=0.5, description="augment: share of words touched.")
    synonyms: str | None = Field(None, description="augment: synonym list file (one group of "
                                 "synonyms per line).")
    model: str | None = Field(None, description="augment: paraphrase with this model (a run, "
                              "a model folder or a hub id) instead of token operations.")
    text_column: str | None = Field(None, description="augment: the text column (empty: the "
                                    "profile's).")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="augment: seed (empty: "
                             "training.seed).")

    @model_validator(mode="after")
    def _options_of_op(self) -> "PrepareStep":
        allowed = OP_FIELDS[self.op] | {"op", "apply_to"}
        # A frozen profile (a run's copy) writes every option out: only values that differ
        # from the default are foreign to the op.
        fields = type(self).model_fields
        foreign = sorted(f for f in self.model_fields_set - allowed
                         if getattr(self, f) != fields[f].default)
        if foreign:
            owner = next((op for op, f in OP_FIELDS.items() if foreign[0] in f), "?")
            raise ValueError(f"{foreign[0]!r} is an option of {owner}, not of {self.op}")
        return self


PREPARE_DESCRIPTION = (
    "Preparation steps applied in order at training time to copies of the data files "
    "([[data.prepare]] tables with op = 'clean' | 'convert' | 'augment' and the options of "
    "`tunedeck data OP`); recorded in the run. See docs/data.md.")
