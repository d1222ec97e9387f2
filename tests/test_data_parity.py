"""The dataset browser shows exactly what training reads.

A corpus of awkward files, each opened three ways: the browser's path (``tui/data_source``
Loader + ``compute_stats`` + ``split_preview``, as the Datasets screen runs them), ``tunedeck
profile check --data``, and training's own reader (``read_splits``). Rows, columns, row count,
duplicates and split sizes must agree; a file one refuses, the others refuse with the same
message. One file (``;``-separated) then trains a tiny model end to end.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tomli_w

from tdhelpers import TINY_BERT, make_classification_rows, tiny_cls_profile
from tunedeck.core.errors import DataError

SPLIT = [0.7, 0.15, 0.15]


def corpus_rows() -> list[tuple[str, str]]:
    """20 rows: two repeats (one differing only by stray spaces) and one empty text."""
    rows = make_classification_rows(17, seed=3)
    rows += [rows[0], (rows[1][0] + "  ", rows[1][1]), ("", "pos")]
    return rows


def delimited(rows, sep: str, header: bool = True, nl: str = "\n") -> str:
    lines = ([f"text{sep}label"] if header else []) + [f"{t}{sep}{lab}" for t, lab in rows]
    return nl.join(lines) + nl


def build_corpus(d: Path) -> dict[str, tuple[Path, dict]]:
    """name -> (file, profile data overrides)."""
    rows = corpus_rows()
    recs = [{"text": t, "label": lab} for t, lab in rows]
    files: dict[str, tuple[Path, dict]] = {}

    def put(name: str, data: bytes | str, **over) -> None:
        p = d / name
        p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        files[name] = (p, over)

    put("semi.csv", delimited(rows, ";"))
    put("pipe.csv", delimited(rows, "|"))
    put("tab.tsv", delimited(rows, "\t"))
    put("noheader.csv", delimited([(lab, t) for t, lab in rows], ",", header=False),
        text_column="column_2", label_column="column_1")
    put("bom.csv", b"\xef\xbb\xbf" + delimited(rows, ",").encode())
    put("crlf.csv", delimited(rows, ",", nl="\r\n"))
    put("latin1.csv", delimited(rows + [("caf\xe9 cr\xe8me", "neg")], ",").encode("latin-1"))
    put("latin1-declared.csv", delimited(rows + [("na\xefve", "neg")], ",").encode("latin-1"),
        encoding="latin-1")
    put("utf16.csv", delimited(rows, ",").encode("utf-16"))
    put("utf16-declared.csv", delimited(rows, ",").encode("utf-16"), encoding="utf-16")
    quoted = [(f'"{t}\nsecond line"' if i % 4 == 2 and i < 17 else t, lab)
              for i, (t, lab) in enumerate(rows)]
    put("quoted.csv", delimited(quoted, ","))
    put("ragged.csv", delimited(rows[:5], ",") + "one,two,three\n" + delimited(rows[5:], ",",
                                                                               header=False))
    put("array.json", json.dumps(recs))
    put("bad.jsonl", "\n".join(json.dumps(r) for r in recs[:3]) + '\n{"text": "x", \n')
    pq.write_table(pa.Table.from_pylist(recs), d / "data.parquet")
    files["data.parquet"] = (d / "data.parquet", {})
    put("SMSLike", delimited([(lab, t) for t, lab in rows], "\t").replace("text\tlabel", "label\ttext"))
    return files


REFUSED = {"latin1.csv": r"latin1\.csv:\d+: is not UTF-8.*data\.encoding = 'latin-1'",
           "ragged.csv": r"ragged\.csv:7: has 3 fields but the header has 2",
           "bad.jsonl": r"bad\.jsonl:4: not valid JSON",
           "utf16.csv": r"utf16\.csv:1: is UTF-16 text.*data\.encoding = 'utf-16'"}


def write_profile(tmp_path: Path, data: Path, over: dict) -> Path:
    d = {"train": str(data), "split": SPLIT, **over}
    doc = {"name": "parity", "task": {"type": "classification"}, "model": {"config": TINY_BERT},
           "data": d, "output": {"runs_dir": str(tmp_path / "runs")}}
    p = tmp_path / f"{data.name}.toml"
    p.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return p


def browse(path: Path, over: dict):
    """What the Datasets screen does: Loader, the columns, stats, split preview."""
    from tunedeck.tui.data_source import Loader, compute_stats, split_preview

    opened = Loader(path, Path(tempfile.mkdtemp()), encoding=over.get("encoding")).load()
    text, label = over.get("text_column", "text"), over.get("label_column", "label")
    st = compute_stats(opened.table, text, label)
    return opened, st, split_preview(st.kept, SPLIT)


def check_data(prof: Path, capsys) -> tuple[int, str, str]:
    from tunedeck.core.cli import main

    capsys.readouterr()
    code = main(["profile", "check", str(prof), "--data"])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    return build_corpus(d)


@pytest.mark.parametrize("name", ["semi.csv", "pipe.csv", "tab.tsv", "noheader.csv", "bom.csv",
                                  "crlf.csv", "latin1-declared.csv", "utf16-declared.csv", "quoted.csv", "array.json",
                                  "data.parquet", "SMSLike"])
def test_browser_check_and_training_agree(corpus, name, tmp_path, capsys) -> None:
    from tunedeck.core.data import read_source, read_splits
    from tunedeck.core.profile.io import load

    path, over = corpus[name]
    opened, st, preview = browse(path, over)
    src = read_source(path, encoding=over.get("encoding"))
    assert opened.table.column_names == src.table.column_names
    assert opened.table.to_pylist() == src.table.to_pylist()
    assert opened.num_rows == src.table.num_rows

    prof = write_profile(tmp_path, path, over)
    data = read_splits(load(prof))
    f = data.stats["files"]["train"]
    assert (f["rows_read"], f["dropped_duplicate"], f["dropped_empty"], f["rows_kept"]) == \
        (st.num_rows, st.duplicates, st.dropped_empty, st.kept)
    sizes = data.stats["sizes"]
    assert preview == (sizes["train"], sizes["validation"], sizes["test"])
    assert st.duplicates == 2 and st.dropped_empty == 1  # the corpus' own mess, seen by both

    code, out, _ = check_data(prof, capsys)
    assert code == 0
    assert f"{st.num_rows:,} rows read, {st.kept:,} kept" in out
    assert f"{st.duplicates:,} duplicate" in out
    splits = re.search(r"splits: train (\d+), validation (\d+) \(from train\), test (\d+)", out)
    assert splits and tuple(int(g) for g in splits.groups()) == preview


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_by_both_with_the_same_message(corpus, name, tmp_path, capsys) -> None:
    from tunedeck.core.data import read_splits
    from tunedeck.core.profile.io import load

    path, over = corpus[name]
    with pytest.raises(DataError) as browser:
        browse(path, over)
    with pytest.raises(DataError) as training:
        read_splits(load(write_profile(tmp_path, path, over)))
    assert str(browser.value) == str(training.value)
    assert re.search(REFUSED[name], str(training.value)), str(training.value)
    code, out, err = check_data(write_profile(tmp_path, path, over), capsys)
    assert code == 2 and str(training.value) in err


def test_quick_head_agrees_with_the_full_read(corpus) -> None:
    """The stdlib first rows painted before pyarrow loads are the same rows, same columns."""
    from tunedeck.core.data import read_source
    from tunedeck.core.data.head import source_format
    from tunedeck.tui.quick_head import quick_head

    for name in ("semi.csv", "pipe.csv", "tab.tsv", "noheader.csv", "bom.csv", "quoted.csv",
                 "SMSLike"):
        path, _ = corpus[name]
        head = quick_head(path, source_format(path))
        src = read_source(path)
        assert head is not None and head.column_names == src.table.column_names, name
        want = [tuple(r.values()) for r in src.table.to_pylist()]
        assert head.rows(0, len(want)) == want, name


def test_semicolon_csv_trains(tmp_path) -> None:
    """The file that used to open in the browser and then fail in training ("no column 'text'")."""
    from test_train_e2e import run_cli

    p = tmp_path / "semi.csv"
    p.write_text(delimited(make_classification_rows(64, seed=5), ";"), encoding="utf-8")
    prof = tiny_cls_profile(tmp_path, p, epochs=1)
    proc = run_cli(["train", str(prof)], tmp_path)
    assert "error" not in proc.stderr.lower()
    assert list((tmp_path / "runs").glob("*/model/config.json"))
