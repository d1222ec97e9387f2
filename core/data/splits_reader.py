"""Read a profile's data files into clean train/validation/test splits (``read_splits``).

Everything a task adapter needs is settled here, once, with errors that point at the file,
line and profile key: which columns hold the text/labels, what counts as an empty or duplicate
row, the label vocabulary, and how train is split. Downstream code then sees standard column
names only (``text``/``label``, or ``prompt``/``response``) and never the user's spelling.

All row-wise work is vectorised with pyarrow/numpy so that a million-row file prepares in
seconds; Python loops run over columns, files and classes, not rows.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, DatasetInfo, Features, NamedSplit
from datasets.table import InMemoryTable

from tunedeck.core.data.chat import messages_json
from tunedeck.core.data.cleaning import clean_table
from tunedeck.core.data.packing import carve_corpus, corpus_table, packing_on
from tunedeck.core.data.reader import LoadedTable, read_source
from tunedeck.core.data.split import TEST, TRAIN, VALIDATION, assign_splits
from tunedeck.core.errors import DataError
from tunedeck.core.profile.schema import Profile

# Bump when reading/cleaning changes what it produces, so caches keyed on the fingerprint refresh.
SPLITS_VERSION = 3  # 2: delimiter/header sniffing, data.encoding; 3: messages, packed corpora
_INT_LABEL = re.compile(r"^[+-]?\d+$")
SPLITS = ("train", "validation", "test")


@dataclass
class SplitData:
    """The three splits in standard columns, plus what the engine and the user need to know.

    ``train`` has ``text`` + ``label`` (class id, a ``ClassLabel`` with ``label_names``) for
    classification, ``text`` or ``prompt`` + ``response`` for causal LM, ``prompt`` +
    ``response`` for seq2seq; every split also has ``row``, the 1-based line (or record) in the
    source file, for error analysis. ``validation``/``test`` are None when no file was given and
    the split fractions leave them no rows.
    """

    train: Dataset
    validation: Dataset | None
    test: Dataset | None
    label_names: list[str] | None
    stats: dict[str, Any] = field(default_factory=dict)
    columns: tuple[str, ...] = ()  # the standard input columns, e.g. ("prompt", "response")
    fingerprint: str = ""  # changes iff the rows read could change: a key for caches

    @property
    def splits(self) -> dict[str, Dataset]:
        """The splits that exist, by name."""
        out = {"train": self.train, "validation": self.validation, "test": self.test}
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class _Part:
    """One file's rows in standard columns while they are being cleaned."""

    role: str
    src: LoadedTable
    table: pa.Table  # standard columns + "row"
    stats: dict[str, Any]


def read_splits(profile: Profile) -> SplitData:
    """Load, check, clean, dedup, label and split the profile's data.

    Paths must already be absolute (``tunedeck.core.profile.resolve_paths``). Given validation/test
    files win; a split without a file is carved from train with its fraction of
    ``data.split`` (stratified by label for classification, seeded by ``training.seed``).
    ``hf:`` sources and ``[[data.prepare]]`` steps are applied first, to copies
    (``tunedeck.core.prepare.pipeline``); what they did is recorded in ``stats["prepare"]``.
    """
    from tunedeck.core.prepare.pipeline import prepared_profile

    profile, prepared = prepared_profile(profile)
    d = profile.data
    task = profile.task.type
    if not d.train:
        raise DataError("data.train is not set; point it at a data file, e.g. "
                        "sample_data/tickets.csv")
    wanted = _wanted_columns(profile)
    parts, corpus = _read_parts(profile, wanted)

    label_names: list[str] | None = None
    if task == "classification":
        label_names = _label_names(parts["train"], d.label_column)
        for part in parts.values():
            _encode_labels(part, label_names, parts["train"].src)

    carved = [r for r in ("validation", "test") if r not in parts]
    tables = _carve(parts, carved, profile, corpus)

    fingerprint = _fingerprint(profile, parts)
    datasets: dict[str, Dataset | None] = {}
    for role in SPLITS:
        t = tables.get(role)
        datasets[role] = (_to_dataset(t, role, label_names, fingerprint)
                          if t is not None and t.num_rows else None)
    if datasets["train"] is None:  # only reachable with absurd split fractions
        raise DataError(f"{d.train}: no rows left for training after splitting; lower the "
                        "validation/test shares in data.split")

    stats: dict[str, Any] = {
        "files": {r: p.stats for r, p in parts.items()},
        "sizes": {r: (ds.num_rows if ds is not None else 0) for r, ds in datasets.items()},
        "carved_from_train": [r for r in carved if datasets[r] is not None],
    }
    if prepared:
        stats["prepare"] = prepared
    if label_names is not None:
        stats["label_counts"] = {
            r: _label_counts(ds, label_names) for r, ds in datasets.items() if ds is not None
        }
    return SplitData(
        train=datasets["train"],  # type: ignore[arg-type]
        validation=datasets["validation"],
        test=datasets["test"],
        label_names=label_names,
        stats=stats,
        columns=tuple(wanted),
        fingerprint=fingerprint,
    )


