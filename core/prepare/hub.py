"""Hugging Face hub datasets: ``data.train = "hf:NAME[:CONFIG][@SPLIT]"`` and ``tunedeck data
pull``.

``datasets.load_dataset`` does the loading, into its normal cache (``HF_DATASETS_CACHE``); the
split is then written once as Parquet under tunedeck's cache so the one data layer reads it like
any file. Offline (``HF_DATASETS_OFFLINE=1`` or no network) a cached dataset still loads; a
missing one is one error naming the fix. NAME may also be a local folder of data files or a
loading script's folder (``load_dataset`` takes those too).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunedeck.core.errors import DataError

PREFIX = "hf:"


@dataclass(frozen=True)
class HubRef:
    name: str
    config: str | None
    split: str | None

    def __str__(self) -> str:
        return (PREFIX + self.name + (f":{self.config}" if self.config else "")
                + (f"@{self.split}" if self.split else ""))


def is_hub(value: str | None) -> bool:
    return bool(value) and str(value).startswith(PREFIX)


def parse_ref(value: str, default_split: str | None = None) -> HubRef:
    """``hf:imdb``, ``hf:glue:sst2``, ``hf:imdb@test`` (``hf:`` optional)."""
    body = value[len(PREFIX):] if value.startswith(PREFIX) else value
    body, _, split = body.partition("@")
    name, _, config = body.partition(":")
    if not name.strip():
        raise DataError(f"{value!r}: name a dataset, e.g. hf:imdb, hf:glue:sst2 or hf:imdb@test")
    return HubRef(name.strip(), config.strip() or None, split.strip() or default_split)


def cache_root() -> Path:
    return Path(os.environ.get("TUNEDECK_CACHE_DIR") or Path.home() / ".cache" / "tunedeck")


def load_hub(ref: HubRef) -> Any:
    """``load_dataset`` with one clear error when it cannot (offline and not cached, unknown)."""
    import datasets

    offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
    try:
        return datasets.load_dataset(ref.name, ref.config, split=ref.split)
    except Exception as e:  # noqa: BLE001 - datasets raises many types for "not found"
        why = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        if offline:
            fix = ("this machine is offline and the dataset is not in the datasets cache "
                   f"({datasets.config.HF_DATASETS_CACHE}); run `tunedeck data pull {ref}` "
                   "where there is network (or copy its cache here), or point data.train at a "
                   "local file")
        else:
            fix = ("check the name (and :CONFIG / @SPLIT) on the hub, or point data.train at a "
                   "local file")
        raise DataError(f"{ref}: cannot load the dataset ({why}); {fix}") from None


def hub_to_parquet(ref: HubRef) -> Path:
    """The split as a Parquet file under tunedeck's cache (written once per dataset version)."""
    from datasets import DatasetDict

    ds = load_hub(ref)
    if isinstance(ds, DatasetDict):  # no split given
        raise DataError(f"{ref}: holds splits {', '.join(ds)}; name one, e.g. {ref}@{next(iter(ds))}")
    key = hashlib.blake2b(f"{ref}|{ds._fingerprint}".encode(), digest_size=12).hexdigest()
    path = cache_root() / "hub" / f"{key}.parquet"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        ds.to_parquet(str(tmp))
        os.replace(tmp, path)
    return path


def pull(name: str, config: str | None = None, split: str | None = None,
         out: str | None = None) -> dict[str, Any]:
    """Load into the cache; with ``out``, write the split (default train) there too."""
    ref = parse_ref(name)
    ref = HubRef(ref.name, config or ref.config, split or ref.split)
    from datasets import DatasetDict

    ds = load_hub(ref)
    splits = dict(ds) if isinstance(ds, DatasetDict) else {ref.split: ds}
    result: dict[str, Any] = {"dataset": str(ref), "splits": {k: v.num_rows for k, v in
                                                               splits.items()},
                              "columns": next(iter(splits.values())).column_names,
                              "output": None}
    if out:
        from tunedeck.core.prepare.streaming import Writer, output_format

        chosen = ref.split or ("train" if "train" in splits else next(iter(splits)))
        table = splits[chosen].with_format("arrow")[:]
        path = Path(out)
        w = Writer(path, output_format(path, "parquet"))
        w.write(table)
        w.commit(table.schema)
        result["output"] = str(path)
    return result
