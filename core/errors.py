"""Errors a user can cause. Each is one clear message: where (file/line/field) and what to do.

The CLI turns a ``UserError`` into that message on stderr and exit code 2; the TUI shows it in
an error panel. Anything else escaping is a bug in tunedeck.
"""

from __future__ import annotations

from dataclasses import dataclass


class UserError(Exception):
    """An error the user can fix. ``str(err)`` is the whole message."""

    exit_code = 2


@dataclass
class Problem:
    """One problem found in a file: where it is and how to fix it."""

    where: str  # "profile.toml:12 training.learning_rate" or "data.csv:40"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class ProfileError(UserError):
    """A profile (TOML or --set) is invalid. Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem] | str, path: str | None = None):
        if isinstance(problems, str):
            problems = [Problem(path or "profile", problems)]
        self.problems = problems
        self.path = path
        head = f"invalid profile {path}" if path else "invalid profile"
        lines = [f"{head}:"] + [f"  {p}" for p in problems]
        super().__init__("\n".join(lines) if len(problems) > 1 else str(problems[0]))


class DataError(UserError):
    """A data file is missing, empty or malformed; the message names the file and line."""


class ModelError(UserError):
    """A model cannot be found or loaded (e.g. not cached while offline)."""


class RunError(UserError):
    """A run cannot be found, resumed or controlled in the asked way."""
