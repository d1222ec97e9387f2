"""Packing for causal LMs: a text corpus cut into ``max_length`` blocks, and short instruction
examples packed several to a row.

Corpus (``data.packing`` on text data; the default for a .txt file): the file is read as
documents (the whole file, blank-line-separated parts, or one per ``text`` row), never cleaned
line by line and never de-duplicated (a play repeats its speaker names on purpose). Splits are
made before tokenizing, so that no block crosses a split boundary: whole documents when there
are enough of them, else contiguous ranges of the text (the first 80% of its characters train,
the next 10% validate, the last 10% test, cut at line ends). Each split's documents are then
tokenized, joined with EOS and cut into blocks like the transformers ``run_clm`` example's
``group_texts``, except that the last, shorter block is kept: no token is dropped.

Instructions (``data.packing`` on messages or prompt/response data): tokenized examples are
packed best-fit into rows of at most ``max_length`` tokens with position ids that restart at
each example. Models whose attention mask is built by ``transformers.masking_utils`` read
restarting position ids as separate sequences (no attention across examples, when no
attention mask is passed); for other models the rows are plain concatenations and the run's
events say so.
"""

from __future__ import annotations

import bisect
import re
from typing import Any

import numpy as np
import pyarrow as pa

from tunedeck.core.data.split import TEST, TRAIN, VALIDATION, assign_splits

# Split by whole documents only when each split can get several: fewer documents are one text.
MIN_DOCUMENTS_TO_SPLIT = 20
_BLANK = re.compile(r"\n[ \t\r]*\n")


def packing_on(profile: Any, fmt: str) -> bool:
    """``data.packing``, with its default: on for a plain-text file in a causal-LM profile."""
    d = profile.data
    if profile.task.type != "causal-lm":
        return False
    if d.packing != "auto":
        return d.packing == "on"
    return fmt == "text" and not d.prompt_column and not d.messages_column


# --- corpora: documents and splits (before tokenizing) ---------------------------------------

def corpus_table(table: pa.Table, fmt: str, documents: str) -> pa.Table:
    """A file's ``text`` + ``row`` table (standard columns) as documents: ``text`` + ``row``
    (the document's first line).

    A plain-text file is rebuilt from its non-blank lines and their line numbers (the reader
    drops blank lines; the gaps put them back), so the text is the file's, blank lines included.
    Other formats: one document per row of the text column, as read (only empty rows go).
    """
    texts = table.column("text").to_pylist()
    rows = [int(r) for r in table.column("row").to_pylist()]
    if fmt != "text" or not texts:
        keep = [i for i, t in enumerate(texts) if t and t.strip()]
        return pa.table({"text": pa.array([texts[i] for i in keep], type=pa.string()),
                         "row": pa.array([rows[i] for i in keep], type=pa.int64())})
    parts: list[str] = []
    for i, (line, row) in enumerate(zip(texts, rows)):
        if i:
            parts.append("\n" * (row - rows[i - 1]))
        parts.append(line)
    whole = "".join(parts)
    if documents == "file":
        return pa.table({"text": pa.array([whole] if whole else [], type=pa.string()),
                         "row": pa.array([rows[0]] if whole else [], type=pa.int64())})
    docs, starts, pos = [], [], 0
    for m in list(_BLANK.finditer(whole)) + [None]:
        end = m.start() if m else len(whole)
        if whole[pos:end].strip():
            docs.append(whole[pos:end])
            starts.append(rows[0] + whole.count("\n", 0, pos))
        pos = m.end() if m else pos
    return pa.table({"text": pa.array(docs, type=pa.string()),
                     "row": pa.array(starts, type=pa.int64())})


def carve_corpus(table: pa.Table, f_val: float, f_test: float, seed: int
                 ) -> dict[str, pa.Table]:
    """Train/validation/test documents: whole documents (seeded) when there are at least
    ``MIN_DOCUMENTS_TO_SPLIT``, else contiguous character ranges of the joined text."""
    n = table.num_rows
    if n >= MIN_DOCUMENTS_TO_SPLIT:
        codes = assign_splits(None, n, f_val, f_test, seed)
        return {role: table.filter(pa.array(codes == code))
                for role, code in (("train", TRAIN), ("validation", VALIDATION), ("test", TEST))}
    texts = table.column("text").to_pylist()
    rows = table.column("row").to_pylist()
    total = sum(len(t) for t in texts)
    cuts = [0, int(total * (1 - f_val - f_test)), int(total * (1 - f_test)), total]
    out = {}
    for k, role in enumerate(("train", "validation", "test")):
        pieces = _range_pieces(texts, rows, cuts[k], cuts[k + 1])
        out[role] = pa.table({"text": pa.array([p[0] for p in pieces], type=pa.string()),
                              "row": pa.array([p[1] for p in pieces], type=pa.int64())})
    return out


def _range_pieces(texts: list[str], rows: list[int], lo: int, hi: int) -> list[tuple[str, int]]:
    """The parts of the documents between character offsets ``lo`` and ``hi`` of their joined
    text, each cut moved to the end of its line (so a line is never split between splits)."""
    joined = "".join(texts)
    lo, hi = _line_end(joined, lo), _line_end(joined, hi)
    pieces, start = [], 0
    for text, row in zip(texts, rows):
        a, b = max(lo, start), min(hi, start + len(text))
        if a < b and text[a - start: b - start].strip():
            pieces.append((text[a - start: b - start], row + text.count("\n", 0, a - start)))
        start += len(text)
    return pieces


def _line_end(text: str, at: int) -> int:
    if at <= 0 or at >= len(text):
        return max(0, min(at, len(text)))
    nl = text.find("\n", at - 1)
    return len(text) if nl < 0 else nl + 1


