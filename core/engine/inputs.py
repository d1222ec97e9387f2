"""Everything a run needs before its first step: data, tokenizer, tokenized examples (cached:
``token_cache``), model.

Each phase here can be stopped: the worker's signal handler raises ``StopRequested`` while
these run, and tokenization also checks ``stop_requested`` between batches.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tunedeck.core.engine.examples import TokenizedSet
from tunedeck.core.engine.faults import FaultHooks
from tunedeck.core.engine.state import StopRequested
from tunedeck.core.engine.token_cache import (
    TokenCache, cache_key, cache_root, clean_dead_temp_dirs, publish, temp_dir_for)
from tunedeck.core.profile.schema import Profile
from tunedeck.core.tasks import make_task
from tunedeck.core.tasks.base import Task

Log = Callable[[str], None]


@dataclass
class TrainingInputs:
    """The prepared data, tokenizer and task of one run: what the training loop consumes."""

    profile: Profile
    task: Task
    tokenizer: Any
    train: TokenizedSet
    validation: TokenizedSet | None
    test: TokenizedSet | None
    label_names: list[str] | None
    data_stats: dict[str, Any] = field(default_factory=dict)
    cache_hit: bool = False
    data_fingerprint: str = ""  # the prepared rows' identity (file contents + data settings)

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in (("train", self.train), ("validation", self.validation),
                                        ("test", self.test)) if v is not None}


def prepare_inputs(profile: Profile, log: Log = lambda m: None, tokenizer_dir: Path | None = None,
                   stop_requested: Callable[[], bool] = lambda: False,
                   hooks: FaultHooks | None = None, warn: Log | None = None) -> TrainingInputs:
    """Load, clean and split the data; get the tokenizer; tokenize (or load from cache)."""
    from tunedeck.core.data import read_splits as prepare_data

    quiet_libraries()
    hooks = hooks or FaultHooks()
    data = prepare_data(profile)
    task = make_task(profile.task.type, data.label_names)
    task.configure(profile)
    tokenizer = _get_tokenizer(profile, task, data, log, tokenizer_dir)
    if profile.task.type == "causal-lm":
        from tunedeck.core.data.chat import apply_profile_template

        apply_profile_template(tokenizer, profile.data.chat_template, "messages" in data.columns)
    cache = TokenCache(cache_key(data.fingerprint, tokenizer, profile.training.max_length),
                       log, warn or log)
    splits = cache.load()
    hit = splits is not None
    if splits is None:
        hooks.fire("tokenize")
        tokenized: dict[str, Any] = {}
        for name, ds in (("train", data.train), ("validation", data.validation),
                         ("test", data.test)):
            if ds is None or len(ds) == 0:
                tokenized[name] = None
                continue
            log(f"tokenizing {name}: {len(ds)} rows")
            tokenized[name] = _tokenize_split(name, task, ds, tokenizer, profile, data,
                                              stop_requested, log)
        splits = cache.store(tokenized)
    train = splits.get("train")
    if train is None or len(train) == 0:
        from tunedeck.core.errors import DataError

        raise DataError(f"{profile.data.train}: no training rows left after preparation")
    return TrainingInputs(profile, task, tokenizer, train, splits.get("validation"),
                          splits.get("test"), data.label_names, dict(data.stats), hit,
                          data.fingerprint)


def _get_tokenizer(profile: Profile, task: Task, data: Any, log: Log,
                   tokenizer_dir: Path | None) -> Any:
    """The run's saved tokenizer on resume; else one trained on the data (a model built from a
    config without a tokenizer), else the profile's."""
    from tunedeck.core.models import load_tokenizer

    if tokenizer_dir is not None and tokenizer_dir.is_dir():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        return tokenizer
    if profile.model.config is not None and not profile.model.tokenizer:
        return _trained_tokenizer(profile, task, data, log)
    return load_tokenizer(profile)


