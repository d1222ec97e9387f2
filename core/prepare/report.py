"""What an operation did, in counts: the one object the CLI prints (``--json``) and the TUI shows.

``preview`` holds the first ``PREVIEW_ROWS`` rows the operation changed or dropped, with the row as
it was and as it became (``after`` is None for a dropped row), so a user can judge the rules
before trusting them on the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PREVIEW_ROWS = 20


@dataclass
class OpReport:
    op: str
    input: str
    output: str | None = None
    rows_in: int = 0
    rows_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    changed: int = 0
    preview: list[dict[str, Any]] = field(default_factory=list)
    recipe: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # op-specific: conflicts, splits, ...

    def drop(self, reason: str, n: int) -> None:
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + int(n)

    def add_preview(self, row: int, before: dict[str, Any], after: dict[str, Any] | None,
                    reason: str) -> None:
        if len(self.preview) < PREVIEW_ROWS:
            self.preview.append({"row": int(row), "before": before, "after": after,
                                 "reason": reason})

    @property
    def preview_full(self) -> bool:
        return len(self.preview) >= PREVIEW_ROWS

    def as_json(self) -> dict[str, Any]:
        out = {"op": self.op, "input": self.input, "output": self.output,
               "rows_in": self.rows_in, "rows_out": self.rows_out, "dropped": dict(self.dropped),
               "changed": self.changed, "preview": self.preview, "recipe": self.recipe}
        out.update(self.extra)
        return out
