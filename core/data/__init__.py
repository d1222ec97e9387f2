"""Data: read files (``formats``, ``reader``), then clean, label and split them (``cleaning``,
``split``, ``splits_reader``) into standard-column ``datasets.Dataset`` objects for the tasks.

Names are imported lazily: the dataset browser imports ``tunedeck.core.data.reader`` in the TUI
process, which must not pull in ``datasets`` (and through it, torch) as a side effect.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "LoadedTable": "reader", "load_table": "reader", "read_source": "reader",
    "SplitData": "splits_reader", "read_splits": "splits_reader",
    "assign_splits": "split", "split_sizes": "split",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
