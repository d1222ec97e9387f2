"""Data: read files (``loading``, ``sniff``), then check, clean, label and split them
(``prepare``, ``split``) into standard-column ``datasets.Dataset`` objects for the tasks."""

from tunedeck.core.data.loading import LoadedTable, load_table, read_source
from tunedeck.core.data.prepare import PreparedData, prepare
from tunedeck.core.data.split import assign_splits, split_sizes

__all__ = ["LoadedTable", "PreparedData", "assign_splits", "load_table", "prepare",
           "read_source", "split_sizes"]
