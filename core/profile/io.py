"""Read, write and override profiles: TOML text <-> validated ``Profile``.

Errors are ``ProfileError`` naming the file, the TOML line where we can find it, and the dotted
key, with a did-you-mean for near-miss keys. Nothing else escapes ``loads``/``load``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ValidationError

from tunedeck.core.errors import Problem, ProfileError
from tunedeck.core.profile.schema import Profile


def load(path: str | os.PathLike[str], sets: list[str] | None = None) -> Profile:
    """Load and validate a profile file, applying ``--set section.key=value`` overrides."""
    p = Path(path)
    if not p.exists():
        raise ProfileError(f"no such file; write one with 'tunedeck profile new > {p}'", str(p))
    if not p.is_file():
        raise ProfileError("is not a regular file (a directory or device?)", str(p))
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ProfileError(f"is not UTF-8 text (byte {e.start}); save it as UTF-8", str(p)) from None
    except OSError as e:
        raise ProfileError(f"cannot be read: {e.strerror}", str(p)) from None
    return loads(text, source=str(p), sets=sets)


def loads(text: str, source: str = "profile", sets: list[str] | None = None) -> Profile:
    """Parse and validate TOML text. ``source`` names the file in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"not valid TOML: {e}", source) from None
    except (ValueError, TypeError, RecursionError) as e:  # pathological input
        raise ProfileError(f"not valid TOML: {e}", source) from None
    for s in sets or []:
        apply_set(data, s)
    overridden = {s.split("=", 1)[0].strip() for s in sets or []}
    return validate(data, source=source, text=text, overridden=overridden)


def validate(data: dict[str, Any], source: str = "profile", text: str | None = None,
             overridden: set[str] | None = None) -> Profile:
    """``overridden``: dotted keys given with --set, blamed on --set rather than a file line."""
    try:
        return Profile.model_validate(data)
    except ValidationError as e:
        raise ProfileError([_problem(err, source, text, overridden or set())
                            for err in e.errors()], source) from None
    except (ValueError, TypeError, RecursionError, OverflowError) as e:
        raise ProfileError(f"invalid value: {e}", source) from None


def dumps(profile: Profile) -> str:
    """TOML text for a profile (None values are left out: TOML has no null)."""
    return tomli_w.dumps(_drop_none(profile.model_dump(mode="json")))


def save(profile: Profile, path: str | os.PathLike[str]) -> None:
    """Write atomically: a reader never sees a half-written profile."""
    from tunedeck.core.fsutil import atomic_write_text

    atomic_write_text(Path(path), dumps(profile))


def apply_set(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``section.key=value`` override; the value is parsed as TOML, else a string."""
    if "=" not in assignment:
        raise ProfileError(
            f"{assignment!r}: expected section.key=value, e.g. training.epochs=2", "--set"
        )
    key, raw = assignment.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(not re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in parts):
        raise ProfileError(f"{assignment!r}: {key!r} is not a dotted key", "--set")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    node = data
    for i, part in enumerate(parts[:-1]):
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ProfileError(f"{assignment!r}: {'.'.join(parts[: i + 1])} is not a section", "--set")
        node = nxt
    node[parts[-1]] = value


def resolve_paths(profile: Profile, base_dir: Path) -> Profile:
    """Make data paths absolute: relative to the profile's folder, else to the current directory.

    The frozen copy in a run directory holds absolute paths so that resume works from anywhere.
    """
    upd: dict[str, Any] = {}
    for field in ("train", "validation", "test"):
        val = getattr(profile.data, field)
        if not val or val.startswith("hf:"):  # a hub dataset (tunedeck.core.prepare.hub)
            continue
        p = Path(val).expanduser()
        if not p.is_absolute():
            cand = base_dir / p
            p = cand if cand.exists() or not (Path.cwd() / p).exists() else Path.cwd() / p
        upd[field] = _resolve(p, f"data.{field}")
    mupd: dict[str, Any] = {}
    for field in ("name", "tokenizer"):
        val = getattr(profile.model, field)
        if not val:
            continue
        # A local directory wins over a hub id of the same spelling (as from_pretrained does):
        # "basemodel" or "org/name" next to the profile, or in the current directory, is a path.
        looks_like_path = val.startswith((".", "/", "~"))
        local = [d / val for d in (base_dir, Path.cwd()) if (d / val).is_dir()]
        if looks_like_path or local:
            p = Path(val).expanduser()
            if not p.is_absolute():
                p = local[0] if local else base_dir / p
            mupd[field] = _resolve(p, f"model.{field}")
    return profile.model_copy(
        update={
            "data": profile.data.model_copy(update=upd),
            "model": profile.model.model_copy(update=mupd),
        }
    )


def _resolve(p: Path, key: str) -> str:
    try:
        return str(p.resolve())
    except (RuntimeError, OSError) as e:  # a symlink loop, a path too long
        raise ProfileError(f"{key}: cannot resolve {p}: {e}; point it at a real file", key) from None


# --- messages -----------------------------------------------------------------------------

def _problem(err: dict[str, Any], source: str, text: str | None,
             overridden: set[str] = frozenset()) -> Problem:  # type: ignore[assignment]
    loc = [str(x) for x in err.get("loc", ()) if not isinstance(x, int)]
    key = ".".join(loc)
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        msg = "unknown key" + _did_you_mean(loc)
    elif kind == "missing":
        msg = "is required"
    else:
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        inp = err.get("input")
        if isinstance(inp, float) and not math.isfinite(inp):
            msg = f"must be a finite number, not {inp}"
        elif not isinstance(inp, (dict, list)) and inp is not None and len(repr(inp)) < 60:
            msg = f"{msg} (got {inp!r})"
    if key and any(key == k or key.startswith(k + ".") for k in overridden):
        return Problem(f"--set {key}", msg)
    line = _find_line(text, loc) if text else None
    where = source + (f":{line}" if line else "") + (f" {key}" if key else "")
    return Problem(where, msg)


def _did_you_mean(loc: list[str]) -> str:
    model: type[BaseModel] = Profile
    for part in loc[:-1]:
        f = model.model_fields.get(part)
        ann = getattr(f, "annotation", None) if f else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return ""
        model = ann
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(loc[-1], allowed, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{'.'.join(loc[:-1] + close)}'?"
    return f"; allowed here: {', '.join(allowed)}"


_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\s*(#.*)?$")


def _find_line(text: str, loc: list[str]) -> int | None:
    """1-based line of ``loc``'s key in the TOML text (best effort; TOML parsers give none)."""
    if not loc:
        return None
    section, key = ".".join(loc[:-1]), loc[-1]
    current = ""
    section_line = None
    for i, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line)
        if m:
            current = m.group(1).replace('"', "").replace("'", "").replace(" ", "")
            if current == section:
                section_line = i
            continue
        if current == section and re.match(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return i
        if current == "" and section and re.match(
            rf"^\s*{re.escape(section)}\.{re.escape(key)}\s*=", line
        ):
            return i
    if current == "" and section == "" and section_line is None:
        return None
    # A whole missing/invalid section: point at its header.
    if len(loc) == 1:
        for i, line in enumerate(text.splitlines(), 1):
            m = _HEADER.match(line)
            if m and m.group(1) == key:
                return i
    return section_line


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj
