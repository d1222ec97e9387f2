"""``tunedeck data clean|split|convert|augment|stats|leakage|pull``: parse and print only.

What each operation does lives in ``tunedeck.core.prepare``. With ``--json`` stdout carries one
JSON object at the end (``OpReport.as_json``) and stderr ``progress DONE TOTAL`` lines (the TUI
reads both); without it, a summary for people and a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import json

from typing import Any

from tunedeck.core.cli.common import stdout_for_json

OUT_HELP = "where to write (default: beside the input, e.g. tickets.clean.csv)"
FORMAT_CHOICES = ["csv", "tsv", "json", "jsonl", "parquet", "arrow"]


def _common(p: argparse.ArgumentParser, out_help: str = OUT_HELP) -> None:
    p.add_argument("input", metavar="IN", help="a data file (csv, tsv, json, jsonl, parquet, "
                   "txt) or a datasets save_to_disk folder")
    p.add_argument("--out", metavar="OUT", help=out_help)
    p.add_argument("--format", choices=FORMAT_CHOICES, help="output format (default: OUT's "
                   "extension, else the input's)")
    p.add_argument("--dry-run", action="store_true", help="count and preview, write nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object {op, input, output, "
                   "rows_in, rows_out, dropped, changed, preview, recipe, ...}; progress lines "
                   "'progress DONE TOTAL' on stderr")


def add_data_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data", help="prepare datasets: clean, split, convert, augment, stats, leakage, pull",
        description="Every operation writes a NEW dataset (the input is never modified) and a "
                    "recipe OUT.recipe.toml beside it (operation, options, seed, input sha256, "
                    "row counts). See docs/data.md.")
    ds = p.add_subparsers(dest="data_cmd", required=True, metavar="OP")
    _add_clean(ds)
    _add_split(ds)
    _add_convert(ds)
    _add_augment(ds)
    _add_stats(ds)
    _add_leakage(ds)
    _add_pull(ds)


def _add_clean(ds: argparse._SubParsersAction) -> None:
    q = ds.add_parser("clean", help="normalise text; drop empty rows, duplicates, near-duplicates",
                      description="Whitespace normalisation and Unicode NFC always; the other "
                                  "rules on request. Text rules apply to the text columns, the "
                                  "label is only stripped. Conflicting labels for the same text "
                                  "are reported, not dropped.")
    _common(q)
    q.add_argument("--text", action="append", metavar="COL", help="a text column (repeatable; "
                   "default: 'text', else the longest text column)")
    q.add_argument("--label", metavar="COL", help="the label column (default: 'label' or a "
                   "guess); --label '' for none")
    q.add_argument("--lowercase", action="store_true", help="lowercase the text")
    q.add_argument("--strip-urls", action="store_true", help="remove URLs (http://, www.)")
    q.add_argument("--strip-html", action="store_true", help="remove HTML tags, decode entities")
    q.add_argument("--strip-emails", action="store_true", help="remove e-mail addresses")
    q.add_argument("--keep-chars", metavar="CLASS", help="remove characters outside CLASS: "
                   "ascii, latin, letters, printable, or a class body such as 'a-zA-Z0-9 .,!?'")
    q.add_argument("--dedup", choices=["none", "exact", "normalized"], default="exact",
                   help="drop rows equal to an earlier one: exact (after cleaning; default) or "
                        "normalized (case, punctuation and spacing ignored)")
    q.add_argument("--near-dup", type=float, metavar="T", help="also drop near-duplicates: "
                   "MinHash Jaccard similarity of character 5-grams >= T (e.g. 0.8)")
    q.add_argument("--keep-empty", action="store_true", help="keep rows whose text is empty")
    q.set_defaults(fn=cmd_data, json_errors=True)


def _add_split(ds: argparse._SubParsersAction) -> None:
    q = ds.add_parser("split", help="train/validation/test files, stratified, seeded, grouped",
                      description="Writes OUT/ (default NAME.split/) with train, validation and "
                                  "test files in the input's format, and checks them for "
                                  "leakage (texts in more than one split).")
    _common(q, "the folder to write (default NAME.split/ beside the input)")
    q.add_argument("--fractions", default="80/10/10", metavar="T/V/T", help="train/validation/"
                   "test shares (default 80/10/10; '0.8,0.1,0.1' works too)")
    q.add_argument("--seed", type=int, default=42, help="seed (default 42)")
    q.add_argument("--label", metavar="COL", help="stratify by COL (default: the label column)")
    q.add_argument("--no-stratify", action="store_true", help="plain random split")
    q.add_argument("--group-by", metavar="COL", help="keep rows with the same COL value in one "
                   "split (fractions then count groups)")
    q.add_argument("--text", metavar="COL", help="the text column for the leakage check")
    q.set_defaults(fn=cmd_data, json_errors=True)


def _add_convert(ds: argparse._SubParsersAction) -> None:
    q = ds.add_parser("convert", help="change format; rename/map columns; chat <-> pairs",
                      description="--map NEW=A+B joins columns A and B with a blank line between "
                                  "non-empty values (prompt=instruction+input); NEW=A copies. "
                                  "Columns a mapping reads are dropped unless --keep-sources.")
    _common(q, "where to write (default: beside the input, named by --to)")
    q.add_argument("--to", dest="to_format", choices=FORMAT_CHOICES, help="the output format")
    q.add_argument("--rename", action="append", metavar="OLD=NEW", help="rename a column")
    q.add_argument("--map", action="append", metavar="NEW=A+B", help="build a column from others")
    q.add_argument("--keep-sources", action="store_true", help="keep the columns --map read")
    q.add_argument("--chat", choices=["to-pairs", "from-pairs"], help="messages list -> "
                   "prompt/response, or back")
    q.add_argument("--messages-column", default="messages", help="the chat column (default "
                   "messages)")
    q.add_argument("--system", help="with --chat from-pairs: a system message put first")
    q.set_defaults(fn=cmd_data, json_errors=True)


def _add_augment(ds: argparse._SubParsersAction) -> None:
    q = ds.add_parser("augment", help="more training rows for small classification sets",
                      description="Token-level operations (synonym replacement from --synonyms "
                                  "or WordNet when its data is installed, random insertion, swap, "
                                  "deletion) or --model paraphrases. New rows are marked in the "
                                  "column augmented_from (the original's row) and, for a split "
                                  "folder, only ever added to train.")
    _common(q, "where to write (default NAME.augmented.EXT; a folder for a split folder)")
    q.add_argument("--ops", default="auto", help="token operations, comma-separated: synonym, "
                   "insert, swap, delete (default auto: all four with a synonym source, else "
                   "swap,delete)")
    q.add_argument("--per-row", type=int, default=2, metavar="N", help="new rows per original "
                   "row at most (default 2)")
    q.add_argument("--alpha", type=float, default=0.1, help="share of words each operation "
                   "touches (default 0.1)")
    q.add_argument("--synonyms", metavar="FILE", help="word list: one line per group of "
                   "synonyms, comma or tab separated")
    q.add_argument("--model", metavar="RUN_OR_DIR", help="paraphrase with this seq2seq or causal "
                   "model (a run, or a model directory/hub id); GPU when present")
    q.add_argument("--text", metavar="COL", help="the text column (default: guessed)")
    q.add_argument("--label", metavar="COL", help="the label column (default: guessed)")
    q.add_argument("--seed", type=int, default=42, help="seed (default 42)")
    q.set_defaults(fn=cmd_data, json_errors=True)


def _add_stats(ds: argparse._SubParsersAction) -> None:
    q = ds.add_parser("stats", help="rows, columns, labels, lengths; token lengths and truncation")
    q.add_argument("input", metavar="IN", help="a data file or save_to_disk folder")
    q.add_argument("--text", metavar="COL", help="the text column (default: guessed)")
    q.add_argument("--label", metavar="COL", help="the label column (default: guessed)")
    q.add_argument("--tokenizer", metavar="RUN_OR_MODEL", help="count tokens with this run's "
                   "tokenizer, a model directory or hub id (offline: a cached one)")
    q.add_argument("--max-length", type=int, metavar="N", help="report the share of rows longer "
                   "than N tokens (default: the run's training.max_length, else 128)")
    q.add_argument("--json", action="store_true", help="the statistics as one JSON object")
    q.set_defaults(fn=cmd_data, json_errors=True)


def _add_leakage(ds: argparse._SubParsersAction) -> None:
    q = ds.add_parser("leakage", help="texts that occur in more than one split",
                      description="Compares normalised texts (case, punctuation and spacing "
                                  "ignored) across a split folder's files or the files given. "
                                  "Exit 1 when any text is shared.")
    q.add_argument("paths", nargs="+", metavar="DIR_OR_FILES")
    q.add_argument("--text", metavar="COL", help="the text column (default: guessed)")
    q.add_argument("--json", action="store_true", help="the result as one JSON object")
    q.set_defaults(fn=cmd_data, json_errors=True)


def _add_pull(ds: argparse._SubParsersAction) -> None:
    q = ds.add_parser("pull", help="load a Hugging Face hub dataset into the cache (and a file)",
                      description="datasets.load_dataset(NAME, CONFIG) into the normal datasets "
                                  "cache; offline, a cached dataset loads and a missing one is one "
                                  "error. --out writes a split to a file or folder.")
    q.add_argument("name", metavar="NAME", help="hub id, e.g. imdb; or hf:NAME[:CONFIG]")
    q.add_argument("--config", help="the dataset's configuration")
    q.add_argument("--split", help="one split (default: all)")
    q.add_argument("--out", metavar="OUT", help="write the split (default train) there")
    q.add_argument("--json", action="store_true", help="the result as one JSON object")
    q.set_defaults(fn=cmd_data, json_errors=True)


def cmd_data(a: argparse.Namespace) -> int:
    from tunedeck.core.prepare.streaming import progress_printer

    progress = progress_printer(a.data_cmd, a.json) if hasattr(a, "dry_run") else None
    with stdout_for_json(a.json):
        result, lines, code = _run(a, progress)
    if a.json:
        print(json.dumps(result, ensure_ascii=False, default=str), flush=True)
    else:
        print("\n".join(lines))
    return code


def _run(a: argparse.Namespace, progress: Any) -> tuple[dict[str, Any], list[str], int]:
    from tunedeck.core.cli import data_ops

    handler = getattr(data_ops, f"run_{a.data_cmd}")
    return handler(a, progress)


