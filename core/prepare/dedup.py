"""Exact and normalised duplicates, and conflicting labels, over a stream of batches.

Memory is 8 bytes per distinct key (sorted numpy arrays of 64-bit hashes), never the text: a
million-row file dedups in a few tens of MB. Hashes come from ``pandas.util.hash_array``
(SipHash, vectorised in C). A 64-bit collision between two different texts would merge them;
at a million rows its probability is about 3e-8.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MIX = np.uint64(0x9E3779B97F4A7C15)


def hash_strings(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash per string (null hashes like "")."""
    from pandas.util import hash_array

    values = pc.fill_null(col, "").to_numpy(zero_copy_only=False).astype(object)
    return hash_array(values, categorize=False).astype(np.uint64)


def combine(*hashes: np.ndarray) -> np.ndarray:
    """One hash from several columns' hashes (order matters)."""
    out = np.zeros_like(hashes[0])
    with np.errstate(over="ignore"):
        for h in hashes:
            out = (out ^ h) * _MIX + np.uint64(0x632BE59BD9B4E019)
            out ^= out >> np.uint64(29)
    return out


class HashIndex:
    """A growing set of 64-bit keys (optionally each with a 64-bit value), kept sorted."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.uint64)
        self.values = np.zeros(0, dtype=np.uint64)

    def __len__(self) -> int:
        return int(self.keys.size)

    def lookup(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, the stored value where found)."""
        if self.keys.size == 0:
            return np.zeros(h.size, dtype=bool), np.zeros(h.size, dtype=np.uint64)
        pos = np.searchsorted(self.keys, h)
        pos_c = np.minimum(pos, self.keys.size - 1)
        found = self.keys[pos_c] == h
        return found, self.values[pos_c]

    def add(self, h: np.ndarray, values: np.ndarray | None = None) -> None:
        """Add keys not yet present (the first value of a key stays)."""
        if h.size == 0:
            return
        values = np.zeros(h.size, dtype=np.uint64) if values is None else values
        found, _ = self.lookup(h)
        h, values = h[~found], values[~found]
        h, first = np.unique(h, return_index=True)
        keys = np.concatenate([self.keys, h])
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.values = np.concatenate([self.values, values[first]])[order]


def seen_before(index: HashIndex, h: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """True for each candidate row whose key is in ``index`` or on an earlier candidate row of
    this batch; the candidates' keys are then added."""
    out = np.zeros(h.size, dtype=bool)
    idx = np.flatnonzero(candidates)
    if idx.size == 0:
        return out
    keys = h[idx]
    found, _ = index.lookup(keys)
    _, first = np.unique(keys, return_index=True)
    repeat = np.ones(keys.size, dtype=bool)
    repeat[first] = False
    out[idx] = found | repeat
    index.add(keys[~out[idx]])
    return out


def label_conflicts(index: HashIndex, text_h: np.ndarray, label_h: np.ndarray,
                    rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the kept rows ``rows``: True where the same text was seen with another label, and
    the first label's hash for those rows. The first label of each text is remembered."""
    conflict = np.zeros(text_h.size, dtype=bool)
    first_label = np.zeros(text_h.size, dtype=np.uint64)
    idx = np.flatnonzero(rows)
    if idx.size == 0:
        return conflict, first_label
    t, lab = text_h[idx], label_h[idx]
    found, stored = index.lookup(t)
    uniq, first, inverse = np.unique(t, return_index=True, return_inverse=True)
    batch_first = lab[first][inverse]
    reference = np.where(found, stored, batch_first)
    conflict[idx] = reference != lab
    first_label[idx] = reference
    index.add(t, lab)
    return conflict, first_label
