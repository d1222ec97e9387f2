"""Dataset preparation: clean, split, convert, augment, annotate (each writes a new dataset)."""
