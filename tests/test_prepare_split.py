"""tunedeck data split and leakage: sizes, strata, seeds, groups, planted cross-split texts."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tunedeck.core.cli import main
from prepare_helpers import read_rows, run_json, write_rows


def labelled(n_a: int, n_b: int) -> list[tuple]:
    return [("text", "label", "user")] + [(f"text {i}", "a" if i < n_a else "b", f"u{i % 20}")
                                          for i in range(n_a + n_b)]


def test_split_80_10_10_stratified_and_seeded(tmp_path, capsys):
    src = write_rows(tmp_path / "d.csv", labelled(80, 20))
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    r = run_json(["split", str(src)], capsys)
    folder = tmp_path / "d.split"
    assert r["output"] == str(folder) and r["recipe"] == str(tmp_path / "d.split.recipe.toml")
    assert r["splits"] == {"train": 80, "validation": 10, "test": 10}
    assert r["label_counts"]["validation"] == {"a": 8, "b": 2}
    assert r["label_counts"]["test"] == {"a": 8, "b": 2}
    files = {p.name for p in folder.iterdir()}
    assert files == {"train.csv", "validation.csv", "test.csv"}
    assert r["leakage"]["shared_texts"] == 0
    again = run_json(["split", str(src), "--out", str(tmp_path / "again")], capsys)
    other = run_json(["split", str(src), "--out", str(tmp_path / "other"), "--seed", "7"], capsys)
    assert read_rows(folder / "test.csv") == read_rows(tmp_path / "again" / "test.csv")
    assert read_rows(folder / "test.csv") != read_rows(tmp_path / "other" / "test.csv")
    assert again["splits"] == other["splits"]
    all_ids = sorted(r["text"] for f in folder.iterdir() for r in read_rows(f))
    assert all_ids == sorted(f"text {i}" for i in range(100))
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before


def test_split_fractions_and_group_by(tmp_path, capsys):
    src = write_rows(tmp_path / "d.csv", labelled(60, 40))
    r = run_json(["split", str(src), "--fractions", "70,15,15", "--group-by", "user",
                  "--no-stratify"], capsys)
    folder = Path(r["output"])
    users = {name: {row["user"] for row in read_rows(folder / f"{name}.csv")}
             for name in ("train", "validation", "test")}
    assert users["train"].isdisjoint(users["validation"])
    assert users["train"].isdisjoint(users["test"])
    assert users["validation"].isdisjoint(users["test"])
    # 20 users of 5 rows each: 70/15/15 of the groups -> 14/3/3 users
    assert r["splits"] == {"train": 70, "validation": 15, "test": 15}
    capsys.readouterr()
    assert main(["data", "split", str(src), "--fractions", "80/20"]) == 2
    assert "three" in capsys.readouterr().err


def test_leakage_finds_planted_duplicates(tmp_path, capsys):
    train = write_rows(tmp_path / "train.csv", [("text", "label"), ("Call me now!", "a"),
                                                ("unique one", "b"), ("shared two", "a")])
    val = write_rows(tmp_path / "validation.csv", [("text", "label"), ("call me NOW", "a"),
                                                   ("val only", "b")])
    test = write_rows(tmp_path / "test.csv", [("text", "label"), ("shared   two", "b"),
                                              ("test only", "a")])
    r = run_json(["leakage", str(train), str(val), str(test)], capsys, code=1)
    assert r["shared_texts"] == 2
    assert r["pairs"] == {"train/validation": 1, "train/test": 1, "validation/test": 0}
    ex = {tuple(e["splits"]): e["rows"] for e in r["examples"]}
    assert ex[("train", "validation")] == [1, 1] and ex[("train", "test")] == [3, 1]
    folder = tmp_path / "splits"
    folder.mkdir()
    for p in (train, val, test):
        (folder / p.name).write_bytes(p.read_bytes())
    assert run_json(["leakage", str(folder)], capsys, code=1)["shared_texts"] == 2
    capsys.readouterr()
    assert main(["data", "leakage", str(train)]) == 2
    assert "two or more" in capsys.readouterr().err


def test_profile_check_data_reports_leakage(tmp_path, capsys):
    rows = [("text", "label")] + [(f"sample text {i}", "ab"[i % 2]) for i in range(40)]
    train = write_rows(tmp_path / "train.csv", rows)
    val = write_rows(tmp_path / "val.csv", [("text", "label"), ("Sample text 3!", "b"),
                                            ("fresh", "a")])
    prof = tmp_path / "p.toml"
    prof.write_text(f'name = "p"\n[data]\ntrain = "{train}"\nvalidation = "{val}"\n'
                    'split = [0.9, 0.0, 0.1]\n')
    capsys.readouterr()
    assert main(["profile", "check", str(prof), "--data"]) == 0
    out = capsys.readouterr().out
    assert "leakage: 1 text(s) occur in more than one split" in out
    assert "train/validation: 1 shared" in out


def test_an_output_never_replaces_a_folder_holding_the_input_nor_a_file_it_did_not_write(
        tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    src = write_rows(data / "d.csv", labelled(8, 2))
    (data / "notes.txt").write_text("keep me")
    mine = write_rows(tmp_path / "mine.csv", [("a", "b"), ("1", "2")])
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (src, mine)}
    err = run_json(["split", str(src), "--out", str(data)], capsys, code=2)
    assert "holding the input" in err["error"]
    err = run_json(["clean", str(src), "--out", str(mine)], capsys, code=2)
    assert "was not written by `tunedeck data`" in err["error"]
    assert (data / "notes.txt").read_text() == "keep me"
    assert before == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (src, mine)}
    # Its own earlier output (its recipe beside it) is replaced, as a re-run expects.
    first = run_json(["split", str(src)], capsys)
    again = run_json(["split", str(src)], capsys)
    assert first["output"] == again["output"] and (data / "d.split" / "train.csv").exists()