# --- corpora: blocks (after tokenizing) ------------------------------------------------------

def corpus_blocks(doc_ids: list[np.ndarray], eos: int | None, block: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Documents' token ids joined (EOS after each) and cut into ``block``-token rows: the flat
    ids and the row offsets. The last row may be shorter; nothing is dropped."""
    tail = [np.asarray([eos], dtype=np.int32)] if eos is not None else []
    parts = [p for ids in doc_ids for p in [np.asarray(ids, dtype=np.int32), *tail]]
    flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    offsets = np.append(np.arange(0, flat.size, block, dtype=np.int64), flat.size)
    return flat, offsets


_CHUNK_CHARS = 1 << 16
_CUT = re.compile(r"\n(?=\S)")


def _chunks(text: str) -> list[str]:
    """``text`` in pieces of about 64 KB, cut after a newline that a non-space follows: a
    pre-token boundary of byte-level BPE, so the pieces tokenize as the whole text does, in
    parallel and without one giant list per document."""
    out, start = [], 0
    while len(text) - start > _CHUNK_CHARS:
        m = _CUT.search(text, start + _CHUNK_CHARS)
        if m is None:
            break
        out.append(text[start: m.end()])
        start = m.end()
    out.append(text[start:])
    return out


def _tokenize_documents(ds: Any, tokenizer: Any, batch: int) -> tuple[list[np.ndarray], list[int]]:
    doc_ids: list[np.ndarray] = []
    doc_rows: list[int] = []
    for i in range(0, len(ds), batch):
        part = ds[i: i + batch]
        for text, row in zip(part["text"], part["row"]):
            pieces = tokenizer(_chunks(text), add_special_tokens=False)["input_ids"]
            doc_ids.append(np.concatenate([np.asarray(p, dtype=np.int32) for p in pieces]))
            doc_rows.append(int(row))
    return doc_ids, doc_rows


def pack_corpus(ds: Any, tokenizer: Any, block: int, batch: int = 256) -> Any:
    """A split's documents (``text`` + ``row``) as a Dataset of ``block``-token rows with
    labels = input_ids (the ``TokenizedSet`` columns); ``row`` is the first document's row.
    Built as Arrow arrays straight from numpy: a large corpus never becomes Python lists."""
    from datasets import Dataset
    from datasets.table import InMemoryTable

    doc_ids, doc_rows = _tokenize_documents(ds, tokenizer, batch)
    flat, offsets = corpus_blocks(doc_ids, tokenizer.eos_token_id, block)
    tail = 1 if tokenizer.eos_token_id is not None else 0
    doc_start = np.cumsum([0] + [len(x) + tail for x in doc_ids])[:-1]
    block_rows = np.asarray(doc_rows, dtype=np.int64)[
        np.searchsorted(doc_start, offsets[:-1], side="right") - 1]
    ids = pa.LargeListArray.from_arrays(pa.array(offsets, type=pa.int64()), pa.array(flat))
    table = pa.table({"input_ids": ids, "labels": ids,
                      "n_targets": pa.array(np.maximum(np.diff(offsets) - 1, 0)),
                      "row": pa.array(block_rows)})
    return Dataset(InMemoryTable(table))


# --- instructions: several examples per row --------------------------------------------------

def best_fit_bins(lengths: np.ndarray, capacity: int) -> list[list[int]]:
    """Example indices per row: longest first, each into the fullest row it still fits
    (best-fit decreasing); rows keep their examples in that order."""
    order = np.argsort(-lengths, kind="stable")
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin id), sorted
    for i in order:
        need = int(lengths[i])
        k = bisect.bisect_left(free, (need, -1))
        if k < len(free):
            room, b = free.pop(k)
        else:
            room, b = capacity, len(bins)
            bins.append([])
        bins[b].append(int(i))
        bisect.insort(free, (room - need, b))
    return bins


def pack_examples(ds: Any, capacity: int) -> Any:
    """Tokenized examples (input_ids, labels, n_targets, row) packed into rows of at most
    ``capacity`` tokens, with ``position_ids`` restarting at 0 for each example. An example's
    first label is ignored: no loss predicts one example from the one before it."""
    from datasets import Dataset

    from tunedeck.core.tasks.base import IGNORE

    lengths = np.asarray([len(x) for x in ds["input_ids"]], dtype=np.int64)
    ids_col, lab_col, rows_col = ds["input_ids"], ds["labels"], ds["row"]
    out: dict[str, list[Any]] = {"input_ids": [], "labels": [], "position_ids": [],
                                 "n_targets": [], "row": []}
    for members in best_fit_bins(lengths, capacity):
        ids, labels, pos = [], [], []
        for i in members:
            ids += list(ids_col[i])
            labels += [IGNORE] + list(lab_col[i])[1:]
            pos += range(int(lengths[i]))
        out["input_ids"].append(ids)
        out["labels"].append(labels)
        out["position_ids"].append(pos)
        out["n_targets"].append(sum(1 for x in labels if x != IGNORE))
        out["row"].append(int(rows_col[members[0]]))
    return Dataset.from_dict(out)


def packed_attention_supported(model: Any) -> bool:
    """Whether the model builds its mask with ``masking_utils.create_causal_mask`` (or the
    sliding-window one), which reads restarting position ids as separate sequences when no
    attention mask and no cache are passed."""
    import inspect
    import sys

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT
    module = sys.modules.get(type(base).__module__)
    try:
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):
        return False
    # Mistral-style models pick create_causal_mask or its sliding-window twin at run time;
    # both read packed position ids.
    return "create_causal_mask" in source or "create_sliding_window_causal_mask" in source
