"""What `train`, `start` and `resume` check before a worker exists, so that a malformed file or
model is one clear error (exit 2) with no run directory and no worker.

Torch-free at import: torch, transformers and the data layer load inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

# How much `start` and `resume` check, by the data's total size on disk, so that they still
# return in seconds. Measured here: the data layer prepares a 60 MB CSV in 2.2 s; tokenizing it
# (MiniLM) takes ~45 s more.
#   up to TOKENIZE_UP_TO_BYTES: everything `train` checks, tokenization included (its cache is
#     the worker's, so nothing is tokenized twice);
#   up to LOAD_UP_TO_BYTES: the data layer (load, clean, split), and the model's config;
#   bigger: the files exist and the model's config loads; the worker reports a bad file.
TOKENIZE_UP_TO_BYTES = 8 * 2**20
LOAD_UP_TO_BYTES = 64 * 2**20

_DATA_KEYS = ("train", "validation", "test")


@dataclass(frozen=True)
class DataCheck:
    """What the checks produced. ``prepared``: the engine's tokenized data when they went that
    far (a foreground worker reuses it), else None. ``fingerprint``: the data's identity when
    the data layer ran, else None (resume compares it with the run's)."""

    prepared: Any = None
    fingerprint: str | None = None


def check_and_tokenize(prof: Any, log: Callable[[str], None] | None = None,
                       tokenizer_dir: Path | None = None) -> Any:
    """Everything a run needs that a user can get wrong: data (loaded, cleaned, split,
    tokenized: cached for the worker), tokenizer, model config, and a fresh model's build on the
    meta device. Returns the engine's prepared data; raises a UserError on the first problem."""
    import transformers

    from tunedeck.core.engine.inputs import prepare_inputs
    from tunedeck.core.models import build_config, check_model_builds

    check_eval_metrics(prof)
    check_quantization(prof)
    prepared = prepare_inputs(prof, log=log or (lambda m: None), tokenizer_dir=tokenizer_dir)
    config = build_config(prof, prepared.tokenizer, prepared.task.config_overrides())
    check_model_builds(prof, getattr(transformers, prepared.task.auto_class), config)
    from tunedeck.core.engine.adapters import check_lora_targets

    check_lora_targets(prof, getattr(transformers, prepared.task.auto_class), config)
    return prepared


def data_size_bytes(prof: Any) -> int:
    """Total bytes of the profile's data files (a directory counts its files); a missing or
    odd path is a DataError naming the profile key."""
    from tunedeck.core.errors import DataError

    size = 0
    for key in _DATA_KEYS:
        p = getattr(prof.data, key)
        if not p:
            continue
        path = Path(p)
        if not path.exists():
            raise DataError(f"data.{key}: no such file {path}; fix the path in the profile")
        if path.is_file():
            size += path.stat().st_size
        elif path.is_dir():
            size += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        else:
            raise DataError(f"data.{key}: {path} is not a regular file or directory")
    return size


def check_data_before_launch(prof: Any, tokenizer_dir: Path | None = None) -> DataCheck:
    """The checks before a detached start or a resume, as deep as the data's size allows (see
    TOKENIZE_UP_TO_BYTES)."""
    size = data_size_bytes(prof)
    if size <= TOKENIZE_UP_TO_BYTES:
        # Loading and splitting are repeated by the worker (seconds); the tokenization is not:
        # the worker reads the cache this fills.
        prepared = check_and_tokenize(prof, tokenizer_dir=tokenizer_dir)
        return DataCheck(prepared, prepared.data_fingerprint)
    check_eval_metrics(prof)
    check_quantization(prof)
    fingerprint = None
    if size <= LOAD_UP_TO_BYTES:
        from tunedeck.core.data import read_splits

        fingerprint = read_splits(prof).fingerprint  # a malformed file: exit 2 here, in seconds
    check_model_config_loads(prof)
    return DataCheck(None, fingerprint)


def check_model_config_loads(prof: Any) -> None:
    """A local model path that is not a model, or an uncached hub model offline: a ModelError
    now rather than in the worker."""
    from tunedeck.core.models import resolve_model_path

    resolve_model_path(prof.model.name)
    if prof.model.config is None:
        from transformers import AutoConfig

        from tunedeck.core.models import hf_load

        hf_load(AutoConfig, prof.model.name, "config", revision=prof.model.revision,
                trust_remote_code=prof.model.trust_remote_code)


def check_quantization(prof: Any) -> None:
    """[quantization] bits needs CUDA and bitsandbytes: a ProfileError before any run exists."""
    from tunedeck.core.engine.adapters import check_quantization as check

    check(prof)


def check_eval_metrics(prof: Any) -> None:
    """Every ``[evaluation] metrics`` name loads (shipped, or a hub metric online): a UserError
    naming it now, not after training."""
    if not prof.evaluation.metrics:
        return
    from tunedeck.core.errors import UserError
    from tunedeck.core.eval.metrics import load_metric

    for name in prof.evaluation.metrics:
        try:
            load_metric(name)
        except UserError as e:
            raise UserError(f"evaluation.metrics: {e}") from None
        except Exception as e:  # a hub id that does not exist, a module that fails to import
            raise UserError(f"evaluation.metrics: metric {name!r} cannot be loaded ({e}); fix "
                            f"the name (shipped: rouge, sacrebleu, exact_match)") from None
