"""Sequence-to-sequence (T5-style encoder-decoder): prompt in, response as the target."""

from __future__ import annotations

from typing import Any

from tunedeck.core.eval.metrics import perplexity
from tunedeck.core.tasks.base import IGNORE, Task


class Seq2SeqTask(Task):
    type = "seq2seq"
    auto_class = "AutoModelForSeq2SeqLM"

    def tokenize_batch(self, batch: dict[str, list[Any]], tokenizer: Any, max_length: int) -> dict[str, list[Any]]:
        enc = tokenizer(batch["prompt"], truncation=True, max_length=max_length)
        tgt = tokenizer(text_target=batch["response"], truncation=True, max_length=max_length)
        return {"input_ids": enc["input_ids"], "labels": tgt["input_ids"],
                "n_targets": [len(t) for t in tgt["input_ids"]]}

    def __init__(self, label_names: list[str] | None = None):
        super().__init__(label_names)
        self._decoder_inputs: Any = None  # the model's labels -> decoder_input_ids shift

    def bind_model(self, model: Any) -> None:
        # The model's own shift (decoder start token, -100 -> pad): with decoder_input_ids and no
        # labels the model does not compute a loss of its own next to loss_sum's (issue 14).
        self._decoder_inputs = getattr(model, "prepare_decoder_input_ids_from_labels", None)

    def forward_kwargs(self, batch: dict[str, Any]) -> dict[str, Any]:
        labels = batch["labels"]
        kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if self._decoder_inputs is not None:
            return {**kwargs, "decoder_input_ids": self._decoder_inputs(labels=labels)}
        # Unbound (a model without the shift): it shifts labels itself and computes a loss too.
        return {**kwargs, "labels": labels}

    def loss_sum(self, logits: Any, labels: Any) -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                               ignore_index=IGNORE, reduction="sum")

    def loss_per_row(self, logits: Any, labels: Any) -> Any:
        import torch.nn.functional as F

        losses = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                 ignore_index=IGNORE, reduction="none")
        return losses.view(labels.shape).sum(1)

    def generation_prompts(self, batch: dict[str, list[Any]], tokenizer: Any,
                           max_length: int) -> list[list[int]] | None:
        return tokenizer(batch["prompt"], truncation=True, max_length=max_length)["input_ids"]

    def eval_metrics(self, state: dict[str, Any], loss: float) -> dict[str, Any]:
        return {"eval_loss": loss, "perplexity": perplexity(loss)}

    def predict(self, model: Any, tokenizer: Any, text: str, max_length: int,
                generation: dict[str, Any] | None = None) -> dict[str, Any]:
        """The output for ``text`` under ``generation`` (``generation_settings``; greedy, 48
        tokens if None)."""
        import torch

        from tunedeck.core.eval.generation_settings import cut_at_stop

        kwargs = dict(generation or {"max_new_tokens": 48, "do_sample": False})
        enc = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc.to(model.device), **kwargs)
        text_out = tokenizer.decode(out[0], skip_special_tokens=True)
        return {"continuation": cut_at_stop(text_out, kwargs.get("stop_strings") or [])}
