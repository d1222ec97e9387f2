"""The text rules of ``clean``, vectorised with pyarrow compute (RE2 regular expressions).

Order matters and is fixed: Unicode NFC first (so "é" written two ways is one "é"), then HTML
tags and entities, URLs, e-mail addresses, characters outside the kept class, lowercase, and
whitespace last (removals leave double spaces behind). Whitespace normalisation: CRLF/CR -> LF,
runs of spaces/tabs (and other non-newline whitespace) -> one space, spaces around a newline
dropped, three or more newlines -> two (a paragraph break survives), ends stripped.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from tunedeck.core.errors import DataError

URL = r"(?i)\b(?:https?://|ftp://|www\.)[^\s<>\"']+"
EMAIL = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+"
HTML_TAG = r"<\/?[A-Za-z][^<>]*>|<!--.*?-->"
HTML_ENTITIES = (("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#39;", "'"),
                 ("&apos;", "'"), ("&amp;", "&"))
# Named character classes for --keep-chars; anything else is a class body such as "a-z0-9 .,".
CHAR_CLASSES = {
    "ascii": r"\x{09}\x{0a}\x{20}-\x{7e}",
    "latin": r"\x{09}\x{0a}\x{20}-\x{7e}\x{a0}-\x{24f}",
    "letters": r"\p{L}\p{M}\p{N}\p{Zs}\n\t.,;:!?'\"()\-",
    "printable": r"\p{L}\p{M}\p{N}\p{P}\p{S}\p{Zs}\n\t",
}


@dataclass(frozen=True)
class TextRules:
    """Which text rules ``clean`` applies (whitespace and NFC always)."""

    lowercase: bool = False
    strip_urls: bool = False
    strip_html: bool = False
    strip_emails: bool = False
    keep_chars: str | None = None  # a CHAR_CLASSES name or a class body
    nfc: bool = True

    def options(self) -> dict[str, object]:
        out = {k: v for k, v in self.__dict__.items() if v not in (None, False)}
        out["nfc"] = self.nfc
        return out


def keep_chars_pattern(keep: str) -> str:
    """The RE2 pattern matching characters OUTSIDE the kept class."""
    body = CHAR_CLASSES.get(keep, keep)
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    pattern = f"[^{body}]"
    try:
        pc.replace_substring_regex(pa.array(["x"]), pattern, "")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise DataError(f"--keep-chars {keep!r}: not a valid character class ({e}); use one of "
                        f"{', '.join(CHAR_CLASSES)} or a class body such as 'a-zA-Z0-9 .,!?'") \
            from None
    return pattern


def apply_rules(col: pa.Array | pa.ChunkedArray, rules: TextRules) -> pa.Array | pa.ChunkedArray:
    """One text column with the rules applied (nulls stay null: an empty row is dropped later)."""
    if rules.nfc:
        col = pc.utf8_normalize(col, form="NFC")
    if rules.strip_html:
        col = pc.replace_substring_regex(col, HTML_TAG, " ")
        for entity, char in HTML_ENTITIES:
            col = pc.replace_substring(col, entity, char)
    if rules.strip_urls:
        col = pc.replace_substring_regex(col, URL, " ")
    if rules.strip_emails:
        col = pc.replace_substring_regex(col, EMAIL, " ")
    if rules.keep_chars:
        col = pc.replace_substring_regex(col, keep_chars_pattern(rules.keep_chars), "")
    if rules.lowercase:
        col = pc.utf8_lower(col)
    return normalise_whitespace(col)


def normalise_whitespace(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    col = pc.replace_substring_regex(col, r"\r\n?", "\n")
    col = pc.replace_substring_regex(col, r"[^\S\n]+", " ")
    col = pc.replace_substring_regex(col, r" ?\n ?", "\n")
    col = pc.replace_substring_regex(col, r"\n{3,}", "\n\n")
    return pc.utf8_trim_whitespace(col)


def normalised_key(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The near-duplicate key: lowercase, letters and digits only, single spaces.

    "Free entry!!" and "free  entry" share a key; rows whose keys match are near-duplicates.
    """
    col = pc.utf8_lower(pc.utf8_normalize(col, form="NFKC"))
    col = pc.replace_substring_regex(col, r"[^\p{L}\p{N}]+", " ")
    return pc.utf8_trim_whitespace(col)


def as_text(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A column as strings (numbers and booleans as written; anything nested is refused)."""
    t = col.type
    if pa.types.is_string(t):
        return col
    if pa.types.is_dictionary(t):
        return pc.cast(col, t.value_type) if pa.types.is_string(t.value_type) else \
            pc.cast(pc.cast(col, t.value_type), pa.string())
    return pc.cast(col, pa.string())
