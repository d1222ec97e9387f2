"""Causal language modelling (GPT-style): plain text, or prompt/response with the loss on the
response only (through the tokenizer's chat template when it has one)."""

from __future__ import annotations

import json
from typing import Any

from tunedeck.core.data.chat import prompt_messages, render, tokenize_chat
from tunedeck.core.eval.metrics import perplexity
from tunedeck.core.tasks.base import IGNORE, Task

PROMPT_SEPARATOR = "\n"


class CausalLMTask(Task):
    type = "causal-lm"
    auto_class = "AutoModelForCausalLM"

    train_on = "assistant"  # data.train_on: set by ``configure``

    def configure(self, profile: Any) -> None:
        self.train_on = profile.data.train_on

    def tokenize_batch(self, batch: dict[str, list[Any]], tokenizer: Any, max_length: int) -> dict[str, list[Any]]:
        eos = tokenizer.eos_token_id
        if "messages" in batch or ("prompt" in batch and getattr(tokenizer, "chat_template", None)):
            ids_out, labels_out = tokenize_chat(tokenizer, _conversations(batch), self.train_on)
        elif "prompt" in batch:
            # One batched call each: the fast tokenizer spreads a batch over all cores.
            heads = tokenizer([p + PROMPT_SEPARATOR for p in batch["prompt"]],
                              add_special_tokens=False)["input_ids"]
            resps = tokenizer(list(batch["response"]), add_special_tokens=False)["input_ids"]
            ids_out, labels_out = [], []
            for head, resp in zip(heads, resps):
                resp = resp + ([eos] if eos is not None else [])
                ids_out.append(head + resp)
                hidden = head if self.train_on == "all" else [IGNORE] * len(head)
                labels_out.append(hidden + resp)
        else:
            enc = tokenizer(batch["text"], add_special_tokens=False, truncation=True,
                            max_length=max_length - (1 if eos is not None else 0))
            ids_out = [ids + ([eos] if eos is not None else []) for ids in enc["input_ids"]]
            labels_out = [list(ids) for ids in ids_out]
        ids_out = [ids[:max_length] for ids in ids_out]
        labels_out = [labels[:max_length] for labels in labels_out]
        n_out = [sum(1 for x in labels[1:] if x != IGNORE) for labels in labels_out]
        return {"input_ids": ids_out, "labels": labels_out, "n_targets": n_out}

    def text_for_tokenizer_training(self, batch: dict[str, list[Any]]) -> list[str]:
        if "messages" in batch:
            return [f"{m['role']}\n{m['content']}" for conv in _conversations(batch) for m in conv]
        return super().text_for_tokenizer_training(batch)

    def forward_kwargs(self, batch: dict[str, Any]) -> dict[str, Any]:
        if "position_ids" in batch:
            # Packed rows: with no attention mask and no cache, transformers' masking_utils
            # builds a block-diagonal causal mask from the restarting position ids.
            return {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"],
                    "use_cache": False}
        return super().forward_kwargs(batch)

    def loss_sum(self, logits: Any, labels: Any) -> Any:
        import torch.nn.functional as F

        shift_logits = logits[:, :-1, :].float()
        shift_labels = labels[:, 1:shift_logits.shape[1] + 1]
        if shift_labels.shape[1] < shift_logits.shape[1]:
            shift_logits = shift_logits[:, : shift_labels.shape[1]]
        return F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]),
                               shift_labels.reshape(-1), ignore_index=IGNORE, reduction="sum")

    def loss_per_row(self, logits: Any, labels: Any) -> Any:
        import torch.nn.functional as F

        shift_logits = logits[:, :-1, :].float()
        shift_labels = labels[:, 1:shift_logits.shape[1] + 1]
        if shift_labels.shape[1] < shift_logits.shape[1]:
            shift_logits = shift_logits[:, : shift_labels.shape[1]]
        losses = F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]),
                                 shift_labels.reshape(-1), ignore_index=IGNORE, reduction="none")
        return losses.view(shift_labels.shape).sum(1)

    def generation_prompts(self, batch: dict[str, list[Any]], tokenizer: Any,
                           max_length: int) -> list[list[int]] | None:
        if "messages" in batch:  # the turns before the last answer, and the assistant header
            return [chat_prompt_ids(tokenizer, prompt_messages(conv)[0])[-max_length:]
                    for conv in _conversations(batch)]
        if "prompt" not in batch:
            return None
        return [self.prompt_ids(tokenizer, p)[-max_length:] for p in batch["prompt"]]

    def prompt_ids(self, tokenizer: Any, prompt: str) -> list[int]:
        """The prompt as training fed it (chat template, or prompt + separator)."""
        if getattr(tokenizer, "chat_template", None):
            return chat_prompt_ids(tokenizer, [{"role": "user", "content": prompt}])
        return tokenizer(prompt + PROMPT_SEPARATOR, add_special_tokens=False)["input_ids"]

    def eval_metrics(self, state: dict[str, Any], loss: float) -> dict[str, Any]:
        return {"eval_loss": loss, "perplexity": perplexity(loss)}

    def predict(self, model: Any, tokenizer: Any, text: str, max_length: int,
                generation: dict[str, Any] | None = None) -> dict[str, Any]:
        """The continuation of ``text`` (through the chat template when the run has one) under
        ``generation`` (``generation_settings.generation_kwargs``; greedy, 48 tokens if None)."""
        import torch

        from tunedeck.core.eval.generation_settings import cut_at_stop

        kwargs = dict(generation or {"max_new_tokens": 48, "do_sample": False,
                                     "pad_token_id": tokenizer.pad_token_id,
                                     "eos_token_id": tokenizer.eos_token_id})
        ids = self.prompt_ids(tokenizer, text)
        input_ids = torch.tensor([ids[-max_length:]], device=model.device)
        with torch.no_grad():
            out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
        new = out[0, input_ids.shape[1]:]
        text_out = tokenizer.decode(new, skip_special_tokens=True)
        return {"continuation": cut_at_stop(text_out, kwargs.get("stop_strings") or [])}


def _conversations(batch: dict[str, list[Any]]) -> list[list[dict[str, str]]]:
    """Each row as a conversation: its messages, or prompt/response as one user/assistant turn."""
    if "messages" in batch:
        return [json.loads(m) for m in batch["messages"]]
    return [[{"role": "user", "content": p}, {"role": "assistant", "content": r}]
            for p, r in zip(batch["prompt"], batch["response"])]


def chat_prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """``messages`` + the assistant header, tokenized the way training tokenized that prefix."""
    return tokenizer(render(tokenizer, messages, True), add_special_tokens=False)["input_ids"]
