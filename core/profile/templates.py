"""Complete starting profiles per task (``tunedeck profile new --task ...``)."""

from __future__ import annotations

from tunedeck.core.profile.schema import Profile


def _validate(data: dict) -> Profile:
    # Through the profile loader's validation: a bad --name is the same one-line ProfileError.
    from tunedeck.core.profile.io import validate

    return validate(data, source="profile new")


def new_profile(task: str = "classification", name: str | None = None) -> Profile:
    if task == "classification":
        return _validate(
            {
                "name": name or "classify",
                "task": {"type": "classification"},
                "model": {"name": "sentence-transformers/all-MiniLM-L6-v2"},
                "data": {"train": "train.csv", "text_column": "text", "label_column": "label"},
                "training": {"epochs": 3, "learning_rate": 5e-5, "batch_size": 32, "max_length": 128},
            }
        )
    if task == "causal-lm":
        return _validate(
            {
                "name": name or "causal-lm",
                "task": {"type": "causal-lm"},
                # A small real instruct model with its own chat template, LoRA adapters and
                # packed conversations: what people fine-tune today. Offline, a [model.config]
                # table builds a fresh model instead (see sample_data/instructions-lm.toml).
                "model": {"name": "HuggingFaceTB/SmolLM2-135M-Instruct"},
                "data": {
                    "train": "train.jsonl",
                    "messages_column": "messages",
                    "chat_template": "auto",
                    "train_on": "assistant",
                    "packing": "on",
                },
                "lora": {"enabled": True, "r": 16, "alpha": 32},
                "training": {"epochs": 2, "learning_rate": 2e-4, "batch_size": 8, "max_length": 1024},
                "generation": {"max_new_tokens": 256},
            }
        )
    if task == "seq2seq":
        return _validate(
            {
                "name": name or "seq2seq",
                "task": {"type": "seq2seq"},
                "model": {"name": "google-t5/t5-small"},
                "data": {"train": "train.jsonl", "prompt_column": "input", "response_column": "target"},
                "training": {"epochs": 3, "learning_rate": 3e-4, "batch_size": 16, "max_length": 256},
            }
        )
    raise ValueError(f"unknown task {task!r}")
