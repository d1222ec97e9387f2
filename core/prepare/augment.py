"""``tunedeck data augment``: more training rows for small classification sets.

Token-level operations after EDA (Wei & Zou, 2019), each seeded and touching ``alpha`` of the
words (at least one):

- ``synonym``: replace words by a synonym (from ``--synonyms`` FILE, else NLTK's WordNet when
  its data is installed; it cannot be downloaded offline);
- ``insert``: insert a synonym of a word at a random position;
- ``swap``: swap two words;
- ``delete``: drop each word with probability ``alpha`` (one always stays).

Each original row gets at most ``per_row`` new rows, each made by one operation (taken in turn);
a new row equal to its original or to another new row is not kept. New rows carry the original's
row number (1-based) in ``augmented_from``; original rows have it empty. Given a split folder,
only ``train`` is augmented: validation and test are copied unchanged (augmenting them would
grade the model on rows it was trained on).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc

from tunedeck.core.errors import DataError

MARK = "augmented_from"
OPS = ("synonym", "insert", "swap", "delete")
_WORD = re.compile(r"^[A-Za-z][A-Za-z'-]*$")


@dataclass(frozen=True)
class AugmentOptions:
    ops: tuple[str, ...] = ()  # empty: all four with a synonym source, else swap + delete
    per_row: int = 2
    alpha: float = 0.1
    synonyms: str | None = None  # a word-list file
    model: str | None = None  # paraphrase with this model instead of token operations
    text_column: str | None = None
    label_column: str | None = None
    seed: int = 42

    def options(self) -> dict[str, Any]:
        return {"ops": list(self.ops), "per_row": self.per_row, "alpha": self.alpha,
                "synonyms": self.synonyms, "model": self.model,
                "text_column": self.text_column, "label_column": self.label_column}


def parse_ops(text: str | None) -> tuple[str, ...]:
    if not text or text == "auto":
        return ()
    ops = tuple(o.strip() for o in text.split(",") if o.strip())
    bad = [o for o in ops if o not in OPS]
    if bad or not ops:
        raise DataError(f"--ops {text!r}: unknown operation {bad[0] if bad else ''!r}; use any of "
                        f"{', '.join(OPS)} (comma-separated)")
    return ops


# --- synonyms -----------------------------------------------------------------------------

def read_synonyms(path: str | Path) -> dict[str, list[str]]:
    """word -> its synonyms, from lines of comma- or tab-separated words (one group a line)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{p}: cannot read the synonym list ({e}); give a UTF-8 text file with "
                        "one group of synonyms per line, e.g. 'good, great, fine'") from None
    table: dict[str, list[str]] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = [w.strip().lower() for w in re.split(r"[,\t]", line) if w.strip()]
        if len(words) < 2:
            raise DataError(f"{p}:{n}: a synonym group needs two or more words separated by "
                            f"commas or tabs (got {line.strip()!r})")
        for w in words:
            table.setdefault(w, []).extend(x for x in words if x != w and x not in table[w])
    if not table:
        raise DataError(f"{p}: holds no synonym groups; one group per line: 'good, great, fine'")
    return table


def wordnet_synonyms() -> Callable[[str], list[str]] | None:
    """NLTK WordNet lookups when its corpus is installed locally; None otherwise."""
    try:
        import nltk
        from nltk.corpus import wordnet

        nltk.data.find("corpora/wordnet")
        wordnet.ensure_loaded()
    except Exception:  # noqa: BLE001 - nltk missing, or its data not installed (LookupError)
        return None

    def lookup(word: str) -> list[str]:
        names = {l.name().replace("_", " ").lower() for s in wordnet.synsets(word)
                 for l in s.lemmas()}
        names.discard(word)
        return sorted(names)

    return lookup


def synonym_source(o: AugmentOptions) -> Callable[[str], list[str]] | None:
    if o.synonyms:
        table = read_synonyms(o.synonyms)
        return lambda w: table.get(w, [])
    return wordnet_synonyms()


# --- token operations ---------------------------------------------------------------------

def _match_case(new: str, old: str) -> str:
    return new[:1].upper() + new[1:] if old[:1].isupper() else new


def augment_text(text: str, op: str, alpha: float, rng: random.Random,
                 synonyms: Callable[[str], list[str]] | None) -> str:
    words = text.split()
    if not words:
        return text
    n = max(1, int(alpha * len(words)))
    if op in ("synonym", "insert"):
        assert synonyms is not None
        options = [(i, synonyms(w.lower())) for i, w in enumerate(words) if _WORD.match(w)]
        options = [(i, s) for i, s in options if s]
        rng.shuffle(options)
        for i, choices in options[:n]:
            pick = rng.choice(choices)
            if op == "synonym":
                words[i] = _match_case(pick, words[i])
            else:
                words.insert(rng.randrange(len(words) + 1), pick)
    elif op == "swap" and len(words) > 1:
        for _ in range(n):
            i, j = rng.sample(range(len(words)), 2)
            words[i], words[j] = words[j], words[i]
    elif op == "delete" and len(words) > 1:
        kept = [w for w in words if rng.random() >= alpha]
        words = kept or [rng.choice(words)]
    return " ".join(words)


