"""Causal language modelling (GPT-style): plain text, or prompt/response with the loss on the
response only (through the tokenizer's chat template when it has one)."""

from __future__ import annotations

from typing import Any

from tunedeck.core.eval.metrics import perplexity
from tunedeck.core.tasks.base import IGNORE, Task

PROMPT_SEPARATOR = "\n"


class CausalLMTask(Task):
    type = "causal-lm"
    auto_class = "AutoModelForCausalLM"

    def tokenize_batch(self, batch: dict[str, list[Any]], tokenizer: Any, max_length: int) -> dict[str, list[Any]]:
        eos = tokenizer.eos_token_id
        ids_out, labels_out, n_out = [], [], []
        if "prompt" in batch:
            prompts, responses = batch["prompt"], batch["response"]
            use_chat = bool(getattr(tokenizer, "chat_template", None))
            if not use_chat:
                # One batched call each: the fast tokenizer spreads a batch over all cores.
                heads = tokenizer([p + PROMPT_SEPARATOR for p in prompts], add_special_tokens=False)["input_ids"]
                resps = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
            for i, (p, r) in enumerate(zip(prompts, responses)):
                if use_chat:
                    head = tokenizer.apply_chat_template([{"role": "user", "content": p}],
                                                         add_generation_prompt=True, tokenize=True)
                    full = tokenizer.apply_chat_template(
                        [{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                        tokenize=True)
                    head, full = _ids(head), _ids(full)
                    resp = full[len(head):]
                else:
                    head, resp = heads[i], resps[i] + ([eos] if eos is not None else [])
                ids = (head + resp)[:max_length]
                labels = ([IGNORE] * len(head) + resp)[:max_length]
                ids_out.append(ids)
                labels_out.append(labels)
                n_out.append(sum(1 for x in labels[1:] if x != IGNORE))
        else:
            enc = tokenizer(batch["text"], add_special_tokens=False, truncation=True,
                            max_length=max_length - (1 if eos is not None else 0))
            for ids in enc["input_ids"]:
                if eos is not None:
                    ids = ids + [eos]
                ids_out.append(ids)
                labels_out.append(list(ids))
                n_out.append(max(0, len(ids) - 1))
        return {"input_ids": ids_out, "labels": labels_out, "n_targets": n_out}

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
        if "prompt" not in batch:
            return None
        return [self.prompt_ids(tokenizer, p)[-max_length:] for p in batch["prompt"]]

    def prompt_ids(self, tokenizer: Any, prompt: str) -> list[int]:
        """The prompt as training fed it (chat template, or prompt + separator)."""
        if getattr(tokenizer, "chat_template", None):
            return _ids(tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                      add_generation_prompt=True, tokenize=True))
        return tokenizer(prompt + PROMPT_SEPARATOR, add_special_tokens=False)["input_ids"]

    def eval_metrics(self, state: dict[str, Any], loss: float) -> dict[str, Any]:
        return {"eval_loss": loss, "perplexity": perplexity(loss)}

    def predict(self, model: Any, tokenizer: Any, text: str, max_length: int) -> dict[str, Any]:
        import torch

        ids = self.prompt_ids(tokenizer, text)
        input_ids = torch.tensor([ids[-max_length:]], device=model.device)
        with torch.no_grad():
            out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                                 max_new_tokens=48, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id)
        new = out[0, input_ids.shape[1]:]
        return {"continuation": tokenizer.decode(new, skip_special_tokens=True)}


def _ids(x: Any) -> list[int]:
    if isinstance(x, dict) or hasattr(x, "keys"):
        x = x["input_ids"]
    return list(x)