def _read_parts(profile: Profile, wanted: dict[str, tuple[str, str]]
                ) -> tuple[dict[str, _Part], bool]:
    """Each given file's rows, cleaned; or, for a packed text corpus (the second value), its
    documents, never cleaned line by line."""
    d = profile.data
    paths = {"train": d.train, "validation": d.validation, "test": d.test}
    parts: dict[str, _Part] = {}
    corpus = False
    for role, path in paths.items():
        if path:
            src = read_source(path, d.format, key=f"data.{role}", encoding=d.encoding)
            if role == "train":
                corpus = list(wanted) == ["text"] and packing_on(profile, src.format)
            part = _standardise(src, role, wanted, profile.task.type)
            parts[role] = _as_corpus(part, profile) if corpus else _clean(part, profile)
    return parts, corpus


def rows_like_training(profile: Profile, src: LoadedTable, role: str,
                       inputs_only: bool = False) -> pa.Table:
    """Another file (evaluation, prediction) in the standard columns + "row", mapped by the
    profile's columns and cleaned the way training reads its files. With ``inputs_only`` only
    the input column is required and no row is dropped (predict answers every row)."""
    wanted = _wanted_columns(profile)
    if inputs_only:
        first = next(iter(wanted))
        wanted = {first: wanted[first]}
    part = _standardise(src, role, wanted, profile.task.type)
    return part.table if inputs_only else _clean(part, profile).table


def _carve(parts: dict[str, _Part], carved: list[str], profile: Profile, corpus: bool = False
           ) -> dict[str, pa.Table | None]:
    """Each split's table: a given file's, or its share of train (``split.assign_splits``; a
    corpus by whole documents or contiguous ranges, ``packing.carve_corpus``)."""
    d = profile.data
    tables: dict[str, pa.Table | None] = {r: p.table for r, p in parts.items()}
    f_val = d.split[1] if "validation" in carved else 0.0
    f_test = d.split[2] if "test" in carved else 0.0
    if corpus and (f_val > 0 or f_test > 0):
        cut = carve_corpus(parts["train"].table, f_val, f_test, profile.training.seed)
        tables.update({r: t for r, t in cut.items() if r == "train" or r in carved})
    elif f_val > 0 or f_test > 0:
        train = parts["train"].table
        labels = (train.column("label").to_numpy() if profile.task.type == "classification"
                  else None)
        codes = assign_splits(labels, train.num_rows, f_val, f_test, profile.training.seed)
        for role, code in (("train", TRAIN), ("validation", VALIDATION), ("test", TEST)):
            if role == "train" or role in carved:
                tables[role] = train.filter(pa.array(codes == code))
    return tables


# --- columns ------------------------------------------------------------------------------

def _wanted_columns(profile: Profile) -> dict[str, tuple[str, str]]:
    """Standard column -> (profile key, column name in the file), by task."""
    d, task = profile.data, profile.task.type
    if task == "classification":
        if d.text_column == d.label_column:
            raise DataError(f"data.text_column and data.label_column both name "
                            f"{d.text_column!r}; the label must be a column of its own")
        return {"text": ("data.text_column", d.text_column),
                "label": ("data.label_column", d.label_column)}
    if d.messages_column and task == "causal-lm":
        return {"messages": ("data.messages_column", d.messages_column)}
    if d.prompt_column and d.response_column:
        if d.prompt_column == d.response_column:
            raise DataError(f"data.prompt_column and data.response_column both name "
                            f"{d.prompt_column!r}; they must be two different columns")
        return {"prompt": ("data.prompt_column", d.prompt_column),
                "response": ("data.response_column", d.response_column)}
    if task == "seq2seq":  # the schema already insists; keep the message if it is bypassed
        raise DataError("task.type 'seq2seq' needs data.prompt_column and data.response_column")
    return {"text": ("data.text_column", d.text_column)}


