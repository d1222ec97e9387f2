"""Labelling a data file by keyboard: the session behind the TUI's annotation screen.

The original file is never written. Labels go to a work file beside it (``NAME.labels.csv``, or
``NAME.labels.jsonl`` for JSON sources): every row of the session that has a label (given here,
else the file's own), with the file's columns. A small state file (``NAME.labels.state.json``)
holds what resuming needs: the sampled rows, the labels given, the skipped rows and the
position. Both are written atomically after every few labels and on quit, so a crash loses at
most those few. Torch-free (pyarrow through ``tunedeck.core.data.reader``): the TUI imports it.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunedeck.core.errors import DataError
from tunedeck.core.fsutil import atomic_write_json, atomic_write_text, read_json

SAVE_EVERY = 5  # labels (or undos) between automatic saves
STATE_VERSION = 1
JSON_FORMATS = ("json", "jsonl")


class NoLabelsError(DataError):
    """Neither the file nor the caller names any label (the screen then asks for them)."""


def work_paths(source: Path, fmt: str) -> tuple[Path, Path]:
    """(labels file, state file) beside ``source``."""
    ext = ".jsonl" if fmt in JSON_FORMATS else ".csv"
    base = source.name[: -len(source.suffix)] if source.suffix else source.name
    return source.with_name(f"{base}.labels{ext}"), source.with_name(f"{base}.labels.state.json")


def _label_text(v: Any) -> str | None:
    """A cell as a label: None for missing or blank (an unlabelled row)."""
    if v is None:
        return None
    s = str(v).strip()
    return s or None


@dataclass
class _Step:
    """One undoable change: where the cursor was, which row changed and its label before."""
    position: int
    row: int | None  # table index; None for a skip
    before: str | None = None
    skipped: bool = False


@dataclass
class Annotation:
    """A labelling session over one data file (see the module docstring)."""

    source: Path
    format: str
    table: Any  # pyarrow.Table of the source, as the data layer reads it
    records: list[int]  # records[i]: where table row i sits in the file (line / item / row)
    unit: str
    digest: str
    text_column: str
    label_column: str
    labels: list[str]
    rows: list[int]  # the session's table indices, ascending (all rows, or a sample)
    sample: int | None = None
    seed: int = 0
    given: dict[int, str] = field(default_factory=dict)  # table index -> label given here
    skipped: set[int] = field(default_factory=set)
    position: int = 0  # index into rows
    unlabeled_only: bool = False
    this_session: int = 0
    resumed: bool = False
    _undo: list[_Step] = field(default_factory=list)
    _unsaved: int = 0
    _originals: list[str | None] | None = None

    # --- reading ---------------------------------------------------------------------------

    @property
    def work_path(self) -> Path:
        return work_paths(self.source, self.format)[0]

    @property
    def state_path(self) -> Path:
        return work_paths(self.source, self.format)[1]

    def original(self, row: int) -> str | None:
        """The label the file itself gives the row (None: none, or blank)."""
        if self._originals is None:  # once: reading cells one by one is slow on big files
            names = self.table.column_names
            self._originals = ([_label_text(v) for v in self.table.column(self.label_column).to_pylist()]
                               if self.label_column in names else [None] * self.table.num_rows)
        return self._originals[row]

    def label_of(self, row: int) -> str | None:
        """The row's label: given here, else the file's own."""
        return self.given.get(row, self.original(row))

    @property
    def row(self) -> int:
        """The table index of the current row."""
        return self.rows[self.position]

    def current(self) -> dict[str, Any]:
        """What the screen shows for the current row."""
        row = self.row
        values = {k: v for k, v in self.table.slice(row, 1).to_pylist()[0].items()}
        return {"position": self.position, "row": row, "record": self.records[row], "unit": self.unit,
                "text": values.get(self.text_column), "label": self.label_of(row),
                "original": self.original(row), "skipped": row in self.skipped,
                "others": {k: v for k, v in values.items()
                           if k not in (self.text_column, self.label_column)}}

    def progress(self) -> dict[str, int]:
        labelled = sum(1 for r in self.rows if self.label_of(r) is not None)
        return {"labelled": labelled, "total": len(self.rows), "this_session": self.this_session,
                "skipped": len(self.skipped), "given": len(self.given), "position": self.position}

    # --- moving ----------------------------------------------------------------------------

    def _shown(self, pos: int) -> bool:
        return not self.unlabeled_only or self.label_of(self.rows[pos]) is None

    def _step(self, direction: int) -> bool:
        """Move to the next (or previous) shown row; False (and no move) when there is none."""
        pos = self.position + direction
        while 0 <= pos < len(self.rows):
            if self._shown(pos):
                self.position = pos
                return True
            pos += direction
        return False

    def next(self) -> bool:
        return self._step(1)

    def prev(self) -> bool:
        return self._step(-1)

    def toggle_unlabeled_only(self) -> bool:
        """Show only unlabelled rows (or all again); moves off a labelled row. Returns whether
        there is an unlabelled row to show."""
        self.unlabeled_only = not self.unlabeled_only
        if self._shown(self.position):
            return True
        return self.next() or self.prev()

    def goto_record(self, record: int) -> None:
        """Put the cursor on the row at ``record`` in the file (a line, item or row number, as
        error analysis gives it); a sampled session takes the row in if it was not drawn."""
        try:
            row = self.records.index(int(record))
        except ValueError:
            raise DataError(f"{self.source}: no row at {self.unit} {record}; the file may have "
                            "changed since it was evaluated - evaluate the run again") from None
        i = bisect.bisect_left(self.rows, row)
        if i == len(self.rows) or self.rows[i] != row:
            self.rows.insert(i, row)
        self.position = i

    # --- labelling -------------------------------------------------------------------------

    def set_label(self, label: str) -> None:
        """Label the current row and move on (to the next unlabelled row under the filter)."""
        if label not in self.labels:
            raise DataError(f"{label!r} is not one of the labels ({', '.join(self.labels)})")
        row = self.row
        self._undo.append(_Step(self.position, row, self.given.get(row), row in self.skipped))
        self.given[row] = label
        self.skipped.discard(row)
        self.this_session += 1
        self.next()
        self._changed()  # after the move: a resumed session starts on the row after this one

    def label_number(self, k: int) -> str | None:
        """Label with the ``k``-th label (1-based, as the number keys); None if there is none."""
        if not 1 <= k <= len(self.labels):
            return None
        label = self.labels[k - 1]
        self.set_label(label)
        return label

    def skip(self) -> bool:
        """Leave the current row unlabelled for now and move on."""
        row = self.row
        self._undo.append(_Step(self.position, None, skipped=row in self.skipped))
        self.skipped.add(row)
        return self.next()

    def undo(self) -> bool:
        """Take back the last label or skip (and go back to its row); False if there is none."""
        if not self._undo:
            return False
        step = self._undo.pop()
        self.position = step.position
        row = self.row
        if step.row is None:
            if not step.skipped:
                self.skipped.discard(row)
            return True
        if step.before is None:
            self.given.pop(row, None)
        else:
            self.given[row] = step.before
        if step.skipped:
            self.skipped.add(row)
        self.this_session -= 1
        self._changed()
        return True

    def _changed(self) -> None:
        self._unsaved += 1
        if self._unsaved >= SAVE_EVERY:
            self.save()

    @property
    def unsaved(self) -> int:
        return self._unsaved

    # --- saving ----------------------------------------------------------------------------

    def save(self) -> Path:
        """Write the labels file, then the state (both atomically); returns the labels file."""
        try:
            atomic_write_text(self.work_path, self._labelled_text())
            atomic_write_json(self.state_path, self._state())
            # The temporary files are private (0600); a labelled dataset is shared like its source.
            for p in (self.work_path, self.state_path):
                os.chmod(p, 0o644)
        except OSError as e:
            raise DataError(f"{self.work_path}: cannot be written ({e.strerror}); copy "
                            f"{self.source.name} to a folder you can write to and label it there") from None
        self._unsaved = 0
        return self.work_path

    def _labelled_rows(self) -> list[dict[str, Any]]:
        names = self.table.column_names
        out_names = names if self.label_column in names else [*names, self.label_column]
        keep = [r for r in self.rows if self.label_of(r) is not None]
        rows = []
        for r, values in zip(keep, self.table.take(keep).to_pylist()):
            values[self.label_column] = self._typed(self.label_of(r))  # type: ignore[arg-type]
            rows.append({k: values.get(k) for k in out_names})
        return rows

    def _typed(self, label: str) -> Any:
        """A label as the file holds them: an integer in a JSON file of integer labels."""
        if self.format in JSON_FORMATS and self.label_column in self.table.column_names:
            import pyarrow as pa

            if pa.types.is_integer(self.table.schema.field(self.label_column).type):
                try:
                    return int(label)
                except ValueError:
                    pass
        return label

    def _labelled_text(self) -> str:
        rows = self._labelled_rows()
        if self.format in JSON_FORMATS:
            return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        names = self.table.column_names
        header = names if self.label_column in names else [*names, self.label_column]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        for r in rows:
            writer.writerow(["" if r[k] is None else r[k] for k in header])
        return buf.getvalue()

    def _state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "source": str(self.source.resolve()), "digest": self.digest,
                "text_column": self.text_column, "label_column": self.label_column,
                "labels": self.labels, "sample": self.sample, "seed": self.seed,
                "rows": self.rows if self.sample is not None else None,
                "given": {str(r): v for r, v in sorted(self.given.items())},
                "skipped": sorted(self.skipped), "position_row": self.row,
                "unlabeled_only": self.unlabeled_only}


# --- opening ---------------------------------------------------------------------------------

def file_labels(table: Any, label_column: str) -> list[str]:
    """The distinct non-blank labels a file already holds, in natural order (2 before 10, and
    class2 before class10: the number keys then follow the names)."""
    if label_column not in table.column_names:
        return []
    seen = {t for t in (_label_text(v) for v in table.column(label_column).to_pylist()) if t}
    return sorted(seen, key=lambda s: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)])


def sample_rows(n_rows: int, sample: int | None, seed: int) -> list[int]:
    """All row indices, or ``sample`` of them drawn with ``seed`` (in file order)."""
    if sample is None or sample >= n_rows:
        return list(range(n_rows))
    return sorted(random.Random(seed).sample(range(n_rows), sample))


def open_annotation(source: str | Path, *, text_column: str | None = None,
                    label_column: str | None = None, labels: list[str] | None = None,
                    sample: int | None = None, seed: int = 0, encoding: str | None = None
                    ) -> Annotation:
    """Open (or resume, when a state file is beside it) a labelling session over ``source``.

    Labels: ``labels`` if given, else the saved session's, else those the file already holds.
    A resumed session keeps its own columns, sample and labels (a new ``labels`` list may add
    to them)."""
    from tunedeck.core.data.reader import read_source
    from tunedeck.core.data.table_stats import guess_columns

    path = Path(source)
    loaded = read_source(path, encoding=encoding)
    if loaded.table.num_rows == 0:
        raise DataError(f"{path}: has no rows to label")
    _, state_path = work_paths(path, loaded.format)
    state = read_json(state_path) if state_path.exists() else None
    if state_path.exists() and not isinstance(state, dict):
        raise DataError(f"{state_path}: is not a labelling state file; move it away to start afresh")
    if state is not None:
        text_column, label_column = state["text_column"], state["label_column"]
    text, label = guess_columns(loaded.table, text_column, label_column)
    if text is None:
        raise DataError(f"{path}: no text column found ({', '.join(loaded.table.column_names)}); "
                        "name the column holding the text")
    label = label_column or label or "label"
    session = Annotation(path, loaded.format, loaded.table, [int(r) for r in loaded.rows], loaded.unit,
                         loaded.digest, text, label, [], [], sample, seed)
    if state is not None:
        _restore(session, state, state_path)
    else:
        session.rows = sample_rows(loaded.table.num_rows, sample, seed)
    session.labels = _merge_labels(session.labels, labels or [], file_labels(loaded.table, label))
    if not session.labels:
        raise NoLabelsError(f"{path}: no labels to choose from (column {label!r} holds none); give the "
                        "labels, comma-separated (e.g. spam,ham)")
    return session


def _merge_labels(saved: list[str], given: list[str], in_file: list[str]) -> list[str]:
    """The saved list, then the given ones, then (if neither) the file's: order kept, no repeats."""
    out: list[str] = []
    for lab in [*saved, *given] or in_file:
        lab = lab.strip()
        if lab and lab not in out:
            out.append(lab)
    return out


def _restore(session: Annotation, state: dict[str, Any], state_path: Path) -> None:
    """Put a saved session back: its rows, labels given, skips and position."""
    if state.get("version") != STATE_VERSION:
        raise DataError(f"{state_path}: written by another tunedeck version; move it away to start afresh")
    if state.get("digest") != session.digest:
        raise DataError(f"{session.source}: changed since the labels in {state_path.parent / session.work_path.name} "
                        f"were saved; restore the file, or move {state_path.name} away to start afresh")
    n = session.table.num_rows
    session.sample, session.seed = state.get("sample"), int(state.get("seed") or 0)
    session.rows = [int(r) for r in state["rows"]] if state.get("rows") is not None else list(range(n))
    session.given = {int(r): str(v) for r, v in (state.get("given") or {}).items()}
    session.skipped = {int(r) for r in state.get("skipped") or []}
    session.labels = [str(v) for v in state.get("labels") or []]
    session.unlabeled_only = bool(state.get("unlabeled_only"))
    at = int(state.get("position_row") or 0)
    session.position = min(bisect.bisect_left(session.rows, at), len(session.rows) - 1)
    session.resumed = True
