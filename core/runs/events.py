"""The event log: ``runs/<id>/events.jsonl``, the contract between the worker and every reader.

One JSON object a line: ``{"seq": int, "time": float (unix), "type": str, "data": {...}}``,
flushed per line, append-only (resume continues the sequence). Readers ignore a partial last
line, malformed lines and unknown types. The types and what they mean for a run's state are in
``tunedeck.core.runs.protocol``; their payloads are documented in docs/events.md.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator


@dataclass(frozen=True)
class Event:
    seq: int
    time: float
    type: str
    data: dict[str, Any]

    @classmethod
    def from_obj(cls, obj: Any) -> "Event | None":
        if not isinstance(obj, dict):
            return None
        try:
            data = obj.get("data") or {}
            if not isinstance(data, dict):
                data = {}
            return cls(int(obj["seq"]), float(obj["time"]), str(obj["type"]), data)
        except (KeyError, TypeError, ValueError):
            return None


class EventWriter:
    """Appends events; safe to call from the training thread and the heartbeat thread."""

    def __init__(self, path: Path, echo: "Callable[[Event], None] | None" = None):
        self.path = path
        self.echo = echo  # e.g. the foreground CLI's progress printer
        self._lock = threading.Lock()
        self._seq = last_seq(path)
        self._truncate_partial_tail()
        self._f = open(path, "a", encoding="utf-8")

    def _truncate_partial_tail(self) -> None:
        # A worker killed mid-write can leave half a line; cut it so the next line starts clean.
        try:
            with open(self.path, "rb+") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                if size == 0:
                    return
                f.seek(max(0, size - 1))
                if f.read(1) == b"\n":
                    return
                f.seek(max(0, size - 65536))
                tail = f.read()
                cut = tail.rfind(b"\n")
                f.truncate(size - len(tail) + cut + 1 if cut >= 0 else max(0, size - len(tail)))
        except FileNotFoundError:
            pass

    def emit(self, type: str, **data: Any) -> Event:
        with self._lock:
            self._seq += 1
            ev = Event(self._seq, time.time(), type, data)
            self._f.write(json.dumps({"seq": ev.seq, "time": ev.time, "type": type, "data": data},
                                     default=_jsonable, allow_nan=True) + "\n")
            self._f.flush()
        if self.echo is not None:
            self.echo(ev)
        return ev

    def close(self) -> None:
        with self._lock:
            self._f.close()


def _jsonable(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def last_seq(path: Path) -> int:
    last = 0
    for ev in read_all(path):
        last = ev.seq
    return last


def read_all(path: Path) -> list[Event]:
    return EventTail(path).read_new()


class EventTail:
    """Incremental reader: each ``read_new()`` returns the complete lines written since the last."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0

    def read_new(self) -> list[Event]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        return list(_parse(chunk[: end + 1]))


def _parse(chunk: bytes) -> Iterator[Event]:
    for raw in chunk.splitlines():
        if not raw.strip():
            continue
        try:
            ev = Event.from_obj(json.loads(raw))
        except ValueError:
            continue
        if ev is not None:
            yield ev
