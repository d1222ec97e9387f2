"""Format-preserving edits of a profile's TOML text.

Saving a profile from a form must not turn a hand-written, commented file into a canonical dump
(comments gone, every default written out, ``2`` become ``2.0``). :func:`update_text` changes
only the lines of the values that differ, keeps comments and layout, and checks its own work:
if the patched text does not load back to exactly the wanted profile it returns the canonical
dump instead (still correct, just not minimal).
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import tomli_w

from tunedeck.core.errors import ProfileError
from tunedeck.core.profile.io import dumps, loads
from tunedeck.core.profile.schema import Profile

_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\s]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_\-]+)(\s*=\s*)(.*)$")


def update_text(text: str, profile: Profile) -> str:
    """``text`` with the values that differ from ``profile`` changed in place (comments and
    layout kept); the canonical dump when ``text`` is not a valid profile or cannot be patched."""
    try:
        before = loads(text)
    except ProfileError:
        return dumps(profile)
    if before == profile:
        return text
    old = _flatten(_plain(before))
    new = _flatten(_plain(profile))
    eol = "\r\n" if "\r\n" in text else "\n"  # a file edited on Windows keeps its line ends
    lines = [ln.rstrip("\r\n") + "\n" for ln in text.splitlines(keepends=True)]
    if text and not text.endswith(("\n", "\r")):
        lines[-1] = lines[-1][:-1]
    try:
        for path in sorted(set(old) | set(new), key=lambda p: (len(p), p)):
            if old.get(path, _MISSING) == new.get(path, _MISSING):
                continue
            lines = _apply(lines, path, new.get(path, _MISSING))
        out = "".join(lines)
        if not out.endswith("\n"):
            out += "\n"
        if eol != "\n":
            out = out.replace("\n", eol)
        if loads(out) == profile:
            return out
    except (_Unpatchable, ProfileError, tomllib.TOMLDecodeError):
        pass
    return dumps(profile)


class _Unpatchable(Exception):
    """A change this line editor does not make (dotted keys, inline tables ...)."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


_MISSING = _Missing()


def _plain(profile: Profile) -> dict[str, Any]:
    return tomllib.loads(dumps(profile))  # exactly the values a dump would write, None dropped


def _flatten(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


def _value(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))  # "epochs = 3" as typed, not 3.0 (floats accept integers)
    if isinstance(v, list) and not any(isinstance(x, (list, dict)) for x in v):
        return "[" + ", ".join(_value(x) for x in v) + "]"  # one line, as people write them
    return tomli_w.dumps({"v": v}).split("=", 1)[1].strip()


def _tables(lines: list[str]) -> list[tuple[tuple[str, ...], int, int]]:
    """(table path, first line, end line) for the root table and each [header] table."""
    spans: list[tuple[tuple[str, ...], int, int]] = []
    current: tuple[str, ...] = ()
    start = 0
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if m and not line.lstrip().startswith("[["):
            spans.append((current, start, i))
            current = tuple(p.strip() for p in m.group(1).split("."))
            start = i + 1
    spans.append((current, start, len(lines)))
    return spans


def _value_extent(lines: list[str], i: int, rest: str) -> tuple[int, str]:
    """Lines the value starting at ``rest`` (line ``i``) spans, and the trailing comment."""
    for j in range(i, min(len(lines), i + 200)):
        chunk = rest + "".join(lines[i + 1: j + 1]) if j > i else rest
        try:
            tomllib.loads("v = " + chunk)
        except tomllib.TOMLDecodeError:
            continue
        # Keep a trailing comment on the last line (a '#' outside the value).
        last = chunk.rstrip("\n")
        for pos in [m.start() for m in re.finditer("#", last)]:
            try:
                tomllib.loads("v = " + last[:pos])
                return j, last[pos:]
            except tomllib.TOMLDecodeError:
                continue
        return j, ""
    raise _Unpatchable


def _apply(lines: list[str], path: tuple[str, ...], value: Any) -> list[str]:
    table, key = path[:-1], path[-1]
    spans = _tables(lines)
    for tpath, start, end in spans:
        if tpath != table:
            continue
        for i in range(start, end):
            m = _KEY.match(lines[i])
            if not m or m.group(2) != key:
                continue
            last, comment = _value_extent(lines, i, m.group(4))
            if value is _MISSING:
                return lines[:i] + lines[last + 1:]
            eol = "\n"
            new_line = f"{m.group(1)}{key}{m.group(3)}{_value(value)}" + (
                f"  {comment}" if comment else "") + eol
            return lines[:i] + [new_line] + lines[last + 1:]
        if value is _MISSING:
            return lines
        # Not there yet: after the table's last non-blank line.
        at = end
        while at > start and not lines[at - 1].strip():
            at -= 1
        if at > 0 and not lines[at - 1].endswith("\n"):
            lines = lines[:at - 1] + [lines[at - 1] + "\n"] + lines[at:]
        return lines[:at] + [f"{key} = {_value(value)}\n"] + lines[at:]
    if value is _MISSING:
        return lines
    if any(tpath[: len(table)] == table for tpath, _, _ in spans[1:]) or len(table) == 0:
        raise _Unpatchable  # a table defined implicitly (dotted/sub-tables only): leave to dumps
    tail = [] if not lines or lines[-1].endswith("\n") else ["\n"]
    return lines + tail + [f"\n[{'.'.join(table)}]\n", f"{key} = {_value(value)}\n"]
