"""Paraphrases from a model the user names (``tunedeck data augment --model``).

A seq2seq model is given ``paraphrase: TEXT``; a causal model ``TEXT\\nParaphrase:`` and its
continuation up to the first line break is taken. Sampling (top-p 0.9, temperature 0.9, seeded)
gives ``per_row`` different outputs per text; empty ones and copies of the input are not kept.
Runs on the GPU when there is one. The model may be a run (its ``model/``), a model folder, or
a hub id (offline: a cached one).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable

from tunedeck.core.errors import DataError

BATCH = 16
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # a model can emit any byte; files must not


def _model_source(ref: str) -> str:
    from tunedeck.core.models import resolve_model_path

    p = Path(ref)
    if p.is_dir() and (p / "profile.toml").is_file():
        if not (p / "model").is_dir():
            raise DataError(f"{ref}: this run has no model/ yet (it has not finished); give a "
                            "finished run or a model folder")
        return str(p / "model")
    return str(p) if p.is_dir() else resolve_model_path(ref)


def load_generator(ref: str) -> tuple[Any, Any, bool, str]:
    """(model, tokenizer, is_seq2seq, device)."""
    import torch
    from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM,
                              AutoTokenizer)

    source = _model_source(ref)
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=offline)
        seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        cls = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
        model = cls.from_pretrained(source, local_files_only=offline)
        tok = AutoTokenizer.from_pretrained(source, local_files_only=offline)
    except Exception as e:  # noqa: BLE001 - transformers raises many types here
        raise DataError(f"--model {ref}: cannot load a seq2seq or causal language model from "
                        f"{source} ({e}); give a finished run, a model folder, or a cached hub "
                        "id") from None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    tok.padding_side = "left" if not seq2seq else tok.padding_side
    return model.to(device).eval(), tok, seq2seq, device


def model_augmenter(ref: str, per_row: int, seed: int) -> Callable[[list[str]], list[list[str]]]:
    import torch

    model, tok, seq2seq, device = load_generator(ref)
    torch.manual_seed(seed)

    def variants(texts: list[str]) -> list[list[str]]:
        out: list[list[str]] = []
        for start in range(0, len(texts), BATCH):
            chunk = texts[start:start + BATCH]
            prompts = [f"paraphrase: {t}" if seq2seq else f"{t}\nParaphrase:" for t in chunk]
            enc = tok(prompts, return_tensors="pt", padding=True, truncation=True,
                      max_length=256).to(device)
            with torch.no_grad():
                gen = model.generate(**enc, do_sample=True, top_p=0.9, temperature=0.9,
                                     num_return_sequences=per_row, max_new_tokens=64,
                                     pad_token_id=tok.pad_token_id)
            if not seq2seq:
                gen = gen[:, enc["input_ids"].shape[1]:]
            decoded = tok.batch_decode(gen, skip_special_tokens=True)
            for i, text in enumerate(chunk):
                outs = [_CONTROL.sub("", d).strip().split("\n")[0].strip()
                        for d in decoded[i * per_row:(i + 1) * per_row]]
                out.append(list(dict.fromkeys(o for o in outs if o and o != text)))
        return out

    return variants