def _match_column(cols: list[str], want: str) -> str | None:
    """Exact name, else the only case-insensitive match ("label" finds "Label")."""
    if want in cols:
        return want
    folded = [c for c in cols if c.lower() == want.lower()]
    return folded[0] if len(folded) == 1 else None


def _missing_column(src: LoadedTable, key: str, want: str, task: str,
                    unused: list[str]) -> DataError:
    """The error for a column that is not there, with the best suggestion we can make."""
    cols = src.table.column_names
    lower = {c.lower(): c for c in cols}
    close = difflib.get_close_matches(want.lower(), list(lower), n=1, cutoff=0.6)
    msg = f"{src.path}: has no column {want!r} ({key}); its columns are: {', '.join(cols)}."
    if close:
        msg += f" Did you mean {lower[close[0]]!r}? Set {key} = {lower[close[0]]!r}."
    elif len(unused) == 1:  # the only column no other setting claims
        msg += f" Perhaps {key} = {unused[0]!r}?"
    else:
        msg += f" Set {key} to the one that holds it."
    if src.format == "text" and key == "data.label_column":
        msg += (" A plain-text file has a single column 'text'; classification needs labels, so "
                "use csv, tsv or jsonl with a label column.")
    elif task == "causal-lm" and key == "data.text_column":
        msg += " For prompt/response data set data.prompt_column and data.response_column."
        if "messages" in lower:
            msg += f" For chat data set data.messages_column = {lower['messages']!r}."
    return DataError(msg)


def _standardise(src: LoadedTable, role: str, wanted: dict[str, tuple[str, str]],
                 task: str) -> _Part:
    """The file's relevant columns under standard names, as strings, plus the row number."""
    names = src.table.column_names
    used = {std: _match_column(names, want) for std, (_, want) in wanted.items()}
    for std, (key, want) in wanted.items():
        if used[std] is None:
            unused = [c for c in names if c not in used.values()]
            raise _missing_column(src, key, want, task, unused)
    cols: dict[str, pa.ChunkedArray] = {}
    for std, (key, _) in wanted.items():
        name = used[std]
        assert name is not None
        if std == "messages":  # conversations travel as JSON text (``chat.messages_json``)
            cols[std] = messages_json(src.table.column(name), src.where, key)
        else:
            cols[std] = _as_string(src.table.column(name), src, name, key)
    cols["row"] = pa.chunked_array([pa.array(src.rows, type=pa.int64())])
    stats = {"path": str(src.path), "format": src.format, "columns": used,
             "row_unit": src.unit, "rows_read": src.table.num_rows}
    return _Part(role, src, pa.table(cols), stats)


def _as_string(col: pa.ChunkedArray, src: LoadedTable, name: str, key: str) -> pa.ChunkedArray:
    """Text or label column as strings; ints/floats/bools are stringified (1 -> "1")."""
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = pc.cast(col, t.value_type), t.value_type
    if pa.types.is_string(t):
        return col
    if (pa.types.is_large_string(t) or pa.types.is_null(t) or pa.types.is_integer(t)
            or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)):
        return pc.cast(col, pa.string())
    raise DataError(f"{src.path}: column {name!r} ({key}) holds {t} values, not text; point "
                    f"{key} at a column of text")


# --- cleaning -----------------------------------------------------------------------------

def _clean(part: _Part, profile: Profile) -> _Part:
    """The shared cleaning rules (``cleaning``) on the standard columns."""
    d = profile.data
    t = part.table
    keys = [c for c in t.column_names if c != "row"]
    if not d.clean:
        if "label" in keys:  # a class named "" is never what the user meant
            label = t.column("label")
            bad = pc.or_kleene(pc.is_null(label), pc.equal(label, ""))
            if pc.any(bad).as_py():
                i = int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0])
                raise DataError(f"{part.src.where(i)}: the label is empty; fill it in, or turn "
                                "on data.clean to drop rows without a label")
        for c in keys:  # keep the rows, but never hand a null to a tokenizer
            t = t.set_column(t.column_names.index(c), c, pc.fill_null(t.column(c), ""))
    t, counts = clean_table(t, keys, d.clean, d.dedup)
    n0, n_empty, n_dup = counts.read, counts.empty, counts.duplicate
    part.stats.update(dropped_empty=n_empty, dropped_duplicate=n_dup, rows_kept=t.num_rows)
    if t.num_rows == 0:
        cols = ", ".join(f"{k}={v!r}" for k, v in part.stats["columns"].items())
        raise DataError(
            f"{part.src.path}: all {n0} rows were dropped ({n_empty} empty, {n_dup} duplicate); "
            f"check that the profile's columns ({cols}) are the ones holding the data "
            f"(data.{part.role})"
        )
    part.table = t
    return part


