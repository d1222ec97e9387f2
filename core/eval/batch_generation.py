"""Batched generation for evaluation and batch prediction (causal LM, seq2seq).

Prompts are grouped by length (the engine's length-sorted evaluation plan) so that a batch pads
little; causal-LM prompts are padded on the left, where generation must not start from padding.
Greedy unless sampling is on (``[generation]``, or ``[evaluation]``'s own generation fields
when set; ``generation_settings``); stop strings cut the texts.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from tunedeck.core.engine import batching as B

Progress = Callable[[int], None]


def generate_texts(rm: Any, prompts: Sequence[list[int]], batch_size: int,
                   progress: Progress = lambda n: None) -> list[str]:
    """One generated text per prompt (the first sample when num_samples > 1), in prompt order."""
    import torch

    from tunedeck.core.eval.generation_settings import cut_at_stop, generation_kwargs

    settings = rm.profile.evaluation
    out: list[str] = [""] * len(prompts)
    lengths = np.asarray([len(p) for p in prompts], dtype=np.int64)
    kwargs = generation_kwargs(rm.profile, rm.tokenizer, for_eval=True)
    sampling = kwargs["do_sample"]
    if sampling:
        kwargs["num_return_sequences"] = settings.num_samples
    stop = list(kwargs.get("stop_strings") or [])
    encoder_decoder = bool(getattr(rm.model.config, "is_encoder_decoder", False))
    with torch.no_grad():
        for idx in B.plan_eval(lengths, batch_size):
            ids, mask = _padded([prompts[i] for i in idx], rm.tokenizer.pad_token_id or 0,
                                left=not encoder_decoder)
            ids, mask = ids.to(rm.device), mask.to(rm.device)
            with rm.autocast():
                generated = rm.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
            if not encoder_decoder:
                generated = generated[:, ids.shape[1]:]
            step = settings.num_samples if sampling else 1
            texts = rm.tokenizer.batch_decode(generated[::step], skip_special_tokens=True)
            for i, text in zip(idx, texts):
                out[int(i)] = cut_at_stop(text, stop).strip()
            progress(len(idx))
    return out


def _padded(rows: list[list[int]], pad_id: int, left: bool) -> tuple[Any, Any]:
    import torch

    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        if not row:
            continue
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[r, span] = torch.tensor(row, dtype=torch.long)
        mask[r, span] = 1
    return ids, mask
