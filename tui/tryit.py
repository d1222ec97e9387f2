"""The try-it box's helper process: ``tunedeck serve-predict RUN`` loads the run's model once and
answers one JSON line per JSON line. The model never loads in the TUI process (no torch here);
this client starts the helper, sends texts, reads answers with a timeout, and stops it.
"""

from __future__ import annotations

import json
import queue
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from tunedeck.core.errors import RunError
from tunedeck.tui.services import _cli_env, cli_command

READY_TIMEOUT_S = 180.0  # loading a large model from disk takes a while
ANSWER_TIMEOUT_S = 120.0


class TryItClient:
    """One ``serve-predict`` helper for one run. Not thread-safe: one question at a time."""

    def __init__(self, run_path: Path, command: list[str] | None = None) -> None:
        self.run_path = Path(run_path)
        self.command = command or cli_command("serve-predict", str(self.run_path))
        self.proc: subprocess.Popen[str] | None = None
        self.task: str | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        # stderr to a file, not a pipe: a chatty library must never block the helper.
        self._stderr: IO[str] | None = None

    def start(self, timeout: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """Start the helper and wait for its ready line; a RunError says why it did not come up."""
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8")
        try:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr, text=True, bufsize=1,
                                         env=_cli_env(), start_new_session=True)
        except OSError as e:
            raise RunError(f"cannot start the prediction helper: {e}") from None
        threading.Thread(target=self._read_lines, daemon=True, name="tryit-reader").start()
        ready = self._next(timeout, "load the model")
        if not ready.get("ready"):
            self.stop()
            raise RunError(str(ready.get("error") or f"unexpected first line: {ready}"))
        self.task = str(ready.get("task"))
        return ready

    def ask(self, text: str, timeout: float = ANSWER_TIMEOUT_S) -> dict[str, Any]:
        """One answer: {"label", "probability", "probabilities"}, {"generation"} or {"error"}."""
        if self.proc is None or self.proc.poll() is not None:
            raise RunError("the prediction helper is not running; open the try-it box again")
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"text": text}) + "\n")
            self.proc.stdin.flush()
        except OSError:
            raise RunError(f"the prediction helper has exited{self._stderr_tail()}") from None
        return self._next(timeout, "answer")

    def stop(self) -> None:
        """Close its stdin (it exits at end of input), then make sure it is gone."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=5)
        if self._stderr:
            self._stderr.close()
            self._stderr = None

    def _read_lines(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            self._lines.put(line)
        self._lines.put(None)  # end of output: the helper exited

    def _next(self, timeout: float, doing: str) -> dict[str, Any]:
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise RunError(f"the prediction helper did not {doing} within {timeout:.0f}s") from None
            if line is None:
                raise RunError(f"the prediction helper has exited{self._stderr_tail()}")
            try:
                reply = json.loads(line)
            except ValueError:
                continue  # not an answer (a library printing on stdout): skip it
            if isinstance(reply, dict):
                return reply

    def _stderr_tail(self) -> str:
        if not self._stderr:
            return ""
        try:
            self._stderr.seek(0)
            lines = [ln for ln in self._stderr.read().splitlines() if ln.strip()]
        except (OSError, ValueError):
            return ""
        return (": " + lines[-1]) if lines else ""
