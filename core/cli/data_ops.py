"""The ``tunedeck data`` operations' CLI side: options -> core call -> (JSON, lines, exit code).

Each ``run_OP(args, progress)`` returns the JSON object ``--json`` prints, the lines a person
reads, and the exit code; ``data_commands`` prints whichever was asked for.
"""

from __future__ import annotations

import argparse
from typing import Any

from tunedeck.core.prepare.report import OpReport

Result = tuple[dict[str, Any], list[str], int]


def _short(row: dict[str, Any] | None, width: int = 60) -> str:
    if row is None:
        return "-"
    text = " | ".join(f"{v}" for v in row.values()).replace("\n", "\\n")  # one line a row
    return text if len(text) <= width else text[: width - 3] + "..."


def report_lines(r: OpReport) -> list[str]:
    """The summary a person reads: counts, then what was written, then a short preview."""
    dropped = ", ".join(f"{n:,} {k.replace('_', '-')}" for k, n in r.dropped.items()) or "none"
    lines = [f"{r.op}: {r.input}: {r.rows_in:,} rows in, {r.rows_out:,} out "
             f"(dropped: {dropped}; changed: {r.changed:,})"]
    conflicts = r.extra.get("conflicts")
    if conflicts and conflicts["texts"]:
        lines.append(f"conflicting labels: {conflicts['texts']:,} text(s) carry more than one "
                     f"label ({conflicts['rows']:,} row(s)); e.g.")
        for ex in conflicts["examples"]:
            lines.append(f"  row {ex['row']}: {ex['text'][:60]!r} labelled "
                         f"{' and '.join(map(repr, ex['labels']))}")
    if r.preview:
        lines.append("preview (row: before -> after):")
        for p in r.preview[:8]:
            after = "dropped (" + p["reason"].replace("_", "-") + ")" if p["after"] is None \
                else _short(p["after"], 40)
            lines.append(f"  {p['row']}: {_short(p['before'], 40)} -> {after}")
    if r.output:
        lines.append(f"wrote {r.output}")
        lines.append(f"recipe {r.recipe}")
    else:
        lines.append("dry run: nothing written")
    return lines


def run_clean(a: argparse.Namespace, progress: Any) -> Result:
    from tunedeck.core.prepare.clean import CleanOptions, clean_file
    from tunedeck.core.prepare.textops import TextRules, keep_chars_pattern

    if a.keep_chars:
        keep_chars_pattern(a.keep_chars)  # a bad class is a usage error before any reading
    if a.near_dup is not None and not 0 < a.near_dup < 1:
        from tunedeck.core.errors import DataError

        raise DataError(f"--near-dup {a.near_dup}: give a similarity between 0 and 1, e.g. 0.8")
    rules = TextRules(lowercase=a.lowercase, strip_urls=a.strip_urls, strip_html=a.strip_html,
                      strip_emails=a.strip_emails, keep_chars=a.keep_chars)
    options = CleanOptions(rules=rules, text_columns=tuple(a.text or ()), label_column=a.label,
                           dedup=a.dedup, near_dup=a.near_dup, drop_empty=not a.keep_empty)
    r = clean_file(a.input, a.out, options, a.format, a.dry_run, progress)
    return r.as_json(), report_lines(r), 0


def run_split(a: argparse.Namespace, progress: Any) -> Result:
    from tunedeck.core.prepare.leakage import format_leakage
    from tunedeck.core.prepare.split_op import parse_fractions, split_file, split_summary

    r = split_file(a.input, a.out, parse_fractions(a.fractions), a.seed, a.label, a.group_by,
                   a.text, not a.no_stratify, a.format, a.dry_run, progress)
    lines = report_lines(r)[:1] + split_summary(r)
    if "leakage" in r.extra:
        lines.append(format_leakage(r.extra["leakage"]))
    lines += [f"wrote {r.output}/", f"recipe {r.recipe}"] if r.output else ["dry run: nothing written"]
    return r.as_json(), lines, 0


def run_convert(a: argparse.Namespace, progress: Any) -> Result:
    from tunedeck.core.prepare.convert import ConvertOptions, convert_file, parse_maps, parse_pairs

    options = ConvertOptions(renames=tuple(parse_pairs(a.rename, "--rename")),
                             maps=parse_maps(a.map), chat=a.chat,
                             messages_column=a.messages_column, system=a.system,
                             keep_sources=a.keep_sources)
    r = convert_file(a.input, a.out, a.to_format or a.format, options, a.dry_run, progress)
    return r.as_json(), report_lines(r), 0


def run_leakage(a: argparse.Namespace, progress: Any) -> Result:
    from pathlib import Path

    from tunedeck.core.prepare.leakage import format_leakage, leakage_in_files

    result = leakage_in_files([Path(p) for p in a.paths], a.text)
    return result, format_leakage(result).splitlines(), 1 if result["shared_texts"] else 0


def run_stats(a: argparse.Namespace, progress: Any) -> Result:
    from pathlib import Path

    from tunedeck.core.cli.common import runs_dir_of
    from tunedeck.core.prepare.stats import data_stats, stats_lines

    runs_dir = runs_dir_of(a) if getattr(a, "runs_dir", None) else Path("runs")
    s = data_stats(a.input, a.text, a.label, a.tokenizer, a.max_length, runs_dir)
    return s, stats_lines(s), 0


def run_augment(a: argparse.Namespace, progress: Any) -> Result:
    from tunedeck.core.prepare.augment import AugmentOptions, augment_file, parse_ops

    options = AugmentOptions(ops=parse_ops(a.ops), per_row=a.per_row, alpha=a.alpha,
                             synonyms=a.synonyms, model=a.model, text_column=a.text,
                             label_column=a.label, seed=a.seed)
    r = augment_file(a.input, a.out, options, a.format, a.dry_run, progress)
    lines = report_lines(r)
    lines.insert(1, f"added {r.extra.get('added', 0):,} augmented rows (marked in "
                    "augmented_from)")
    return r.as_json(), lines, 0


def run_pull(a: argparse.Namespace, progress: Any) -> Result:
    from tunedeck.core.prepare.hub import pull

    r = pull(a.name, a.config, a.split, a.out)
    lines = [f"{r['dataset']}: " + ", ".join(f"{k} {v:,} rows" for k, v in r["splits"].items())
             + f"; columns: {', '.join(r['columns'])}"]
    lines.append(f"wrote {r['output']}" if r["output"] else
                 "in the datasets cache: use data.train = \"hf:NAME[:CONFIG][@SPLIT]\"")
    return r, lines, 0
