"""tunedeck data clean: crafted files with exact expected counts; the original never changes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tunedeck.core.cli import main
from tunedeck.core.prepare.recipe import read_recipe

ROWS = [
    ("text", "label", "id"),
    ("  Hello   World  ", "pos", "1"),       # whitespace -> changed
    ("Hello World", "pos", "2"),             # exact duplicate of 1 after cleaning
    ("hello world!", "pos", "3"),            # normalised duplicate of 1
    ("hello world", "neg", "4"),             # same normalised text, other label: conflict
    ("Cafe\u0301 au lait", "pos", "5"),      # NFD -> NFC: changed
    ("Café au lait", "pos", "6"),            # duplicate of 5 once NFC
    ("   ", "neg", "7"),                     # empty
    ("See https://example.com/x?a=1 or www.test.org now", "neg", "8"),
    ("<p>Bold &amp; <b>bright</b></p>", "pos", "9"),
    ("mail me@example.com today", "neg", "10"),
    ("The quick brown fox jumps over the lazy dog again and again", "pos", "11"),
    ("The quick brown fox jumped over the lazy dog again and again", "pos", "12"),  # near-dup
    ("Completely different sentence about the weather today", "neg", "13"),
]


def write_csv(path: Path, rows=ROWS) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def run_json(args: list[str], capsys) -> tuple[int, dict, str]:
    capsys.readouterr()
    rc = main(["data", *args, "--json"])
    out = capsys.readouterr()
    return rc, json.loads(out.out), out.err


def test_clean_defaults_exact_counts_and_report(tmp_path, capsys):
    src = write_csv(tmp_path / "t.csv")
    before = sha(src)
    rc, r, err = run_json(["clean", str(src)], capsys)
    assert rc == 0
    assert sha(src) == before
    out = tmp_path / "t.clean.csv"
    assert r["output"] == str(out) and out.is_file()
    assert r["rows_in"] == 13 and r["rows_out"] == 10
    assert r["dropped"] == {"empty": 1, "duplicate": 2}
    # rows 1 (spaces), 5 (NFC) and 9 (a space left by nothing? no: html untouched) changed
    assert r["changed"] == 2
    assert {p["row"]: p["reason"] for p in r["preview"]} == {1: "changed", 2: "duplicate",
                                                               5: "changed", 6: "duplicate",
                                                               7: "empty"}
    assert r["preview"][0]["before"]["text"] == "  Hello   World  "
    assert r["preview"][0]["after"]["text"] == "Hello World"
    assert r["conflicts"]["texts"] == 1 and r["conflicts"]["rows"] == 1
    assert r["conflicts"]["examples"][0]["labels"] == ["pos", "neg"]
    assert "progress" in err  # progress lines for the TUI on stderr
    recipe = read_recipe(Path(r["recipe"]))
    assert recipe["op"] == "clean" and recipe["rows_in"] == 13 and recipe["rows_out"] == 10
    assert recipe["inputs"][0]["sha256"] == before
    assert recipe["options"]["dedup"] == "exact"
    assert Path(r["recipe"]) == tmp_path / "t.clean.csv.recipe.toml"


def test_clean_all_rules_normalised_dedup_and_near_dups(tmp_path, capsys):
    src = write_csv(tmp_path / "t.csv")
    out = tmp_path / "out.parquet"
    rc, r, _ = run_json(["clean", str(src), "--out", str(out), "--lowercase", "--strip-urls",
                         "--strip-html", "--strip-emails", "--dedup", "normalized",
                         "--near-dup", "0.6"], capsys)
    assert rc == 0
    # normalised: rows 2 and 3 repeat row 1, row 6 repeats row 5; near-dup: row 12 ~ row 11
    assert r["dropped"] == {"empty": 1, "duplicate": 3, "near_duplicate": 1}
    rows = {row["id"]: row["text"] for row in pq.read_table(out).to_pylist()}
    assert rows["8"] == "see or now"
    assert rows["9"] == "bold & bright"
    assert rows["10"] == "mail today"
    assert rows["1"] == "hello world" and rows["4"] == "hello world"  # other label: kept
    assert set(rows) == {"1", "4", "5", "8", "9", "10", "11", "13"}


def test_keep_chars_and_bad_class(tmp_path, capsys):
    src = write_csv(tmp_path / "t.csv", [("text", "label"), ("Héllo ★ wörld 42!", "a"),
                                          ("plain", "b")])
    rc, r, _ = run_json(["clean", str(src), "--keep-chars", "ascii", "--dry-run"], capsys)
    assert rc == 0 and r["output"] is None and r["recipe"] is None
    assert r["preview"][0]["after"]["text"] == "Hllo wrld 42!"
    assert not (tmp_path / "t.clean.csv").exists()
    rc, r, _ = run_json(["clean", str(src), "--keep-chars", "a-z ", "--dry-run"], capsys)
    assert r["preview"][0]["after"]["text"] == "llo wrld"
    capsys.readouterr()
    assert main(["data", "clean", str(src), "--keep-chars", "[z-a"]) == 2
    assert "--keep-chars" in capsys.readouterr().err


def test_user_errors_exit_2_and_write_nothing(tmp_path, capsys):
    src = write_csv(tmp_path / "t.csv")
    before = sha(src)
    capsys.readouterr()
    assert main(["data", "clean", str(src), "--out", str(src)]) == 2
    assert "original is never modified" in capsys.readouterr().err
    assert main(["data", "clean", str(src), "--text", "body"]) == 2
    assert "no column 'body'" in capsys.readouterr().err
    assert main(["data", "clean", str(tmp_path / "missing.csv")]) == 2
    assert sha(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_streams_in_blocks_with_the_same_result(tmp_path, capsys, monkeypatch):
    import tunedeck.core.prepare.streaming as streaming

    rows = [("text", "label")] + [(f"row number {i % 700} says hi", str(i % 3)) for i in range(3000)]
    src = write_csv(tmp_path / "big.csv", rows)
    rc, whole, _ = run_json(["clean", str(src), "--out", str(tmp_path / "a.csv")], capsys)
    monkeypatch.setattr(streaming, "BLOCK_BYTES", 4096)  # ~19 blocks
    rc, blocks, err = run_json(["clean", str(src), "--out", str(tmp_path / "b.csv")], capsys)
    done = [int(line.split()[1]) for line in err.splitlines() if line.startswith("progress")]
    assert len(done) > 15 and done == sorted(done) and done[-1] == src.stat().st_size
    # 3000 rows, 700 texts x 3 labels: a text and label repeat every 2100 rows
    assert whole["rows_out"] == blocks["rows_out"] == 2100
    assert whole["dropped"] == blocks["dropped"] == {"duplicate": 900}
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_tsv_without_header_extension_less(tmp_path, capsys):
    src = tmp_path / "SMS"
    src.write_text("Label\tSMS\nham\tOk lar \"joking\"\nham\tOk lar \"joking\"\nspam\tWIN now\n",
                   encoding="utf-8")
    rc, r, _ = run_json(["clean", str(src)], capsys)
    assert r["dropped"] == {"duplicate": 1} and r["columns"] == {"text": ["SMS"], "label": "Label"}
    out = Path(r["output"])
    assert out.name == "SMS.clean.tsv"
    assert out.read_text() == "Label\tSMS\nham\tOk lar \"joking\"\nspam\tWIN now\n"


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_json_input_keeps_types(tmp_path, capsys, fmt):
    src = tmp_path / f"d.{fmt}"
    rows = [{"text": " a  b ", "label": 1, "score": 0.5}, {"text": "a b", "label": 1, "score": 0.7}]
    src.write_text("\n".join(json.dumps(r) for r in rows) if fmt == "jsonl" else json.dumps(rows))
    rc, r, _ = run_json(["clean", str(src), "--label", "label"], capsys)
    assert r["rows_out"] == 1 and r["dropped"] == {"duplicate": 1}
    out = Path(r["output"]).read_text()
    assert '"score": 0.5' in out


def test_minhash_agreement_estimates_jaccard():
    from tunedeck.core.prepare.minhash import lsh_params, signatures

    a = "the quick brown fox jumps over the lazy dog"
    b = "the quick brown fox jumped over the lazy dog"
    shingles = [{t[i:i + 5] for i in range(len(t) - 4)} for t in (a, b)]
    jaccard = len(shingles[0] & shingles[1]) / len(shingles[0] | shingles[1])  # 0.756
    sig = signatures([a, b, "nothing in common here at all"], num_perm=256)
    assert abs((sig[0] == sig[1]).mean() - jaccard) < 0.08
    assert (sig[0] == sig[2]).mean() < 0.05
    bands, rows = lsh_params(0.8)
    assert bands * rows <= 64 and (1 / bands) ** (1 / rows) > 0.6  # the S-curve's midpoint
