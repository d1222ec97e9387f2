"""tunedeck data augment: seeded token operations with exact counts, marks, train split only,
and paraphrases through a (tiny, locally built) causal model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tunedeck.core.cli import main
from tunedeck.core.data.reader import read_source
from tunedeck.core.prepare.augment import augment_text, wordnet_synonyms
from prepare_helpers import run_json, write_rows

SYNONYMS = "# groups of synonyms\ngood, great, fine\nmovie, film\nbad\tawful\tterrible\n"


def small_set(tmp_path: Path) -> Path:
    rows = [("text", "label")]
    for i in range(5):
        rows.append((f"a good movie with great acting number {i}", "pos"))
        rows.append((f"a bad film with awful acting number {i}", "neg"))
    return write_rows(tmp_path / "small.csv", rows)


def test_token_operations_are_seeded_and_use_the_word_list(tmp_path, capsys):
    src = small_set(tmp_path)
    syn = tmp_path / "syn.txt"
    syn.write_text(SYNONYMS)
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    r = run_json(["augment", str(src), "--synonyms", str(syn), "--per-row", "3",
                  "--ops", "synonym", "--alpha", "0.3"], capsys)
    assert r["rows_in"] == 10 and r["added"] == 30 and r["rows_out"] == 40
    rows = read_source(Path(r["output"])).table.to_pylist()
    originals = [row for row in rows if row["augmented_from"] == ""]  # CSV: null is ""
    new = [row for row in rows if row["augmented_from"] != ""]
    assert len(originals) == 10 and len(new) == 30
    for row in new:  # a synonym swap keeps the label and changes only listed words
        orig = originals[int(row["augmented_from"]) - 1]
        assert row["label"] == orig["label"] and row["text"] != orig["text"]
        changed = {(a, b) for a, b in zip(orig["text"].split(), row["text"].split()) if a != b}
        assert changed and all(a in {"good", "great", "movie", "bad", "film", "awful"}
                               for a, _ in changed)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before
    again = run_json(["augment", str(src), "--synonyms", str(syn), "--per-row", "3", "--ops",
                      "synonym", "--alpha", "0.3", "--out", str(tmp_path / "again.csv")], capsys)
    assert Path(again["output"]).read_text() == Path(r["output"]).read_text()


def test_swap_delete_insert_shapes():
    import random

    rng = random.Random(0)
    text = "one two three four five six seven eight nine ten"
    swapped = augment_text(text, "swap", 0.1, rng, None)
    assert sorted(swapped.split()) == sorted(text.split()) and swapped != text
    deleted = augment_text(text, "delete", 0.3, rng, None)
    assert 1 <= len(deleted.split()) < 10 and set(deleted.split()) <= set(text.split())
    inserted = augment_text("a good day", "insert", 0.5, rng, lambda w: ["fine"] if w == "good" else [])
    assert inserted.split().count("fine") == 1 and len(inserted.split()) == 4


def test_split_folder_only_train_grows(tmp_path, capsys):
    src = small_set(tmp_path)
    split = run_json(["split", str(src), "--fractions", "60/20/20"], capsys)
    folder = Path(split["output"])
    r = run_json(["augment", str(folder), "--ops", "swap,delete", "--per-row", "1"], capsys)
    out = Path(r["output"])
    assert out == tmp_path / "small.split.augmented"
    for name in ("validation", "test"):
        assert (out / f"{name}.csv").read_bytes() == (folder / f"{name}.csv").read_bytes()
    train = read_source(out / "train.csv").table.to_pylist()
    assert len(train) == 6 + r["added"] and 0 < r["added"] <= 6
    assert r["rows_in"] == 6


def test_synonyms_need_a_source_offline(tmp_path, capsys):
    src = small_set(tmp_path)
    if wordnet_synonyms() is not None:
        pytest.skip("WordNet data is installed here")
    capsys.readouterr()
    assert main(["data", "augment", str(src), "--ops", "synonym"]) == 2
    assert "--synonyms FILE" in capsys.readouterr().err
    r = run_json(["augment", str(src), "--dry-run"], capsys)  # auto: swap + delete
    assert r["output"] is None and r["added"] > 0
    bad = tmp_path / "bad.txt"
    bad.write_text("lonely\n")
    assert main(["data", "augment", str(src), "--synonyms", str(bad)]) == 2
    assert f"{bad}:1:" in capsys.readouterr().err


def test_paraphrase_with_a_local_causal_model(tmp_path, capsys):
    from transformers import GPT2Config, GPT2LMHeadModel

    from tdhelpers import TINY_GPT
    from tunedeck.core.models import train_tokenizer

    src = small_set(tmp_path)
    texts = [line for line in src.read_text().splitlines()] * 5
    tok = train_tokenizer(texts, "gpt2", 400)
    cfg = {k: v for k, v in TINY_GPT.items() if k != "model_type"}
    model = GPT2LMHeadModel(GPT2Config(**cfg, eos_token_id=0, bos_token_id=0))
    model_dir = tmp_path / "tiny-gpt"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    r = run_json(["augment", str(src), "--model", str(model_dir), "--per-row", "2"], capsys)
    rows = read_source(Path(r["output"])).table.to_pylist()
    new = [row for row in rows if row["augmented_from"] != ""]
    assert r["added"] == len(new) and 0 < len(new) <= 20
    per_orig: dict[int, int] = {}
    for row in new:
        per_orig[row["augmented_from"]] = per_orig.get(row["augmented_from"], 0) + 1
        assert row["text"].strip()
    assert max(per_orig.values()) <= 2