def token_augmenter(o: AugmentOptions) -> Callable[[list[str]], list[list[str]]]:
    """texts -> each text's new variants (at most ``per_row``, distinct, not the original)."""
    synonyms = synonym_source(o)
    ops = o.ops or (OPS if synonyms else ("swap", "delete"))
    if synonyms is None and any(op in ("synonym", "insert") for op in ops):
        raise DataError("synonym and insert need synonyms: WordNet's data is not installed here "
                        "(nltk cannot download it offline); give --synonyms FILE (one group per "
                        "line: 'good, great, fine') or --ops swap,delete")
    rng = random.Random(o.seed)

    def variants(texts: list[str]) -> list[list[str]]:
        out = []
        for text in texts:
            seen = {text}
            new: list[str] = []
            for k in range(o.per_row * 3):  # a few extra tries for variants that repeat
                if len(new) >= o.per_row:
                    break
                v = augment_text(text, ops[k % len(ops)], o.alpha, rng, synonyms)
                if v not in seen:
                    seen.add(v)
                    new.append(v)
            out.append(new)
        return out

    return variants


def augment_table(table: pa.Table, o: AugmentOptions, text: str,
                  variants: Callable[[list[str]], list[list[str]]]) -> tuple[pa.Table, int]:
    """The table with its new rows appended (marked in ``augmented_from``), and how many."""
    rows = table.to_pylist()
    texts = ["" if r.get(text) is None else str(r[text]) for r in rows]
    new_rows = []
    for i, (row, vs) in enumerate(zip(rows, variants(texts))):
        for v in vs:
            new_rows.append({**row, text: v, MARK: i + 1})
    originals = table.append_column(MARK, pa.nulls(table.num_rows, pa.int64())) \
        if MARK not in table.column_names else table
    if not new_rows:
        return originals, 0
    added = pa.Table.from_pylist(new_rows, schema=originals.schema)
    return pa.concat_tables([originals, added]), len(new_rows)


def _augment_one(table: pa.Table, o: AugmentOptions, src: str, report: Any,
                 variants: Callable[[list[str]], list[list[str]]]) -> pa.Table:
    from tunedeck.core.data.table_stats import guess_columns

    text = o.text_column or guess_columns(table, None, o.label_column)[0]
    if not text or text not in table.column_names:
        raise DataError(f"{src}: has no text column {text!r}; its columns are: "
                        f"{', '.join(table.column_names)} (use --text)")
    originals, earlier = table, None
    if MARK in table.column_names:  # a second pass augments the originals only
        # (an empty mark is an original: CSV writes null as "", so marks read back as strings)
        mark = pc.cast(table.column(MARK), pa.string())
        is_original = pc.or_kleene(pc.is_null(mark), pc.equal(mark, "")).fill_null(True)
        originals = table.filter(is_original).drop_columns([MARK])
        earlier = table.filter(pc.invert(is_original))
    out, added = augment_table(originals, o, text, variants)
    if earlier is not None:
        out = pa.concat_tables([out, earlier.cast(out.schema)])
    report.rows_in += table.num_rows
    report.rows_out += out.num_rows
    report.changed += added
    new = out.slice(originals.num_rows, added).to_pylist()
    for row in new[:20]:
        before = originals.slice(row[MARK] - 1, 1).to_pylist()[0]
        report.add_preview(row[MARK], before, row, "augmented")
    report.extra["added"] = report.extra.get("added", 0) + added
    return out


def _variants_for(o: AugmentOptions) -> Callable[[list[str]], list[list[str]]]:
    if o.per_row < 1:
        raise DataError(f"--per-row {o.per_row}: give 1 or more new rows per original row")
    if not 0 < o.alpha <= 0.5:
        raise DataError(f"--alpha {o.alpha}: give a share of words between 0 and 0.5, e.g. 0.1")
    if o.model:
        from tunedeck.core.prepare.paraphrase import model_augmenter

        return model_augmenter(o.model, o.per_row, o.seed)
    return token_augmenter(o)


def augment_file(src: str | Path, out: str | Path | None = None,
                 options: AugmentOptions | None = None, fmt: str | None = None,
                 dry_run: bool = False, progress: Any = None) -> Any:
    """Augment a file (-> ``NAME.augmented.EXT``) or a split folder's train (-> a new folder
    ``NAME.augmented/`` with validation and test copied unchanged)."""
    from tunedeck.core.prepare.leakage import split_files
    from tunedeck.core.prepare.recipe import write_recipe
    from tunedeck.core.prepare.report import OpReport
    from tunedeck.core.prepare.runner import resolve_output
    from tunedeck.core.prepare.split_op import _write_folder
    from tunedeck.core.prepare.streaming import Writer, open_source

    o = options or AugmentOptions()
    src = Path(src)
    report = OpReport("augment", str(src))
    variants = _variants_for(o)
    folder = src.is_dir() and not (src / "state.json").exists() \
        and not (src / "dataset_dict.json").exists()
    files = split_files([src]) if folder else {"train": src}
    if "train" not in files:
        raise DataError(f"{src}: has no train split to augment")
    tables = {k: open_source(p).read_all() for k, p in files.items()}
    tables["train"] = _augment_one(tables["train"], o, str(files["train"]), report, variants)
    if progress:
        progress(1, 1)
    in_fmt = open_source(files["train"]).format
    path, out_fmt = resolve_output(src, out, "augmented", in_fmt, fmt)
    if folder and out is None:
        path = path.with_suffix("") if path.suffix else path
    if not dry_run:
        if folder:
            _write_folder(path, out_fmt, tables)
        else:
            w = Writer(path, out_fmt)
            w.write(tables["train"])
            w.commit(tables["train"].schema)
        report.output = str(path)
        write_recipe(path, report, o.options(), list(files.values()), o.seed)
    return report
