"""Fault injection for tests: off unless the environment asks.

Used by tests/test_reliability_*.py, tests/test_stop_phases.py and scripts/reliability.py to put
a real SIGKILL, signal, disk-full error, NaN or delay at an exact point of a real run.

  TUNEDECK_TEST_KILL_AT_STEP=N          SIGKILL the worker right after optimizer step N
  TUNEDECK_TEST_HOOKS="WHERE=ACTION;..."
      WHERE:  step:N (right after optimizer step N) | step:* (every step, SLEEP only)
              | ckpt:LABEL or ckpt:LABEL@N (a write boundary of checkpoint.save_checkpoint /
              rotate, see checkpoint.BOUNDARIES) | eval or eval@N (start of a validation
              evaluation) | eval-batch (before each validation batch) | prepare (start of data
              preparation) | tokenize (start of tokenization) | load (start of model loading)
      ACTION: KILL | TERM | INT | HUP (that signal to the worker itself) | ENOSPC (raise
              OSError(ENOSPC)) | NAN (step:N only: the loss of step N is made NaN)
              | SLEEPs (sleep s seconds there)
  TUNEDECK_TEST_MARKS=DIR               a hook that fires touches DIR/WHERE first, so a test
                                        knows the worker has reached that point
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path
from typing import Any

_SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT,
            "HUP": signal.SIGHUP}


class FaultHooks:
    def __init__(self, spec: dict[str, str] | None = None, marks: Path | None = None):
        self.spec = dict(spec or {})
        self.marks = marks

    @classmethod
    def from_env(cls, env: Any = None) -> "FaultHooks":
        env = os.environ if env is None else env
        spec: dict[str, str] = {}
        kill = env.get("TUNEDECK_TEST_KILL_AT_STEP", "").strip()
        if kill:
            spec[f"step:{int(kill)}"] = "KILL"
        for item in env.get("TUNEDECK_TEST_HOOKS", "").split(";"):
            if "=" in item:
                where, action = item.split("=", 1)
                spec[where.strip()] = action.strip().upper()
        marks = env.get("TUNEDECK_TEST_MARKS", "").strip()
        return cls(spec, Path(marks) if marks else None)

    def __bool__(self) -> bool:
        return bool(self.spec)

    def nan_at(self, step: int) -> bool:
        return self.spec.get(f"step:{step}") == "NAN"

    def checkpoint_boundary(self, step: int):
        """The ``boundary`` callback for checkpoint.save_checkpoint/rotate (None when off)."""
        if not self.spec:
            return None
        return lambda label: self.fire(f"ckpt:{label}", step)

    def fire(self, where: str, step: int | None = None) -> None:
        if not self.spec:
            return
        action = self.spec.get(f"{where}@{step}") if step is not None else None
        action = action or self.spec.get(where)
        every = self.spec.get(where.split(":")[0] + ":*", "")
        if every.startswith("SLEEP"):  # step:*=SLEEP0.05 slows every step (lifecycle tests)
            time.sleep(float(every[5:] or 0.05))
        if not action or action == "NAN":
            return
        if self.marks is not None:
            self.marks.mkdir(parents=True, exist_ok=True)
            (self.marks / where.replace(":", "_")).touch()
        if action.startswith("SLEEP"):
            time.sleep(float(action[5:] or 0.05))
            return
        if action == "ENOSPC":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.kill(os.getpid(), _SIGNALS[action])
        if action == "KILL":  # pragma: no cover - never returns
            time.sleep(60)
