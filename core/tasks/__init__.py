"""Task adapters behind one interface (``tunedeck.core.tasks.base.Task``)."""

from __future__ import annotations

from tunedeck.core.tasks.base import Task


def make_task(task_type: str, label_names: list[str] | None = None) -> Task:
    if task_type == "classification":
        from tunedeck.core.tasks.classification import ClassificationTask

        return ClassificationTask(label_names)
    if task_type == "causal-lm":
        from tunedeck.core.tasks.causal_lm import CausalLMTask

        return CausalLMTask(label_names)
    if task_type == "seq2seq":
        from tunedeck.core.tasks.seq2seq import Seq2SeqTask

        return Seq2SeqTask(label_names)
    raise ValueError(f"unknown task type {task_type!r}")
