"""Run directories: layout, status, honest state, lookup and control requests.

Torch-free: the TUI and ``tunedeck runs`` read runs through this module (listing and summaries:
``tunedeck.core.runs.listing``; what the states and events mean: ``tunedeck.core.runs.protocol``).

Layout of ``<runs_dir>/<run id>/``::

    profile.toml      frozen copy of the profile (absolute data paths)
    events.jsonl      append-only event log (tunedeck.core.runs.events)
    status.json       pid, host, state, heartbeat, step ... (rewritten atomically)
    worker.log        the worker's stdout/stderr (tracebacks go here)
    run.lock          flock held by the live worker: two workers never share a run
    control/          one file per request (stop, checkpoint, evaluate), consumed by the worker
    checkpoints/step-N/   complete only when COMPLETE is written last
    model/            final save_pretrained output (model + tokenizer)
    metrics.json      final test-split evaluation
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import signal
import socket
import time
from pathlib import Path
from typing import Any, Iterator

from tunedeck.core.errors import RunError
from tunedeck.core.fsutil import atomic_write_json, read_json
from tunedeck.core.runs.protocol import (ACTIVE_STATES, BEGIN_EVENTS, CONTROL_ACTIONS,
                                         FINAL_STATES, state_after_event)

HEARTBEAT_S = 2.0
STALE_AFTER_S = 30.0  # a heartbeat older than this (many intervals) means the worker is gone


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def id(self) -> str:
        return self.path.name

    profile_path = property(lambda self: self.path / "profile.toml")
    events_path = property(lambda self: self.path / "events.jsonl")
    status_path = property(lambda self: self.path / "status.json")
    log_path = property(lambda self: self.path / "worker.log")
    lock_path = property(lambda self: self.path / "run.lock")
    control_dir = property(lambda self: self.path / "control")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    model_dir = property(lambda self: self.path / "model")
    metrics_path = property(lambda self: self.path / "metrics.json")

    def read_status(self) -> dict[str, Any]:
        st = read_json(self.status_path)
        return st if isinstance(st, dict) else {}

    def write_status(self, **fields: Any) -> dict[str, Any]:
        st = self.read_status()
        st.update(fields)
        st["updated"] = time.time()
        atomic_write_json(self.status_path, st)
        return st

    # --- liveness ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def launch_lock(self) -> Iterator[None]:
        """Serialises `resume` commands on this run from the state check until their worker
        holds run.lock: two resumes typed at once start one worker, the other is told."""
        fd = os.open(self.path / ".launch.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def worker_alive(self, status: dict[str, Any] | None = None) -> bool | None:
        """True/False when we can tell (flock on this host), None when we cannot."""
        st = self.read_status() if status is None else status
        if st.get("host") not in (None, socket.gethostname()):
            return None
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def effective_state(self, now: float | None = None,
                        status: dict[str, Any] | None = None) -> tuple[str, str]:
        """(state, reason). A run whose worker died without saying so is 'failed', never running.
        ``status``: an already-read status.json, so a listing reads each file once."""
        st = self.read_status() if status is None else status
        if "state" not in st:  # status.json missing, truncated or garbage
            ended = self.ended_by_events()
            if ended is not None:
                return ended, "status.json is unreadable; the state comes from the event log"
            if self.worker_alive(st):
                return "running", "status.json is unreadable (the worker rewrites it shortly)"
            return ("failed" if self.events_path.exists() else "starting"), (
                "status.json is unreadable and the event log shows no end" if self.events_path.exists() else "")
        state = st["state"]
        if state not in ACTIVE_STATES:
            return state, st.get("message", "")
        now = time.time() if now is None else now
        alive = self.worker_alive(st)
        beat = float(st.get("heartbeat", st.get("updated", 0)) or 0)
        if alive is False:
            # Give a just-launched worker a moment to take its lock.
            if state == "starting" and now - beat < 15:
                return state, ""
            tail = self.last_log_lines(3)
            return "failed", ("worker exited without reporting (killed?); see worker.log"
                              + (f"; last log lines: {' | '.join(tail)}" if tail else ""))
        if beat and now - beat > STALE_AFTER_S:
            return "failed", f"heartbeat stale for {now - beat:.0f}s (worker hung or gone)"
        return state, ""

    def ended_by_events(self) -> str | None:
        """The end state the event log records (protocol.END_EVENT_STATES), or None
        when its newest start/resume has no end yet. Reads only the log's tail."""
        try:
            with open(self.events_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 65536))
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return None
        for line in reversed(lines):
            try:
                kind = json.loads(line).get("type")
            except (ValueError, AttributeError):
                continue
            ended = state_after_event(kind) if isinstance(kind, str) else None
            if ended is not None:
                return ended
            if kind in BEGIN_EVENTS:
                return None
        return None

    def last_log_lines(self, n: int = 3) -> list[str]:
        """The last ``n`` non-empty lines of worker.log (read from its tail only)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                tail = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        lines = [ln.strip()[:200] for ln in tail.splitlines() if ln.strip()]
        return lines[-n:]

    # --- control ---------------------------------------------------------------------------

    def request(self, action: str) -> Path:
        if action not in CONTROL_ACTIONS:
            raise ValueError(action)
        self.control_dir.mkdir(exist_ok=True)
        p = self.control_dir / f"{time.time_ns()}-{action}"
        p.write_text(action, encoding="utf-8")
        return p

    def take_requests(self) -> list[str]:
        """Worker side: return and delete pending control requests, oldest first."""
        try:
            names = sorted(os.listdir(self.control_dir))
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            try:
                os.unlink(self.control_dir / n)
            except FileNotFoundError:
                continue
            action = n.split("-", 1)[-1]
            if action in CONTROL_ACTIONS:
                out.append(action)
        return out

    def signal_worker(self, sig: int = signal.SIGTERM) -> bool:
        st = self.read_status()
        pid = st.get("pid")
        if not pid or st.get("host") != socket.gethostname() or not self.worker_alive():
            return False
        try:
            os.kill(int(pid), sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False


class RunLock:
    """Exclusive flock on run.lock, held by the worker for its lifetime."""

    def __init__(self, run: RunDir):
        self.run = run
        self.fd: int | None = None

    def acquire(self, wait_s: float = 3.0) -> None:
        fd = os.open(self.run.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise RunError(
                        f"run {self.run.id} is already being trained by another worker "
                        f"(pid {self.run.read_status().get('pid')}); stop it first"
                    ) from None
                time.sleep(0.05)  # a reader probing the lock holds it for microseconds
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


# --- creating, finding ------------------------------------------------------------

def new_run_id(name: str) -> str:
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def create_run(runs_dir: Path, name: str, profile_text: str, task: str | None = None) -> RunDir:
    """Make a fresh run directory holding the frozen profile (written atomically). ``task`` goes
    into the first status, so a listing shows it while the worker is still starting."""
    from tunedeck.core.fsutil import atomic_write_text

    if not _SAFE_NAME.match(name) or ".." in name:
        # The profile schema already refuses such names; this guards every other caller.
        raise RunError(f"run name {name!r}: use letters, digits, '.', '_' or '-' (no '/', no '..')")
    # Absolute: the detached worker, events and checkpoint paths must not depend on a cwd.
    runs_dir = runs_dir.resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(10):
        path = runs_dir / new_run_id(name)
        try:
            path.mkdir()
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover
        raise RunError(f"could not create a run directory under {runs_dir}")
    run = RunDir(path)
    atomic_write_text(run.profile_path, profile_text)
    run.write_status(state="starting", heartbeat=time.time(), created=time.time(), step=0,
                     name=name, task=task)
    return run


def find_run(runs_dir: Path, ref: str) -> RunDir:
    """A run by id, unique id prefix, or explicit path to its directory.

    An id or prefix is looked up only among the real directories directly inside ``runs_dir``:
    it never resolves outside it. A ref with a path separator or a leading '.' is a path the
    user typed, accepted only when it is a run directory itself (not a symlink to one).
    """
    p = Path(ref)
    if os.sep in ref or ref.startswith(".") or (os.altsep and os.altsep in ref):
        if p.is_symlink():
            raise RunError(f"{ref}: is a symbolic link; pass the run directory itself")
        if p.is_dir() and (p / "profile.toml").is_file() and (p / "status.json").is_file():
            return RunDir(p.resolve())
        raise RunError(f"{ref}: not a run directory (no profile.toml/status.json)")
    if not runs_dir.is_dir():
        raise RunError(f"no runs directory at {runs_dir}; start a run first or pass --runs-dir")
    # By id or prefix only real directories directly inside runs_dir count: a symlink planted
    # there (or a name with '/', '..') never leads outside it.
    names = [d.name for d in runs_dir.iterdir()
             if not d.is_symlink() and d.is_dir() and (d / "profile.toml").is_file()]
    # Absolute: a resumed worker writes these paths into events and status (as `start` does).
    if ref in names:
        return RunDir((runs_dir / ref).resolve())
    hits = [n for n in names if n.startswith(ref)]
    if len(hits) == 1:
        return RunDir((runs_dir / hits[0]).resolve())
    if not hits:
        raise RunError(f"no run {ref!r} in {runs_dir}; 'tunedeck runs' lists them")
    raise RunError(f"{ref!r} matches {len(hits)} runs ({', '.join(sorted(hits)[:5])}); be more specific")


__all__ = ["ACTIVE_STATES", "FINAL_STATES", "HEARTBEAT_S", "RunDir", "RunLock", "create_run",
           "find_run", "new_run_id"]
