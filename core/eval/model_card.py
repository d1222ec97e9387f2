"""``model/README.md``: what a run's model is, written at the end of training.

Base model, task, data sizes and fingerprint, test metrics, the confusion matrix
(classification), training time and hardware, and the frozen profile it was trained with, so
that the model folder explains itself wherever it is copied.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from tunedeck.core.fsutil import atomic_write_text

CARD_FILE = "README.md"
AUTO_CLASS = {"classification": "AutoModelForSequenceClassification",
              "causal-lm": "AutoModelForCausalLM", "seq2seq": "AutoModelForSeq2SeqLM"}


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def confusion_table(confusion: dict[str, Any]) -> str:
    """The confusion matrix as a markdown table: rows gold, columns predicted."""
    labels = [str(x) for x in confusion.get("labels") or []]
    matrix = confusion.get("matrix") or []
    lines = ["| gold \\ predicted | " + " | ".join(labels) + " |",
             "|---|" + "---:|" * len(labels)]
    for label, row in zip(labels, matrix):
        lines.append(f"| {label} | " + " | ".join(str(int(v)) for v in row) + " |")
    return "\n".join(lines)


def _metrics_table(report: dict[str, Any]) -> str:
    scalars = {k: v for k, v in report.items()
               if isinstance(v, float) and k not in ("train_time_s",)}
    lines = ["| metric | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in scalars.items()]
    return "\n".join(lines)


def render_card(*, profile_text: str, task: str, base_model: str, sizes: dict[str, int],
                fingerprint: str, report: dict[str, Any], hardware: str) -> str:
    """The card's markdown."""
    minutes = float(report.get("train_time_s") or 0) / 60
    parts = [
        "---", "library_name: transformers", f"tags: [tunedeck, {task}]", "---", "",
        f"# Fine-tuned {task} model", "",
        f"- **Base model:** {base_model}",
        f"- **Task:** {task}",
        "- **Data:** " + ", ".join(f"{k} {v:,} rows" for k, v in sizes.items()),
        f"- **Data fingerprint:** `{fingerprint}`",
        f"- **Training:** {report.get('steps', 0)} steps, {minutes:.1f} min, "
        f"{int(report.get('tokens_seen') or 0):,} tokens; weights of step "
        f"{report.get('weights_step')}",
        f"- **Hardware:** {hardware}", "",
        f"## Metrics ({report.get('split', 'test')} split)", "", _metrics_table(report), "",
    ]
    if report.get("confusion_matrix"):
        parts += ["## Confusion matrix", "", confusion_table(report["confusion_matrix"]), ""]
    parts += ["## Load it", "", "```python",
              f"from transformers import {AUTO_CLASS.get(task, 'AutoModel')}, AutoTokenizer",
              f"model = {AUTO_CLASS.get(task, 'AutoModel')}.from_pretrained('PATH/TO/model')",
              "tokenizer = AutoTokenizer.from_pretrained('PATH/TO/model')", "```", "",
              "## Profile", "", "```toml", profile_text.rstrip(), "```", ""]
    return "\n".join(parts)


def write_model_card(model_dir: Path, *, profile: Any, profile_text: str, sizes: dict[str, int],
                     fingerprint: str, report: dict[str, Any], device: str) -> Path:
    """Write ``model_dir/README.md`` (atomically) and return its path."""
    base = "a fresh model from [model.config]" if profile.model.config is not None else profile.model.name
    hardware = f"{device}; CPU {cpu_name()}"
    text = render_card(profile_text=profile_text, task=profile.task.type, base_model=base,
                       sizes=sizes, fingerprint=fingerprint, report=report, hardware=hardware)
    path = Path(model_dir) / CARD_FILE
    atomic_write_text(path, text)
    return path
