"""Near-duplicates by MinHash + LSH banding, vectorised over a whole batch with numpy.

Each text (its normalised key, see ``textops.normalised_key``) becomes the set of its character
5-grams; ``NUM_PERM`` seeded hash permutations give its MinHash signature, whose agreement rate
estimates the Jaccard similarity of two texts' 5-gram sets. The signature is cut into ``bands``
of ``rows`` values (chosen for the threshold like datasketch's ``MinHashLSH``: the split that
minimises false positives + false negatives); two texts whose signatures agree on a whole band
are near-duplicates, and the later one is dropped. Only the band hashes are kept (8 bytes per
band per row), never the text or the signature. Why not ``datasketch``: it is not a dependency
and hashes row by row in Python; this is one pass of array arithmetic per batch.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tunedeck.core.prepare.dedup import HashIndex, combine

NUM_PERM = 64
SHINGLE = 5
_PRIME = np.uint64((1 << 61) - 1)
_BASE = np.uint64(1099511628211)


def lsh_params(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows) minimising the false-positive + false-negative area around ``threshold``."""
    xs = np.linspace(0, 1, 201)
    best, best_err = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        r = num_perm // b
        if r == 0:
            break
        p = 1 - (1 - xs ** r) ** b
        fp = np.trapezoid(np.where(xs < threshold, p, 0), xs)
        fn = np.trapezoid(np.where(xs >= threshold, 1 - p, 0), xs)
        if fp + fn < best_err:
            best, best_err = (b, r), fp + fn
    return best


def _shingle_hashes(keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """A 61-bit hash of every 5-byte window of every key, and the row each window belongs to."""
    padded = [k if len(k) >= SHINGLE else k.ljust(SHINGLE) for k in keys]
    lengths = np.fromiter((len(k) for k in padded), dtype=np.int64, count=len(padded))
    buf = np.frombuffer(b"".join(padded), dtype=np.uint8).astype(np.uint64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    n_windows = lengths - SHINGLE + 1
    row_of = np.repeat(np.arange(len(padded)), n_windows)
    pos = np.repeat(starts, n_windows) + (np.arange(row_of.size)
                                          - np.repeat(np.cumsum(n_windows) - n_windows, n_windows))
    h = np.zeros(row_of.size, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(SHINGLE):
            h = h * _BASE + buf[pos + k]
    return h % _PRIME, row_of


def signatures(keys: list[str], num_perm: int = NUM_PERM, seed: int = 1) -> np.ndarray:
    """(rows, num_perm) MinHash signatures of the keys' 5-gram sets."""
    n = len(keys)
    if n == 0:
        return np.zeros((0, num_perm), dtype=np.uint64)
    h, row_of = _shingle_hashes([k.encode("utf-8") for k in keys])
    rng = np.random.default_rng(seed)
    # Multiply-shift hashing (odd 64-bit multiplier, top 32 bits): a universal family, so each
    # column is an independent random order of the shingles.
    a = rng.integers(0, 1 << 63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 1 << 63, size=num_perm, dtype=np.uint64)
    starts = np.flatnonzero(np.concatenate(([True], row_of[1:] != row_of[:-1])))
    sig = np.empty((n, num_perm), dtype=np.uint64)
    h32 = (h ^ (h >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
    with np.errstate(over="ignore"):
        for j in range(num_perm):
            vals = (a[j] * h32 + b[j]) >> np.uint64(32)
            sig[:, j] = np.minimum.reduceat(vals, starts)
    return sig


class NearDupIndex:
    """LSH band buckets of the rows kept so far."""

    def __init__(self, threshold: float, num_perm: int = NUM_PERM):
        self.threshold = threshold
        self.bands, self.rows = lsh_params(threshold, num_perm)
        self.num_perm = num_perm
        self._index = [HashIndex() for _ in range(self.bands)]

    def near_duplicates(self, keys: pa.Array, group: np.ndarray, candidates: np.ndarray
                        ) -> np.ndarray:
        """True for candidate rows that share a band with an earlier row of the same ``group``
        (the label's hash: texts with different labels are conflicts, not duplicates)."""
        out = np.zeros(len(keys), dtype=bool)
        idx = np.flatnonzero(candidates)
        if idx.size == 0:
            return out
        texts = keys.take(pa.array(idx)).to_pylist()
        sig = signatures([t or "" for t in texts], self.num_perm)
        band_h = [combine(group[idx], *[sig[:, bi * self.rows + r] for r in range(self.rows)])
                  for bi in range(self.bands)]
        hit = np.zeros(idx.size, dtype=bool)
        for bi, h in enumerate(band_h):
            found, _ = self._index[bi].lookup(h)
            _, first = np.unique(h, return_index=True)
            repeat = np.ones(h.size, dtype=bool)
            repeat[first] = False
            hit |= found | repeat
        for bi, h in enumerate(band_h):
            self._index[bi].add(h[~hit])
        out[idx] = hit
        return out
