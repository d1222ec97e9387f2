"""The tokenized-data cache: ``$TUNEDECK_CACHE_DIR/tokenized/<key>/`` (default ~/.cache/tunedeck).

An entry is keyed by the prepared rows' fingerprint, the tokenizer and max_length, and is
immutable once it exists: it is written into a temporary directory named after this host and
process, then renamed into place. If the name is taken meanwhile, another process won the race
and its (identical) entry is used; a complete entry is never deleted, since another worker may
be reading it. A write error is only a warning: training goes on with the data in memory.
Temporary directories of processes that died (killed, stopped mid-write) are removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any, Callable

from tunedeck.core.engine.examples import TokenizedSet

COMPLETE = "COMPLETE"
# .tmp-<key>-<host>-<pid>; and <key>.tmp<pid>, written by earlier versions.
_TMP = re.compile(r"^\.tmp-.+-(?P<host>[^-]+)-(?P<pid>\d+)$|^.+\.tmp(?P<oldpid>\d+)$")


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


def temp_dir_for(final: Path) -> Path:
    return final.with_name(f".tmp-{final.name}-{socket.gethostname().replace('-', '_')}-{os.getpid()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_dead_temp_dirs(parent: Path) -> list[str]:
    """Remove temporary directories left by processes of this host that no longer run."""
    removed: list[str] = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    host = socket.gethostname().replace("-", "_")
    for name in names:
        m = _TMP.match(name)
        if not m:
            continue
        pid = int(m.group("pid") or m.group("oldpid"))
        if (m.group("host") in (None, host)) and pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(parent / name, ignore_errors=True)
            removed.append(name)
    return removed


def publish(tmp: Path, final: Path) -> bool:
    """Rename a finished ``tmp`` to ``final``. False when ``final`` already exists (another
    process won): ``tmp`` is then removed and theirs stays untouched."""
    try:
        os.rename(tmp, final)  # never replaces a non-empty directory
        return True
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        return False


Splits = dict[str, TokenizedSet | None]


class TokenCache:
    def __init__(self, key: str, log: Callable[[str], None], warn: Callable[[str], None]):
        self.dir = cache_root() / "tokenized" / key
        self.log, self.warn = log, warn

    def load(self, announce: bool = True) -> Splits | None:
        """The cached splits, or None when there is no complete entry."""
        if not (self.dir / COMPLETE).is_file():
            return None
        from datasets import load_from_disk

        if announce:
            self.log(f"tokenized data: cache hit ({self.dir})")
        return {name: TokenizedSet.from_dataset(load_from_disk(str(self.dir / name)))
                if (self.dir / name).is_dir() else None
                for name in ("train", "validation", "test")}

    def store(self, tokenized: dict[str, Any]) -> Splits:
        """Cache the tokenized datasets (None for an empty split); returns the splits, memory
        mapped from the cache when it could be written, else from memory."""
        tmp = temp_dir_for(self.dir)
        try:
            clean_dead_temp_dirs(self.dir.parent)
            self._write(tmp, tokenized)
            if not publish(tmp, self.dir):
                self.log(f"tokenized data: another run cached it first ({self.dir}); using that")
            cached = self.load(announce=False)
            if cached is not None:
                return cached
        except OSError as e:
            self.warn(f"cannot cache the tokenized data in {self.dir.parent} "
                      f"({e.strerror or e}); training goes on with it in memory")
        finally:  # also on a stop mid-write: no temporary directory is left behind
            shutil.rmtree(tmp, ignore_errors=True)
        return {n: TokenizedSet.from_dataset(ds) if ds is not None else None
                for n, ds in tokenized.items()}

    def _write(self, tmp: Path, tokenized: dict[str, Any]) -> None:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, ds in tokenized.items():
            if ds is not None:
                ds.save_to_disk(str(tmp / name))
        (tmp / COMPLETE).write_text("ok", encoding="utf-8")
