"""The dataset browser's Stats tab as Rich Text: columns, mess (duplicates, empty texts,
missing labels), label balance, text and token lengths, and the split preview. Pure functions of
the statistics (``tunedeck.core.data.table_stats``) and the profile's split fractions."""

from __future__ import annotations

from typing import Any, Sequence

from rich.text import Text

from tunedeck.tui.widgets.plot import bar_lines

DEFAULT_SPLIT = (0.8, 0.1, 0.1)
MAX_LABELS_SHOWN = 15


def render_stats(st: Any, width: int, filter_text: str = "",
                 split: Sequence[float] | None = None) -> Text:
    """The whole Stats tab; ``split`` is the profile's fractions (None: the default)."""
    t = Text()
    _columns(t, st, filter_text)
    _mess(t, st)
    if st.label_column:
        _label_balance(t, st, width)
    _lengths(t, st, width)
    _split_preview(t, st, split)
    return t


def _columns(t: Text, st: Any, filter_text: str) -> None:
    t.append(f"{st.num_rows:,} rows", style="bold")
    t.append(f" · {len(st.columns)} columns")
    if filter_text:
        t.append(f" · the whole file (the filter {filter_text!r} applies to Rows)", style="dim")
    t.append("\n")
    for name, typ in st.columns:
        nulls = st.nulls.get(name, 0)
        mark = ""
        if name == st.text_column:
            mark = "  ← text"
        elif name == st.label_column:
            mark = "  ← label"
        t.append(f"  {name}", style="bold")
        t.append(f": {typ}" + (f" ({nulls:,} null)" if nulls else "") + mark + "\n", style="dim")


def _mess(t: Text, st: Any) -> None:
    t.append("\nMess\n", style="bold underline")
    t.append(f"  duplicate rows     {st.duplicates:,}\n", style="yellow" if st.duplicates else "")
    if st.text_column:
        t.append(f"  empty text         {st.empty_text:,}\n", style="yellow" if st.empty_text else "")
    if st.label_column:
        t.append(f"  missing label      {st.missing_label:,}\n", style="yellow" if st.missing_label else "")


def _label_balance(t: Text, st: Any, width: int) -> None:
    t.append(f"\nLabel balance ({st.label_column}, {st.n_labels} labels)\n", style="bold underline")
    _bars(t, bar_lines(st.labels[:MAX_LABELS_SHOWN], width - 2,
                       total=st.num_rows - st.missing_label or None, color="green"))
    if st.n_labels > MAX_LABELS_SHOWN:
        t.append(f"  … and {st.n_labels - MAX_LABELS_SHOWN} more\n", style="dim")
    if st.labels_merged:
        t.append(f"  {st.labels_merged} label spelling(s) with stray spaces counted with "
                 "their trimmed form, as training does\n", style="yellow")


def _lengths(t: Text, st: Any, width: int) -> None:
    """Character lengths of the text column (and the other text columns), token lengths."""
    if st.length:
        t.append(f"\nText length ({st.text_column}, characters)\n", style="bold underline")
        t.append(_summary(st.length), style="dim")
        _bars(t, bar_lines([(f"{lo}–{hi}", c) for lo, hi, c in st.length_hist], width - 2, color="cyan"))
    if st.other_lengths:
        t.append("\nOther text columns (length in characters)\n", style="bold underline")
    for name, L in st.other_lengths.items():
        t.append(f"  {name}: ", style="bold")
        t.append(f"min {L['min']:,}  mean {L['mean']:.0f}  median {L['p50']:,}  p90 {L['p90']:,}  "
                 f"max {L['max']:,} characters\n", style="dim")
    if st.tokens:
        t.append(f"\nText length (tokens, first 20,000 rows; {st.tokenizer})\n", style="bold underline")
        t.append(_summary(st.tokens), style="dim")
        _bars(t, bar_lines([(f"{lo}–{hi}", c) for lo, hi, c in st.token_hist], width - 2, color="magenta"))
    elif st.text_column:
        t.append("\n  t: choose a tokenizer (tokenizer.json or model folder) for token lengths\n", style="dim")


def _summary(L: dict[str, Any]) -> str:
    return (f"  min {L['min']:,}  mean {L['mean']:.0f}  median {L['p50']:,}  p90 {L['p90']:,}  "
            f"p99 {L['p99']:,}  max {L['max']:,}\n")


def _bars(t: Text, lines: list[Text]) -> None:
    for line in lines:
        t.append("  ")
        t.append(line)
        t.append("\n")


def _split_preview(t: Text, st: Any, split: Sequence[float] | None) -> None:
    from tunedeck.tui.data_source import split_preview

    fractions = split or DEFAULT_SPLIT
    usable = st.kept  # training's cleaning and dedup rules, counted by the same code
    tr, va, te = split_preview(usable, fractions)
    src = "the profile" if split else "the default"
    t.append(f"\nSplit preview ({src} fractions {list(fractions)})\n", style="bold underline")
    t.append(f"  {usable:,} rows after cleaning and dedup → train {tr:,} · validation {va:,} · test {te:,}\n")
    if st.label_column and st.labels:
        t.append(f"  stratified by {st.label_column}: each split keeps the balance above\n", style="dim")
