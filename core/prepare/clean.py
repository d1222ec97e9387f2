"""``tunedeck data clean``: text rules, empty rows, duplicates, near-duplicates, label conflicts.

Streams: each batch is cleaned, checked against the hashes of the rows kept so far and written
before the next is read (``streaming``, ``dedup``, ``minhash``). The text rules (``textops``)
apply to the text columns; the label column is only stripped of surrounding whitespace; other
columns ride along untouched. A duplicate is a row whose text columns and label equal an earlier
row's after cleaning ("exact") or after ``normalised_key`` ("normalized": case, punctuation and
spacing ignored); the first stays. Rows with the same normalised text but different labels are
kept and reported as conflicts (a labelling question only the user can answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tunedeck.core.data.table_stats import guess_columns
from tunedeck.core.errors import DataError
from tunedeck.core.prepare.dedup import (HashIndex, combine, hash_strings, label_conflicts,
                                         seen_before)
from tunedeck.core.prepare.minhash import NearDupIndex
from tunedeck.core.prepare.report import OpReport
from tunedeck.core.prepare.runner import run_streaming
from tunedeck.core.prepare.streaming import Progress
from tunedeck.core.prepare.textops import TextRules, apply_rules, as_text, normalised_key

CONFLICT_EXAMPLES = 5


@dataclass(frozen=True)
class CleanOptions:
    rules: TextRules = field(default_factory=TextRules)
    text_columns: tuple[str, ...] = ()  # empty: guessed ("text", else the longest text column)
    label_column: str | None = None  # None: guessed ("label" and similar); "" = no label
    dedup: Literal["none", "exact", "normalized"] = "exact"
    near_dup: float | None = None  # MinHash Jaccard threshold, e.g. 0.8
    drop_empty: bool = True

    def options(self) -> dict[str, Any]:
        return {**self.rules.options(), "text_columns": list(self.text_columns),
                "label_column": self.label_column, "dedup": self.dedup,
                "near_dup": self.near_dup, "drop_empty": self.drop_empty}


class Cleaner:
    """Cleans batch after batch, remembering only hashes; counts go into ``report``."""

    def __init__(self, options: CleanOptions, report: OpReport):
        self.o = options
        self.report = report
        self.texts: list[str] = []
        self.label: str | None = None
        self._dups = HashIndex()
        self._firsts = HashIndex()
        self._near = NearDupIndex(options.near_dup) if options.near_dup else None
        self._label_names: dict[int, str] = {}
        self._conflict_texts: set[int] = set()
        self._conflict_rows = 0
        self._examples: list[dict[str, Any]] = []
        self._row = 0

    def columns(self, batch: pa.RecordBatch) -> None:
        table = pa.Table.from_batches([batch])
        names = batch.schema.names
        for c in (*self.o.text_columns, self.o.label_column or ""):
            if c and c not in names:
                raise DataError(f"{self.report.input}: has no column {c!r}; its columns are: "
                                f"{', '.join(names)}")
        guess_t, guess_l = guess_columns(table, None, None)
        self.texts = list(self.o.text_columns) or ([guess_t] if guess_t else [])
        if not self.texts:
            raise DataError(f"{self.report.input}: no text column found; name it with --text")
        if self.o.label_column is None:
            self.label = guess_l if guess_l not in self.texts else None
        else:
            self.label = self.o.label_column or None

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if not self.texts:
            self.columns(batch)
        before = {c: as_text(batch.column(c)) for c in self.cleaned_columns}
        after = {c: apply_rules(v, self.o.rules) for c, v in before.items() if c in self.texts}
        if self.label:
            after[self.label] = pc.utf8_trim_whitespace(before[self.label])
        n = batch.num_rows
        changed = np.zeros(n, dtype=bool)
        for c in after:
            same = pc.equal(after[c], before[c]).fill_null(True)
            changed |= ~same.to_numpy(zero_copy_only=False)
        empty = np.zeros(n, dtype=bool)
        if self.o.drop_empty:
            for c in after:
                e = pc.or_kleene(pc.is_null(after[c]), pc.equal(after[c], "")).fill_null(True)
                empty |= e.to_numpy(zero_copy_only=False)
        reasons = self._duplicates(after, empty)
        out = _replace_columns(batch, after)
        keep = reasons == ""
        self._account(batch, out, changed, reasons)
        self._row += n
        return out.filter(pa.array(keep))

    @property
    def cleaned_columns(self) -> list[str]:
        return self.texts + ([self.label] if self.label else [])

    def _duplicates(self, after: dict[str, Any], empty: np.ndarray) -> np.ndarray:
        """The drop reason of each row ("" = kept)."""
        n = empty.size
        label_h = hash_strings(after[self.label]) if self.label else np.zeros(n, dtype=np.uint64)
        norm = {c: normalised_key(after[c]) for c in self.texts}
        norm_h = combine(*[hash_strings(norm[c]) for c in self.texts])
        reasons = np.where(empty, "empty", "").astype(object)
        alive = ~empty
        if self.o.dedup != "none":
            text_h = norm_h if self.o.dedup == "normalized" else \
                combine(*[hash_strings(after[c]) for c in self.texts])
            dup = seen_before(self._dups, combine(text_h, label_h), alive)
            reasons[dup] = "duplicate"
            alive &= ~dup
        if self._near is not None:
            joined = norm[self.texts[0]] if len(self.texts) == 1 else \
                pc.binary_join_element_wise(*[norm[c] for c in self.texts], " ")
            if isinstance(joined, pa.ChunkedArray):
                joined = joined.combine_chunks()
            near = self._near.near_duplicates(joined, label_h, alive)
            reasons[near] = "near_duplicate"
            alive &= ~near
        if self.label:
            self._conflicts(after, norm_h, label_h, alive)
        return reasons

    def _conflicts(self, after: dict[str, Any], norm_h: np.ndarray, label_h: np.ndarray,
                   kept: np.ndarray) -> None:
        labels = after[self.label]
        kept_idx = np.flatnonzero(kept)
        for h, j in zip(*np.unique(label_h[kept_idx], return_index=True)):
            if len(self._label_names) < 10_000:
                self._label_names.setdefault(int(h), labels[int(kept_idx[j])].as_py())
        conflict, first = label_conflicts(self._firsts, norm_h, label_h, kept)
        rows = np.flatnonzero(conflict)
        self._conflict_rows += rows.size
        for i in rows:
            new = int(norm_h[i]) not in self._conflict_texts
            self._conflict_texts.add(int(norm_h[i]))
            if new and len(self._examples) < CONFLICT_EXAMPLES:
                self._examples.append({
                    "row": self._row + int(i) + 1,
                    "text": " | ".join(str(after[c][int(i)].as_py()) for c in self.texts),
                    "labels": [self._label_names.get(int(first[i]), "?"), labels[int(i)].as_py()]})

    def _account(self, batch: pa.RecordBatch, out: pa.RecordBatch, changed: np.ndarray,
                 reasons: np.ndarray) -> None:
        r = self.report
        r.rows_in += batch.num_rows
        kept = reasons == ""
        r.rows_out += int(kept.sum())
        r.changed += int((changed & kept).sum())
        for reason in ("empty", "duplicate", "near_duplicate"):
            r.drop(reason, int((reasons == reason).sum()))
        if r.preview_full:
            return
        for i in np.flatnonzero(changed | ~kept)[:20]:
            i = int(i)
            before = batch.slice(i, 1).to_pylist()[0]
            after = out.slice(i, 1).to_pylist()[0] if kept[i] else None
            r.add_preview(self._row + i + 1, before, after, reasons[i] or "changed")

    def finish(self) -> None:
        self.report.extra["columns"] = {"text": self.texts, "label": self.label}
        self.report.extra["conflicts"] = {"texts": len(self._conflict_texts),
                                          "rows": self._conflict_rows,
                                          "examples": self._examples}


def _replace_columns(batch: pa.RecordBatch, cols: dict[str, Any]) -> pa.RecordBatch:
    arrays = []
    for name, col in zip(batch.schema.names, batch.columns):
        new = cols.get(name, col)
        arrays.append(new.combine_chunks() if isinstance(new, pa.ChunkedArray) else new)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def clean_batches(batches: Iterable[pa.RecordBatch], options: CleanOptions,
                  report: OpReport) -> Iterator[pa.RecordBatch]:
    """Cleaned batches of ``batches`` (a generator: counts are final once it is exhausted)."""
    cleaner = Cleaner(options, report)
    for batch in batches:
        yield cleaner.process(batch)
    cleaner.finish()


def clean_file(src: str | Path, out: str | Path | None = None, options: CleanOptions | None = None,
               fmt: str | None = None, dry_run: bool = False,
               progress: Progress | None = None) -> OpReport:
    """Clean ``src`` into ``out`` (default ``NAME.clean.EXT`` beside it) with a recipe."""
    options = options or CleanOptions()
    return run_streaming("clean", Path(src), out, fmt, dry_run, progress,
                         lambda b, r: clean_batches(b, options, r), options.options())
