"""Widgets of our own: a braille line plot and an Arrow-backed virtual table."""
