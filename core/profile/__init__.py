"""Training profiles: the schema (``schema``), TOML I/O (``io``), the field list (``fields``),
starting profiles (``templates``)."""

from tunedeck.core.profile.io import apply_set, dumps, load, loads, resolve_paths, save, validate
from tunedeck.core.profile.schema import SCHEMA_VERSION, Profile
from tunedeck.core.profile.templates import new_profile

__all__ = ["SCHEMA_VERSION", "Profile", "apply_set", "dumps", "load", "loads", "new_profile",
           "resolve_paths", "save", "validate"]
