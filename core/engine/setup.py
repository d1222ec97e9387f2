"""Everything a run needs before its first step: data, tokenizer, tokenized sets (cached), model.

The tokenized splits are cached under ``$TUNEDECK_CACHE_DIR`` (default ~/.cache/tunedeck),
keyed by the prepared data's fingerprint (file contents and settings), the tokenizer and max_length:
a second run on unchanged data does not tokenize again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tunedeck.core.profile.schema import Profile
from tunedeck.core.tasks import make_task
from tunedeck.core.tasks.base import Task, TokenizedSet

Log = Callable[[str], None]


@dataclass
class Prepared:
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


def cache_root() -> Path:
    return Path(os.environ.get("TUNEDECK_CACHE_DIR") or Path.home() / ".cache" / "tunedeck")


def tokenizer_fingerprint(tokenizer: Any) -> str:
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update((backend.to_str() if backend is not None else repr(tokenizer)).encode())
    h.update(str(getattr(tokenizer, "chat_template", "")).encode())
    h.update(str(tokenizer.eos_token_id).encode())
    return h.hexdigest()[:16]


def cache_key(data_fingerprint: str, tokenizer: Any, max_length: int) -> str:
    """Tokenized splits are reusable when the prepared rows (the data layer's fingerprint: file
    contents, data settings, task, seed), the tokenizer and max_length are the same."""
    parts = {"v": 4, "data": data_fingerprint, "max_length": max_length,
             "tokenizer": tokenizer_fingerprint(tokenizer)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def prepare(profile: Profile, log: Log = lambda m: None, tokenizer_dir: Path | None = None,
            stop_requested: Callable[[], bool] = lambda: False) -> Prepared:
    """Load, clean and split the data; get the tokenizer; tokenize (or load from cache)."""
    from tunedeck.core.data import prepare as prepare_data
    from tunedeck.core.models import load_tokenizer

    quiet_libraries()
    data = prepare_data(profile)
    task = make_task(profile.task.type, data.label_names)
    if tokenizer_dir is not None and tokenizer_dir.is_dir():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    else:
        if profile.model.config is not None and not profile.model.tokenizer:
            tokenizer = _trained_tokenizer(profile, task, data, log)
        else:
            tokenizer = load_tokenizer(profile)

    key = cache_key(data.fingerprint, tokenizer, profile.training.max_length)
    cdir = cache_root() / "tokenized" / key
    splits = {"train": data.train, "validation": data.validation, "test": data.test}
    out: dict[str, TokenizedSet | None] = {}
    hit = (cdir / "COMPLETE").is_file()
    if hit:
        from datasets import load_from_disk

        log(f"tokenized data: cache hit ({cdir})")
        for name, ds in splits.items():
            out[name] = TokenizedSet.from_dataset(load_from_disk(str(cdir / name))) if (cdir / name).is_dir() else None
    else:
        tmp = cdir.with_name(cdir.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        for name, ds in splits.items():
            if ds is None or len(ds) == 0:
                out[name] = None
                continue
            if stop_requested():
                raise KeyboardInterrupt
            log(f"tokenizing {name}: {len(ds)} rows")
            tok_ds = _tokenize(task, ds, tokenizer, profile.training.max_length)
            tok_ds.save_to_disk(str(tmp / name))
            from datasets import load_from_disk

            out[name] = TokenizedSet.from_dataset(load_from_disk(str(tmp / name)))
        try:
            (tmp / "COMPLETE").write_text("ok")
            cdir.parent.mkdir(parents=True, exist_ok=True)
            if cdir.exists():
                shutil.rmtree(cdir, ignore_errors=True)
            os.replace(tmp, cdir)
            # Reopen from the final place (the memory maps pointed into tmp).
            from datasets import load_from_disk

            for name in list(out):
                if out[name] is not None:
                    out[name] = TokenizedSet.from_dataset(load_from_disk(str(cdir / name)))
        except OSError:
            pass  # caching is an optimisation; the tokenized data in memory is still good
    train = out.get("train")
    if train is None or len(train) == 0:
        from tunedeck.core.errors import DataError

        raise DataError(f"{profile.data.train}: no training rows left after preparation")
    return Prepared(profile, task, tokenizer, train, out.get("validation"), out.get("test"),
                    data.label_names, dict(data.stats), hit, data.fingerprint)


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
    tmp = cdir.with_name(cdir.name + f".tmp{os.getpid()}")
    try:
        tok.save_pretrained(str(tmp))
        cdir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, cdir)
    except OSError:
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


def _tokenize(task: Task, ds: Any, tokenizer: Any, max_length: int) -> Any:
    from datasets import Features, Sequence, Value

    keep = [c for c in ds.column_names if c == "row"]
    remove = [c for c in ds.column_names if c not in keep]

    def fn(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return task.tokenize_batch(batch, tokenizer, max_length)

    res = ds.map(fn, batched=True, batch_size=1000, remove_columns=remove, load_from_cache_file=False,
                 desc=None)
    # Arrow types: token ids as int32 lists keep the cache small.
    feats = dict(res.features)
    feats["input_ids"] = Sequence(Value("int32"))
    if "labels" in feats and not isinstance(feats["labels"], Value):
        feats["labels"] = Sequence(Value("int32"))
    else:
        feats["labels"] = Value("int64")
    feats["n_targets"] = Value("int64")
    return res.cast(Features(feats))


def build_model(prepared: Prepared) -> Any:
    import transformers

    from tunedeck.core.models import build_config, load_model

    auto_cls = getattr(transformers, prepared.task.auto_class)
    config = build_config(prepared.profile, prepared.tokenizer, prepared.task.config_overrides())
    model = load_model(prepared.profile, auto_cls, config)
    # A tokenizer with more tokens than the checkpoint's embeddings (e.g. an added pad token).
    emb = model.get_input_embeddings()
    if emb is not None and len(prepared.tokenizer) > emb.num_embeddings:
        model.resize_token_embeddings(len(prepared.tokenizer))
    return model
