"""Dataset preparation: clean, split, convert, augment, annotate (each writes a new dataset).

``tunedeck data clean|split|convert|augment|stats|leakage|pull`` and the profile's
``[[data.prepare]]`` steps. Every operation reads a dataset through the one data layer
(``tunedeck.core.data``), writes a NEW dataset (temp name, then rename; the input is only ever
opened for reading) plus a recipe beside it (``recipe``), and reports what it did as an
``OpReport`` (counts, a preview of changed and dropped rows). Large CSV/TSV files stream in
blocks (``streaming``, ``runner``).

One module per operation: ``clean`` (+ ``textops``, ``dedup``, ``minhash``), ``split_op``
(+ ``leakage``), ``convert``, ``augment`` (+ ``paraphrase``), ``stats``, ``hub``; ``pipeline``
applies a profile's steps at training time; ``annotation`` is the labelling session behind the
TUI's annotate screen.
"""
