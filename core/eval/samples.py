"""``tunedeck samples``: a run's model on the first prompts of a split of its data, one prompt at a
time, the greedy and a sampled (seeded) continuation beside the reference (imports torch).

The model is loaded by ``tunedeck.core.eval.run_model`` (``RunModel``, the run's final weights);
the prompts are read through the data layer exactly as training read it. Batched generation for
evaluation and ``predict --file`` is ``batch_generation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunedeck.core.errors import UserError
from tunedeck.core.eval.run_model import RunModel


@dataclass
class SampleSettings:
    n: int = 5
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 64
    seed: int = 0

    def check(self) -> None:
        """Settings a person typed: each wrong one named, with its range."""
        if self.n < 1:
            raise UserError(f"--n {self.n}: ask for at least 1 sample")
        if not self.temperature > 0:
            raise UserError(f"--temperature {self.temperature}: must be above 0 (0 would be greedy, "
                            f"which is already shown)")
        if not 0 < self.top_p <= 1:
            raise UserError(f"--top-p {self.top_p}: must be in (0, 1]")
        if not 1 <= self.max_new_tokens <= 4096:
            raise UserError(f"--max-new-tokens {self.max_new_tokens}: must be 1 to 4096")


def validation_pairs(rm: RunModel, split: str, n: int) -> list[dict[str, Any]]:
    """The first ``n`` (prompt, reference, row) of a split of the run's data.

    Prompt/response data gives both; plain text is cut in half at a word boundary: the model
    continues the first half, the second is the reference."""
    from tunedeck.core.data import read_splits

    if rm.task.type == "classification":
        raise UserError(f"run {rm.run.id} is a classifier: samples are for causal-lm and "
                        f"seq2seq runs; try 'tunedeck predict {rm.run.id} TEXT'")
    splits = read_splits(rm.profile).splits
    if split not in splits:
        have = ", ".join(splits)
        raise UserError(f"--split {split}: run {rm.run.id} has no {split} rows (it has: {have}); "
                        f"set data.{split} or data.split in the profile, or pass --split train")
    ds = splits[split].select(range(min(n, len(splits[split]))))
    pairs = []
    for rec in ds:
        if "prompt" in rec:
            prompt, reference = rec["prompt"], rec["response"]
        else:
            words = str(rec["text"]).split(" ")
            cut = max(1, len(words) // 2)
            prompt, reference = " ".join(words[:cut]), " ".join(words[cut:])
        pairs.append({"row": rec.get("row"), "prompt": prompt, "reference": reference})
    return pairs


def continuation(rm: RunModel, prompt: str, settings: SampleSettings, sample: bool) -> str:
    """One continuation of ``prompt``: greedy, or sampled with the settings' temperature/top-p."""
    import torch

    tok, max_length = rm.tokenizer, rm.profile.training.max_length
    if rm.task.type == "seq2seq":
        enc = tok([prompt], truncation=True, max_length=max_length, return_tensors="pt")
        inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        prefix = 0
    else:
        input_ids = torch.tensor([rm.task.prompt_ids(tok, prompt)[-max_length:]])
        inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        prefix = input_ids.shape[1]
    inputs = {k: v.to(rm.device) for k, v in inputs.items()}
    how: dict[str, Any] = {"do_sample": False}
    if sample:
        how = {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p}
    with torch.no_grad():
        out = rm.model.generate(**inputs, max_new_tokens=settings.max_new_tokens,
                                pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **how)
    return tok.decode(out[0, prefix:], skip_special_tokens=True)


def sample_generations(rm: RunModel, split: str, settings: SampleSettings) -> list[dict[str, Any]]:
    """For the first ``settings.n`` prompts of ``split``: the reference, the greedy generation and
    a sampled one (seeded: the same command prints the same samples)."""
    import torch

    settings.check()
    pairs = validation_pairs(rm, split, settings.n)
    torch.manual_seed(settings.seed)
    for p in pairs:
        p["greedy"] = continuation(rm, p["prompt"], settings, sample=False)
        p["sampled"] = continuation(rm, p["prompt"], settings, sample=True)
    return pairs