def _as_corpus(part: _Part, profile: Profile) -> _Part:
    """A packed corpus's documents (``packing.corpus_table``): no line cleaning, no dedup."""
    table = corpus_table(part.table, part.src.format, profile.data.documents)
    if table.num_rows == 0:
        raise DataError(f"{part.src.path}: holds no text (data.{part.role})")
    part.stats.update(dropped_empty=0, dropped_duplicate=0, rows_kept=part.table.num_rows,
                      documents=table.num_rows, packed=True)
    part.table = table
    return part


# --- labels -------------------------------------------------------------------------------

def _label_names(train: _Part, label_column: str) -> list[str]:
    """Sorted training labels (numerically when they are all integers).

    A ``datasets`` folder whose label is a ClassLabel keeps its own order, so ids stay the same
    as the user's.
    """
    src_col = train.stats["columns"]["label"]
    if src_col in train.src.class_names:
        names = [n.strip() for n in train.src.class_names[src_col]]
    else:
        uniq = [u for u in pc.unique(train.table.column("label")).to_pylist() if u is not None]
        if all(_INT_LABEL.match(u) for u in uniq):
            names = sorted(uniq, key=lambda u: (int(u), u))
        else:
            names = sorted(uniq)
    if len(names) < 2:
        only = repr(names[0]) if names else "none"
        raise DataError(f"{train.src.path}: the label column {src_col!r} holds a single value "
                        f"({only}); classification needs at least two classes: check "
                        f"data.label_column (now {label_column!r})")
    return names


def _encode_labels(part: _Part, names: list[str], train_src: LoadedTable) -> None:
    """Replace label strings by class ids; a label unknown to training is an error here."""
    t = part.table
    ids = pc.index_in(t.column("label"), value_set=pa.array(names, type=pa.string()))
    missing = pc.is_null(ids)
    n_missing = pc.sum(missing).as_py() or 0
    if n_missing:
        i = int(np.flatnonzero(missing.to_numpy(zero_copy_only=False))[0])
        label = t.column("label")[i].as_py()
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise DataError(
            f"{part.src.where(i)}: label {label!r} does not occur in the training data "
            f"({train_src.path}); training labels: {shown}. Fix the label or add training rows "
            f"with it ({n_missing} row(s) of this file have labels unseen in training)"
        )
    part.table = t.set_column(t.column_names.index("label"), "label", pc.cast(ids, pa.int64()))


def _label_counts(ds: Dataset, names: list[str]) -> dict[str, int]:
    counts = np.bincount(ds.data.column("label").to_numpy(), minlength=len(names))
    return {n: int(c) for n, c in zip(names, counts)}


# --- output -------------------------------------------------------------------------------

def _to_dataset(t: pa.Table, role: str, label_names: list[str] | None,
                fingerprint: str) -> Dataset:
    t = t.combine_chunks()
    features = Features.from_arrow_schema(t.schema)
    if label_names is not None:
        features["label"] = ClassLabel(names=label_names)
    return Dataset(InMemoryTable(t), info=DatasetInfo(features=features), split=NamedSplit(role),
                   fingerprint=f"{fingerprint}-{role}")


def _fingerprint(profile: Profile, parts: dict[str, _Part]) -> str:
    """Hash of the file contents and every setting that shapes the prepared rows."""
    d = profile.data.model_dump(mode="json", exclude={"train", "validation", "test"})
    blob = json.dumps({
        "v": SPLITS_VERSION,
        "task": profile.task.type,
        "seed": profile.training.seed,
        "data": d,
        "files": {r: p.src.digest for r, p in parts.items()},
    }, sort_keys=True)
    return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()
