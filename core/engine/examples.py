"""The engine's example store: tokenized rows as flat numpy arrays + offsets (zero-copy from
Arrow), so collating a batch is a numpy fill into one padded array, cheap and off the GPU's path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tunedeck.core.tasks.base import IGNORE


@dataclass
class TokenizedSet:
    """Variable-length examples as flat numpy arrays + offsets (zero-copy from Arrow).

    Collating a batch is a numpy fill into one padded array: cheap and off the GPU's path.
    """

    ids: np.ndarray  # flat token ids, int64
    offsets: np.ndarray  # len n+1
    labels: np.ndarray  # classification: one per row; token tasks: flat like ids (or targets)
    label_offsets: np.ndarray | None  # token-level labels: offsets into ``labels``
    n_targets: np.ndarray  # per row: how many positions count in the loss
    rows: np.ndarray  # 1-based source row numbers, for error analysis
    # Packed rows (``data.packing``): flat position ids like ``ids``, restarting per example.
    positions: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_dataset(cls, ds: Any) -> "TokenizedSet":
        import pyarrow as pa

        def flat(col: str) -> tuple[np.ndarray, np.ndarray]:
            arr = ds.data.column(col).combine_chunks()
            if isinstance(arr, pa.ChunkedArray):  # pragma: no cover - older pyarrow
                arr = arr.chunk(0)
            arr = arr.cast(pa.large_list(pa.int64()))
            offsets = arr.offsets.to_numpy().astype(np.int64)
            values = arr.values.to_numpy(zero_copy_only=False).astype(np.int64)
            base = offsets[0]
            return values[base: offsets[-1]] if base else values, offsets - base

        ids, offsets = flat("input_ids")
        lab_type = ds.features["labels"]
        if hasattr(lab_type, "feature") or type(lab_type).__name__ in ("List", "Sequence", "LargeList"):
            labels, label_offsets = flat("labels")
        else:
            labels = np.asarray(ds["labels"], dtype=np.int64)
            label_offsets = None
        n_targets = np.asarray(ds["n_targets"], dtype=np.int64)
        rows = np.asarray(ds["row"], dtype=np.int64) if "row" in ds.column_names else np.arange(1, len(n_targets) + 1)
        positions = flat("position_ids")[0] if "position_ids" in ds.column_names else None
        return cls(ids, offsets, labels, label_offsets, n_targets, rows, positions)

    def collate(self, idx: np.ndarray | list[int], pad_id: int, multiple: int = 8) -> dict[str, np.ndarray]:
        idx = np.asarray(idx)
        starts, ends = self.offsets[idx], self.offsets[idx + 1]
        lens = ends - starts
        width = int(lens.max())
        if multiple > 1:
            width = -(-width // multiple) * multiple
        n = len(idx)
        input_ids = np.full((n, width), pad_id, dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        for r, (s, e) in enumerate(zip(starts, ends)):
            input_ids[r, : e - s] = self.ids[s:e]
            mask[r, : e - s] = 1
        out = {"input_ids": input_ids, "attention_mask": mask}
        if self.positions is not None:
            out["position_ids"] = self._positions(starts, ends, width)
        if self.label_offsets is None:
            out["labels"] = self.labels[idx]
        else:
            ls, le = self.label_offsets[idx], self.label_offsets[idx + 1]
            lw = int((le - ls).max())
            if multiple > 1:
                lw = -(-lw // multiple) * multiple
            labels = np.full((n, lw), IGNORE, dtype=np.int64)
            for r, (s, e) in enumerate(zip(ls, le)):
                labels[r, : e - s] = self.labels[s:e]
            out["labels"] = labels
        return out

    def _positions(self, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
        """Packed rows' position ids; the padding counts up from 0 as a sequence of its own,
        so that no real token attends to it."""
        assert self.positions is not None
        pos = np.tile(np.arange(width, dtype=np.int64), (len(starts), 1))
        for r, (s, e) in enumerate(zip(starts, ends)):
            pos[r, : e - s] = self.positions[s:e]
            pos[r, e - s:] -= e - s
        return pos
