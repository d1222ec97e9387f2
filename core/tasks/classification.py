"""Sequence classification (BERT-style encoder + classification head)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunedeck.core.eval.metrics import classification_metrics
from tunedeck.core.tasks.base import Task


class ClassificationTask(Task):
    type = "classification"
    auto_class = "AutoModelForSequenceClassification"
    metric_for_best = "f1_macro"
    greater_is_better = True

    def config_overrides(self) -> dict[str, Any]:
        names = self.label_names or []
        return {
            "num_labels": len(names),
            "id2label": {i: n for i, n in enumerate(names)},
            "label2id": {n: i for i, n in enumerate(names)},
            "problem_type": "single_label_classification",
        }

    def tokenize_batch(self, batch: dict[str, list[Any]], tokenizer: Any, max_length: int) -> dict[str, list[Any]]:
        enc = tokenizer(batch["text"], truncation=True, max_length=max_length)
        return {"input_ids": enc["input_ids"], "labels": list(batch["label"]),
                "n_targets": [1] * len(batch["label"])}

    def loss_sum(self, logits: Any, labels: Any) -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), labels, reduction="sum")

    def loss_per_row(self, logits: Any, labels: Any) -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), labels, reduction="none")

    def eval_accumulate(self, state: dict[str, Any], logits: Any, labels: Any) -> None:
        state.setdefault("preds", []).append(logits.argmax(-1).cpu().numpy())
        state.setdefault("labels", []).append(labels.cpu().numpy())
        state.setdefault("probs", []).append(logits.float().softmax(-1).max(-1).values.cpu().numpy())

    def eval_metrics(self, state: dict[str, Any], loss: float) -> dict[str, Any]:
        preds = np.concatenate(state.get("preds", [np.zeros(0, dtype=np.int64)]))
        labels = np.concatenate(state.get("labels", [np.zeros(0, dtype=np.int64)]))
        rep = classification_metrics(labels, preds, self.label_names or [])
        return {"eval_loss": loss, **rep}

    def predict(self, model: Any, tokenizer: Any, text: str, max_length: int) -> dict[str, Any]:
        import torch

        enc = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
        inputs = {k: v.to(model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        with torch.no_grad():
            logits = model(**inputs).logits
        probs = logits.float().softmax(-1)[0]
        i = int(probs.argmax())
        id2label = getattr(model.config, "id2label", {}) or {}
        label = id2label.get(i, id2label.get(str(i), str(i)))
        return {"label": label, "probability": float(probs[i]),
                "probabilities": {id2label.get(j, str(j)): float(p) for j, p in enumerate(probs)}}
