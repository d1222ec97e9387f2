"""Apply a profile's ``[[data.prepare]]`` steps (and ``hf:`` sources) before the data is read.

``prepared_profile`` returns a copy of the profile whose ``data.train/validation/test`` point at
prepared Parquet files, plus the recipe to record in the run. The files live under
``$TUNEDECK_CACHE_DIR/prepared/KEY/`` where KEY hashes the steps, the seed and each original's
sha256: every reader of the profile (``profile check --data``, ``start``'s checks, the worker,
``eval``) gets the same rows, prepared once; the originals are only read. Each step is the very
function its ``tunedeck data`` command runs, so a profile's steps reproduce the CLI's rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from tunedeck.core.prepare.hub import cache_root, hub_to_parquet, is_hub, parse_ref
from tunedeck.core.prepare.recipe import sha256_of
from tunedeck.core.prepare.report import OpReport

ROLES = ("train", "validation", "test")
PIPELINE_VERSION = 1


def prepared_profile(profile: Any) -> tuple[Any, dict[str, Any] | None]:
    """(the profile to read, the preparation record or None when there is nothing to do)."""
    d = profile.data
    sources = {r: getattr(d, r) for r in ROLES if getattr(d, r)}
    hub = {r: p for r, p in sources.items() if is_hub(p)}
    if not d.prepare and not hub:
        return profile, None
    for role, value in hub.items():
        sources[role] = str(hub_to_parquet(parse_ref(value, default_split=role)))
    record: dict[str, Any] = {"hub": {r: hub[r] for r in hub}} if hub else {}
    out = profile.model_copy(deep=True)
    if hub and not d.prepare:
        out.data.format = "auto"  # the hub's splits are .parquet files, named so
    if d.prepare:
        record["inputs"] = {r: {"path": getattr(d, r), "sha256": sha256_of(Path(p))}
                            for r, p in sources.items()}
        files, steps = _run_steps(profile, sources, record["inputs"])
        sources = files
        record["steps"] = steps
        record["prepared"] = files
        out.data.format = "parquet"
    for role, path in sources.items():
        setattr(out.data, role, path)
    out.data.prepare = []
    return out, record


def _key(profile: Any, inputs: dict[str, dict[str, str]]) -> str:
    blob = json.dumps({
        "v": PIPELINE_VERSION, "seed": profile.training.seed,
        "columns": [profile.data.text_column, profile.data.label_column,
                    profile.data.prompt_column, profile.data.response_column],
        "steps": [s.model_dump(mode="json") for s in profile.data.prepare],
        "files": {r: i["sha256"] for r, i in inputs.items()},
    }, sort_keys=True)
    return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()


def _run_steps(profile: Any, sources: dict[str, str], inputs: dict[str, dict[str, str]]
               ) -> tuple[dict[str, str], list[dict]]:
    folder = cache_root() / "prepared" / _key(profile, inputs)
    done = folder / "prepared.json"
    if done.is_file():
        saved = json.loads(done.read_text(encoding="utf-8"))
        if all(Path(p).is_file() for p in saved["files"].values()):
            return saved["files"], saved["steps"]
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    run = _StepRun(profile, tmp, carve=not (sources.keys() - {"train"}) and _splits_wanted(profile))
    files = {}
    for role, path in sources.items():
        files.update(run.apply(role, Path(path), 0))
    files = {r: str(folder / Path(p).name) for r, p in files.items()}
    (tmp / "prepared.json").write_text(json.dumps({"files": files, "steps": run.steps},
                                                  indent=1))
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return files, run.steps


def _splits_wanted(profile: Any) -> bool:
    return any(s.op == "augment" for s in profile.data.prepare) and \
        (profile.data.split[1] > 0 or profile.data.split[2] > 0)


class _StepRun:
    """Runs the steps file by file. Before the first augment step, a train file without given
    validation/test files is split (``data.split``, seeded, stratified) so that augmented rows
    only ever land in train; the carved splits go on through the remaining steps."""

    def __init__(self, profile: Any, tmp: Path, carve: bool):
        self.profile, self.tmp, self.carve = profile, tmp, carve
        self.steps: list[dict[str, Any]] = []

    def apply(self, role: str, current: Path, first: int) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for i, step in enumerate(self.profile.data.prepare[first:], first):
            if step.op == "augment" and role == "train" and self.carve:
                self.carve = False
                parts = carve_splits(current, self.profile, self.tmp)
                current = parts.pop("train")
                for other, path in parts.items():
                    out.update(self.apply(other, path, i))
            if role not in step.apply_to or (step.op == "augment" and role != "train"):
                continue
            target = self.tmp / f"{role}.{i + 1}.{step.op}.parquet"
            report = run_step(step, current, target, self.profile)
            self.steps.append({"file": role, "step": i + 1, "op": step.op,
                               "rows_in": report.rows_in, "rows_out": report.rows_out,
                               "dropped": report.dropped, "changed": report.changed,
                               **({"conflicts": report.extra["conflicts"]["texts"]}
                                  if "conflicts" in report.extra else {})})
            current = target
        if current.parent != self.tmp:  # no step changed it: the same format as the others
            from tunedeck.core.prepare.convert import convert_file

            target = self.tmp / f"{role}.0.copy.parquet"
            convert_file(current, target, "parquet")
            current = target
        out[role] = current
        return out


def carve_splits(path: Path, profile: Any, tmp: Path) -> dict[str, Path]:
    """train/validation/test Parquet files from ``path`` by ``data.split`` (training's rule)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tunedeck.core.data.split import TEST, TRAIN, VALIDATION, assign_splits
    from tunedeck.core.prepare.split_op import _ids

    table = pq.read_table(path)
    labels = None
    if profile.task.type == "classification":
        want = profile.data.label_column
        col = next((c for c in table.column_names if c == want), None) or next(
            (c for c in table.column_names if c.lower() == want.lower()), None)
        labels = _ids(table.column(col)) if col else None
    _, f_val, f_test = profile.data.split
    codes = assign_splits(labels, table.num_rows, f_val, f_test, profile.training.seed)
    out = {}
    for role, code in (("train", TRAIN), ("validation", VALIDATION), ("test", TEST)):
        part = table.filter(pa.array(codes == code))
        if role == "train" or part.num_rows:
            out[role] = tmp / f"{role}.carved.parquet"
            pq.write_table(part, out[role])
    return out


def run_step(step: Any, src: Path, out: Path, profile: Any) -> OpReport:
    """One ``[[data.prepare]]`` step: the same call its ``tunedeck data`` command makes."""
    d = profile.data
    label = step.label_column if step.label_column is not None else (
        d.label_column if profile.task.type == "classification" else "")
    if step.op == "clean":
        from tunedeck.core.prepare.clean import CleanOptions, clean_file
        from tunedeck.core.prepare.textops import TextRules

        texts = step.text_columns or [c for c in (d.prompt_column, d.response_column) if c] \
            or [d.text_column]
        rules = TextRules(lowercase=step.lowercase, strip_urls=step.strip_urls,
                          strip_html=step.strip_html, strip_emails=step.strip_emails,
                          keep_chars=step.keep_chars, nfc=step.nfc)
        options = CleanOptions(rules=rules, text_columns=tuple(texts), label_column=label,
                               dedup=step.dedup, near_dup=step.near_dup,
                               drop_empty=step.drop_empty)
        return clean_file(src, out, options, "parquet")
    if step.op == "convert":
        from tunedeck.core.prepare.convert import ConvertOptions, convert_file, parse_maps

        options = ConvertOptions(renames=tuple(step.rename.items()),
                                 maps=parse_maps([f"{k}={v}" for k, v in step.map.items()]),
                                 chat=step.chat, messages_column=step.messages_column,
                                 system=step.system, keep_sources=step.keep_sources)
        return convert_file(src, out, "parquet", options)
    from tunedeck.core.prepare.augment import AugmentOptions, augment_file

    options = AugmentOptions(ops=tuple(step.ops), per_row=step.per_row, alpha=step.alpha,
                             synonyms=step.synonyms, model=step.model,
                             text_column=step.text_column or d.text_column,
                             label_column=label or None,
                             seed=step.seed if step.seed is not None else profile.training.seed)
    return augment_file(src, out, options, "parquet")



def format_prepare(record: dict[str, Any]) -> str:
    """The preparation record as lines for ``profile check --data``."""
    lines = [f"prepare: {role} from {src}" for role, src in (record.get("hub") or {}).items()]
    for s in record.get("steps", []):
        dropped = ", ".join(f"{n:,} {k.replace('_', '-')}" for k, n in s["dropped"].items())
        lines.append(f"prepare: step {s['step']} {s['op']} on {s['file']}: {s['rows_in']:,} -> "
                     f"{s['rows_out']:,} rows" + (f" (dropped {dropped})" if dropped else "")
                     + (f"; {s['conflicts']:,} text(s) with conflicting labels"
                        if s.get("conflicts") else ""))
    return "\n".join(lines)


def write_run_recipe(run_path: Path, data_stats: dict[str, Any]) -> Path | None:
    """``RUN/prepare.recipe.toml``: the steps, the originals' sha256, what each step did and
    where the prepared files are, so a run's data can be made again from the originals."""
    import tomli_w

    from tunedeck.core.prepare.recipe import _toml_safe, _version

    record = data_stats.get("prepare")
    if not record:
        return None
    doc = _toml_safe({"tunedeck_version": _version(), **record})
    path = run_path / "prepare.recipe.toml"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(tomli_w.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)
    return path