def _trained_tokenizer(profile: Profile, task: Task, data: Any, log: Log) -> Any:
    """Train a tokenizer on the data once, then reuse it: training is not deterministic (ties
    in the merge order), and the same tokenizer keeps tokenization caches valid."""
    from transformers import AutoTokenizer

    from tunedeck.core.models import load_tokenizer

    cfg = profile.model.config or {}
    key = hashlib.sha256(json.dumps([data.fingerprint, cfg.get("model_type"), cfg.get("vocab_size")],
                                    sort_keys=True).encode()).hexdigest()[:24]
    cdir = cache_root() / "tokenizers" / key
    if (cdir / "tokenizer_config.json").is_file():
        log(f"tokenizer: cache hit ({cdir})")
        return AutoTokenizer.from_pretrained(str(cdir))
    log("training a tokenizer on the training data")
    tok = load_tokenizer(profile, _iter_texts(task, data.train))
    tmp = temp_dir_for(cdir)
    try:
        cdir.parent.mkdir(parents=True, exist_ok=True)
        clean_dead_temp_dirs(cdir.parent)
        tok.save_pretrained(str(tmp))
        if not publish(tmp, cdir):  # another run trained and saved one first: use theirs
            return AutoTokenizer.from_pretrained(str(cdir))
    except OSError:
        pass  # caching is an optimisation; this tokenizer is good
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return tok


def quiet_libraries() -> None:
    """Progress bars from datasets/transformers would flood worker.log and the console."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def _iter_texts(task: Task, ds: Any):
    for i in range(0, len(ds), 1000):
        yield from task.text_for_tokenizer_training(ds[i: i + 1000])


def _tokenize_split(name: str, task: Task, ds: Any, tokenizer: Any, profile: Profile,
                    data: Any, stop_requested: Callable[[], bool], log: Log) -> Any:
    """One split's tokenized rows: examples, or packed rows (``tunedeck.core.data.packing``):
    corpus blocks for every split, several examples per row for train."""
    from tunedeck.core.data import packing

    max_length = profile.training.max_length
    if data.stats.get("files", {}).get("train", {}).get("packed"):
        res = packing.pack_corpus(ds, tokenizer, max_length)
        log(f"packed {name}: {len(ds)} document(s) -> {len(res)} blocks of {max_length} tokens")
        return _token_features(res)
    res = _tokenize(task, ds, tokenizer, max_length, stop_requested)
    if name == "train" and profile.task.type == "causal-lm" and profile.data.packing == "on":
        n = len(res)
        res = _token_features(packing.pack_examples(res, max_length))
        log(f"packed train: {n} examples -> {len(res)} rows of <= {max_length} tokens")
    return res


def _tokenize(task: Task, ds: Any, tokenizer: Any, max_length: int,
              stop_requested: Callable[[], bool] = lambda: False) -> Any:
    keep = [c for c in ds.column_names if c == "row"]
    remove = [c for c in ds.column_names if c not in keep]

    def fn(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if stop_requested():
            raise StopRequested("stop requested during tokenization")
        return task.tokenize_batch(batch, tokenizer, max_length)

    res = ds.map(fn, batched=True, batch_size=1000, remove_columns=remove, load_from_cache_file=False,
                 desc=None)
    return _token_features(res)


def _token_features(res: Any) -> Any:
    """Arrow types: token ids as int32 lists keep the cache small."""
    from datasets import Features, Sequence, Value

    feats = dict(res.features)
    feats["input_ids"] = Sequence(Value("int32"))
    if "position_ids" in feats:
        feats["position_ids"] = Sequence(Value("int32"))
    if "labels" in feats and not isinstance(feats["labels"], Value):
        feats["labels"] = Sequence(Value("int32"))
    else:
        feats["labels"] = Value("int64")
    feats["n_targets"] = Value("int64")
    return res.cast(Features(feats))


def build_model(inputs: TrainingInputs, log: Log = lambda m: None) -> Any:
    import transformers

    from tunedeck.core.models import build_config, load_model

    auto_cls = getattr(transformers, inputs.task.auto_class)
    config = build_config(inputs.profile, inputs.tokenizer, inputs.task.config_overrides())
    model = load_model(inputs.profile, auto_cls, config)
    # A tokenizer with more tokens than the checkpoint's embeddings (e.g. an added pad token).
    emb = model.get_input_embeddings()
    if emb is not None and len(inputs.tokenizer) > emb.num_embeddings:
        model.resize_token_embeddings(len(inputs.tokenizer))
    if inputs.train.positions is not None:
        from tunedeck.core.data.packing import packed_attention_supported

        if packed_attention_supported(model):
            log("packing: examples share rows; position ids restart per example, so attention "
                "stays inside each example")
        else:
            inputs.train.positions = None
            log(f"packing: {type(model).__name__} does not mask by position ids; packed rows "
                "are plain concatenations (attention crosses examples in a row)")
    return model
