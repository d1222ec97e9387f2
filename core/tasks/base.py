"""The task interface every task implements (the tokenized example store is core/engine/examples.py).

A task knows which model class to load, how to tokenize its columns, how to compute a summed
loss and its normaliser (rows or target tokens) from a batch, which metrics apply, and how to
predict. The engine knows nothing task-specific beyond this interface.
"""

from __future__ import annotations

from typing import Any, ClassVar

IGNORE = -100


class Task:
    """One kind of fine-tuning. Subclasses set ``type`` and ``auto_class`` and fill in the hooks."""

    type: ClassVar[str]
    auto_class: ClassVar[str]  # name of the transformers Auto class
    metric_for_best: ClassVar[str] = "eval_loss"
    greater_is_better: ClassVar[bool] = False

    def __init__(self, label_names: list[str] | None = None):
        self.label_names = label_names

    def configure(self, profile: Any) -> None:
        """Take the profile's task-specific settings (e.g. causal LM's data.train_on)."""

    def config_overrides(self) -> dict[str, Any]:
        return {}

    def bind_model(self, model: Any) -> None:
        """Told the model once it is built (seq2seq keeps its labels -> decoder inputs shift)."""

    def tokenize_batch(self, batch: dict[str, list[Any]], tokenizer: Any, max_length: int) -> dict[str, list[Any]]:
        raise NotImplementedError

    def text_for_tokenizer_training(self, batch: dict[str, list[Any]]) -> list[str]:
        out: list[str] = []
        for col in ("text", "prompt", "response"):
            if col in batch:
                out.extend(str(x) for x in batch[col])
        return out

    def loss_sum(self, logits: Any, labels: Any) -> Any:
        """Summed loss over the batch's counted positions (divide by n_targets for the mean)."""
        raise NotImplementedError

    def loss_per_row(self, logits: Any, labels: Any) -> Any:
        """Each row's summed loss (a tensor of batch size): per-example losses for error
        analysis; divided by the row's n_targets it is the row's mean token loss."""
        raise NotImplementedError

    def generation_prompts(self, batch: dict[str, list[Any]], tokenizer: Any,
                           max_length: int) -> list[list[int]] | None:
        """Token ids each row's generation starts from (the prompt as training shaped it), or
        None when the task does not generate (classification, plain-text causal LM)."""
        return None

    def forward_kwargs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def eval_accumulate(self, state: dict[str, Any], logits: Any, labels: Any) -> None:
        """Collect what the metrics need from one evaluation batch (on the host)."""

    def eval_metrics(self, state: dict[str, Any], loss: float) -> dict[str, Any]:
        return {"eval_loss": loss}

    def predict(self, model: Any, tokenizer: Any, text: str, max_length: int) -> dict[str, Any]:
        raise NotImplementedError
