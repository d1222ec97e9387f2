"""A run's model, loaded once, on prompts of its data: sample generations beside the references,
greedy and sampled, and the ``serve-predict`` answers (imports torch and transformers).

The model is the run's final one (``RUN/model``, plain ``from_pretrained`` like
``tunedeck.core.predict``); the prompts are a split of the run's own data, read through the data
layer exactly as training read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunedeck.core.errors import RunError, UserError
from tunedeck.core.runs.rundir import RunDir


@dataclass
class LoadedRun:
    """A run's final model and tokenizer, in eval mode, and what the task needs to use them."""

    run: RunDir
    profile: Any
    task: Any
    model: Any
    tokenizer: Any

    @property
    def max_length(self) -> int:
        return int(self.profile.training.max_length)


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


def load_run_model(run: RunDir) -> LoadedRun:
    """Load RUN/model once (a RunError when the run has not written it yet)."""
    import transformers

    from tunedeck.core.engine.inputs import quiet_libraries
    from tunedeck.core.profile import load
    from tunedeck.core.tasks import make_task

    if not (run.model_dir / "config.json").is_file():
        raise RunError(f"run {run.id} has no final model yet (state "
                       f"{run.effective_state()[0]}); it is written when training finishes")
    quiet_libraries()
    profile = load(run.profile_path)
    task = make_task(profile.task.type)
    model = getattr(transformers, task.auto_class).from_pretrained(str(run.model_dir))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(run.model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return LoadedRun(run, profile, task, model, tokenizer)


def answer(loaded: LoadedRun, text: str) -> dict[str, Any]:
    """One ``serve-predict`` answer: {"label", "probabilities"} or {"generation"}."""
    out = loaded.task.predict(loaded.model, loaded.tokenizer, text, loaded.max_length)
    if "label" in out:
        return {"label": out["label"], "probability": out["probability"],
                "probabilities": out["probabilities"]}
    return {"generation": out["continuation"]}


def validation_pairs(loaded: LoadedRun, split: str, n: int) -> list[dict[str, Any]]:
    """The first ``n`` (prompt, reference, row) of a split of the run's data.

    Prompt/response data gives both; plain text is cut in half at a word boundary: the model
    continues the first half, the second is the reference."""
    from tunedeck.core.data import read_splits

    if loaded.task.type == "classification":
        raise UserError(f"run {loaded.run.id} is a classifier: samples are for causal-lm and "
                        f"seq2seq runs; try 'tunedeck predict {loaded.run.id} TEXT'")
    splits = read_splits(loaded.profile).splits
    if split not in splits:
        have = ", ".join(splits)
        raise UserError(f"--split {split}: run {loaded.run.id} has no {split} rows (it has: {have}); "
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


def generate(loaded: LoadedRun, prompt: str, settings: SampleSettings, sample: bool) -> str:
    """One continuation of ``prompt``: greedy, or sampled with the settings' temperature/top-p."""
    import torch

    from tunedeck.core.tasks.causal_lm import PROMPT_SEPARATOR, _ids

    tok = loaded.tokenizer
    if loaded.task.type == "seq2seq":
        enc = tok([prompt], truncation=True, max_length=loaded.max_length, return_tensors="pt")
        inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        prefix = 0
    else:
        if getattr(tok, "chat_template", None):
            ids = _ids(tok.apply_chat_template([{"role": "user", "content": prompt}],
                                               add_generation_prompt=True, tokenize=True))
        else:
            ids = tok(prompt + PROMPT_SEPARATOR, add_special_tokens=False)["input_ids"]
        input_ids = torch.tensor([ids[-loaded.max_length:]])
        inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        prefix = input_ids.shape[1]
    how: dict[str, Any] = {"do_sample": False}
    if sample:
        how = {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p}
    with torch.no_grad():
        out = loaded.model.generate(**inputs, max_new_tokens=settings.max_new_tokens,
                                    pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                    **how)
    return tok.decode(out[0, prefix:], skip_special_tokens=True)


def sample_generations(loaded: LoadedRun, split: str, settings: SampleSettings) -> list[dict[str, Any]]:
    """For the first ``settings.n`` prompts of ``split``: the reference, the greedy generation and
    a sampled one (seeded: the same command prints the same samples)."""
    import torch

    settings.check()
    pairs = validation_pairs(loaded, split, settings.n)
    torch.manual_seed(settings.seed)
    for p in pairs:
        p["greedy"] = generate(loaded, p["prompt"], settings, sample=False)
        p["sampled"] = generate(loaded, p["prompt"], settings, sample=True)
    return pairs
