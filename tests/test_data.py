"""Data loading and preparation: every format, sniffing, each user error, cleaning, labels and
the stratified split. Files are written into tmp_path; nothing is downloaded."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from tunedeck.core.data import load_table, read_source, read_splits, split_sizes
from tunedeck.core.errors import DataError
from tunedeck.core.profile import validate

ROOT = Path(__file__).resolve().parents[1]
SMS = Path(__file__).resolve().parents[2] / "shared/datasets/sms_spam/SMSSpamCollection"
SAMPLE = ROOT / "sample_data"


def profile(train: Path | str, task: str = "classification", seed: int = 42,
            **data: Any) -> Any:
    return validate({"task": {"type": task}, "data": {"train": str(train), **data},
                     "training": {"seed": seed}})


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def col(*datasets: Dataset | None, name: str) -> list[Any]:
    """A column over several splits as one plain list (missing splits count as empty)."""
    return [v for ds in datasets if ds is not None for v in ds[name]]


def labelled_csv(path: Path, counts: dict[str, int]) -> Path:
    lines = ["text,label"] + [f"{lab} example number {i},{lab}"
                              for lab, n in counts.items() for i in range(n)]
    return write(path, "\n".join(lines) + "\n")


# --- formats ------------------------------------------------------------------------------

ROWS = [{"text": "hello there", "label": "greet"}, {"text": "NA", "label": "007"},
        {"text": "bye, now", "label": "leave"}]


def _write_format(tmp_path: Path, fmt: str) -> Path:
    if fmt == "csv":
        return write(tmp_path / "d.csv", 'text,label\nhello there,greet\nNA,007\n"bye, now",leave\n')
    if fmt == "tsv":
        return write(tmp_path / "d.tsv", "text\tlabel\nhello there\tgreet\nNA\t007\nbye, now\tleave\n")
    if fmt == "json":
        return write(tmp_path / "d.json", json.dumps(ROWS, indent=2))
    if fmt == "json-data":
        return write(tmp_path / "d.json", json.dumps({"data": ROWS}))
    if fmt == "json-lines":  # JSON Lines under a .json name, as HF exports often are
        return write(tmp_path / "d.json", "".join(json.dumps(r) + "\n" for r in ROWS))
    if fmt == "jsonl":
        return write(tmp_path / "d.jsonl", "".join(json.dumps(r) + "\n" for r in ROWS))
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet")
        return tmp_path / "d.parquet"
    if fmt == "arrow-dir":
        Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
        return tmp_path / "saved"
    if fmt == "arrow-dict":
        DatasetDict({"train": Dataset.from_list(ROWS),
                     "test": Dataset.from_list(ROWS[:1])}).save_to_disk(str(tmp_path / "dd"))
        return tmp_path / "dd"
    if fmt == "arrow-file":
        Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
        return next((tmp_path / "saved").glob("*.arrow"))
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "json-data", "json-lines", "jsonl",
                                 "parquet", "arrow-dir", "arrow-dict", "arrow-file"])
def test_each_format_loads_the_same_rows(tmp_path: Path, fmt: str) -> None:
    ds = load_table(_write_format(tmp_path, fmt))
    assert isinstance(ds, Dataset)
    assert ds.column_names == ["text", "label"]
    assert ds.to_list() == ROWS  # "NA" and "007" stay text, quoted commas stay in the value


def test_text_format_one_example_per_line(tmp_path: Path) -> None:
    p = write(tmp_path / "corpus.txt", "first line\r\n\r\n   \nsecond line\nthird\n")
    ds = load_table(p)
    assert ds.column_names == ["text"]
    assert ds["text"] == ["first line", "second line", "third"]
    src = read_source(p)
    assert src.rows.tolist() == [1, 4, 5]


def test_explicit_format_overrides_extension(tmp_path: Path) -> None:
    p = write(tmp_path / "data.dat", "a|b\nx|y\n")
    assert load_table(p, "text")["text"] == ["a|b", "x|y"]


@pytest.mark.parametrize("content, fmt", [
    ("text\tlabel\nhi there\tham\nbuy now, cheap\tspam\n", "tsv"),
    ('text,label\nhi there,ham\n"buy now, cheap",spam\n', "csv"),
    ('{"text": "hi", "label": "ham"}\n{"text": "yo", "label": "spam"}\n', "jsonl"),
    ('[{"text": "hi", "label": "ham"}]', "json"),
    ("just some prose\nwith lines\n", "text"),
])
def test_sniffs_files_without_extension(tmp_path: Path, content: str, fmt: str) -> None:
    src = read_source(write(tmp_path / "DataFile", content))
    assert src.format == fmt
    assert src.table.num_rows == (1 if fmt == "json" else 2)


def test_sniffs_parquet_without_extension(tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "blob")
    assert read_source(tmp_path / "blob").format == "parquet"


@pytest.mark.skipif(not SMS.exists(), reason="../shared/datasets/sms_spam not present")
def test_sms_collection_is_sniffed_as_tsv() -> None:
    before = digest(SMS)
    src = read_source(SMS)
    assert src.format == "tsv"
    assert src.table.column_names == ["Label", "SMS"]
    assert src.table.num_rows == 5574  # stray double quotes must not merge lines
    assert src.unit == "line" and src.rows[0] == 2 and src.rows[-1] == 5575
    # Case-insensitive column match: "label"/"sms" find "Label"/"SMS".
    prep = read_splits(profile(SMS, text_column="sms", label_column="label", dedup=False))
    assert prep.label_names == ["ham", "spam"]
    assert sum(prep.stats["sizes"].values()) == 5574
    assert prep.stats["sizes"]["test"] == 557
    assert digest(SMS) == before


def test_bom_and_crlf_are_accepted_silently(tmp_path: Path) -> None:
    p = write(tmp_path / "win.csv", b"\xef\xbb\xbftext,label\r\nhello,a\r\n\"two\r\nlines\",b\r\n")
    ds = load_table(p)
    assert ds.column_names == ["text", "label"]
    prep = read_splits(profile(p, split=[0.5, 0.5, 0.0]))
    # Two classes of one row each: too small to share, both stay in train.
    assert prep.validation is None
    assert sorted(prep.train["text"]) == ["hello", "two\nlines"]


def test_row_numbers_are_source_lines(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", 'text,label\na,x\n\n"multi\nline",y\nb,x\n')
    src = read_source(p)
    assert src.unit == "line"
    assert src.rows.tolist() == [2, 4, 6]  # blank line 3 skipped; the quoted value spans 4-5


def test_jsonl_with_mixed_label_types_becomes_strings(tmp_path: Path) -> None:
    p = write(tmp_path / "m.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": "spam"}\n'
                                    '{"text": "c", "label": 1}\n{"text": "d", "label": "spam"}\n')
    ds = load_table(p)
    assert ds["label"] == ["1", "spam", "1", "spam"]
    prep = read_splits(profile(p, split=[0.5, 0.5, 0.0]))
    assert prep.label_names == ["1", "spam"]


def test_jsonl_date_like_strings_stay_strings(tmp_path: Path) -> None:
    p = write(tmp_path / "d.jsonl", '{"text": "2020-01-01"}\n{"text": "2021-02-03"}\n')
    assert load_table(p)["text"] == ["2020-01-01", "2021-02-03"]


def test_row_longer_than_a_parse_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tunedeck.core.data.delimited as delimited

    monkeypatch.setattr(delimited, "CSV_BLOCK", 1 << 12)
    long = "word " * 5000  # 25 kB in one quoted cell, > the 4 kB block
    ds = load_table(write(tmp_path / "long.csv", f'text,label\n"{long}, end",a\nshort,b\n'))
    assert ds.num_rows == 2 and ds[0]["text"] == long + ", end"


def test_jsonl_inputs_that_break_pyarrow(tmp_path: Path) -> None:
    # pyarrow 26 segfaults on a first line "null" and builds corrupt arrays for [null, "x"]:
    # such files must take the standard-library path and give a clean answer.
    msg = err(load_table, write(tmp_path / "n.jsonl", 'null\n{"text": "a"}\n'))
    assert "n.jsonl:1:" in msg and "not an object" in msg
    ds = load_table(write(tmp_path / "l.jsonl", '{"text": "a", "tags": [null, "x"]}\n'))
    assert ds[0] == {"text": "a", "tags": [None, "x"]}


# --- errors -------------------------------------------------------------------------------

def err(fn, *args: Any) -> str:
    with pytest.raises(DataError) as e:
        fn(*args)
    return str(e.value)


def test_missing_file_names_file_and_profile_key(tmp_path: Path) -> None:
    msg = err(read_splits, profile(tmp_path / "nope.csv"))
    assert "nope.csv" in msg and "no such file" in msg and "data.train" in msg


def test_directory_that_is_not_a_saved_dataset(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    msg = err(load_table, tmp_path / "folder")
    assert "folder" in msg and "save_to_disk" in msg


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.timeout(20)
def test_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    msg = err(load_table, fifo)  # opening it would block forever
    assert "pipe.csv" in msg and "not a regular file" in msg


@pytest.mark.parametrize("content", [b"", b"  \n\n \t\n", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    msg = err(load_table, write(tmp_path / "empty.csv", content))
    assert "empty.csv" in msg and "empty" in msg


@pytest.mark.parametrize("name", ["h.csv", "h.tsv"])
def test_header_only(tmp_path: Path, name: str) -> None:
    sep = "\t" if name.endswith("tsv") else ","
    msg = err(load_table, write(tmp_path / name, f"text{sep}label\n"))
    assert name in msg and "no rows" in msg and "text, label" in msg


def test_jsonl_bad_line_names_the_line(tmp_path: Path) -> None:
    p = write(tmp_path / "bad.jsonl", '{"text": "a"}\n\n{"text": "b"}\n{"text": "c",}\n')
    msg = err(load_table, p)
    assert "bad.jsonl:4:" in msg and "not valid JSON" in msg


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    msg = err(load_table, write(tmp_path / "arr.jsonl", '{"text": "a"}\n["b"]\n'))
    assert "arr.jsonl:2:" in msg and "not an object" in msg


def test_json_array_syntax_error_names_the_line(tmp_path: Path) -> None:
    msg = err(load_table, write(tmp_path / "a.json", '[\n{"text": "a"},\n{"text" "b"}\n]'))
    assert "a.json:3:" in msg


def test_not_utf8_names_line_and_offset(tmp_path: Path) -> None:
    data = "text,label\ncafé,a\n".encode("utf-8") + b"caf\xe9,b\n"
    msg = err(load_table, write(tmp_path / "latin.csv", data))
    offset = data.index(b"\xe9,b")
    assert "latin.csv:3:" in msg and f"offset {offset}" in msg and "UTF-8" in msg


def test_ragged_csv_row_names_the_line(tmp_path: Path) -> None:
    msg = err(load_table, write(tmp_path / "r.csv", "text,label\na,x\nb,c,y\n"))
    assert "r.csv:3:" in msg and "3 fields" in msg and "header has 2" in msg


def test_nul_bytes_mean_not_text(tmp_path: Path) -> None:
    msg = err(load_table, write(tmp_path / "u16.csv", "text,label\nab,c\n".encode("utf-16-le")))
    assert "u16.csv:1:" in msg and "NUL" in msg


@pytest.mark.parametrize("name, content", [("book.xlsx", b"PK\x03\x04junk"),
                                           ("blob", b"\x00\x01\x02binary")])
def test_unknown_format(tmp_path: Path, name: str, content: bytes) -> None:
    msg = err(load_table, write(tmp_path / name, content))
    assert name in msg and "unknown format" in msg


def test_unknown_format_name(tmp_path: Path) -> None:
    msg = err(load_table, write(tmp_path / "d.csv", "a\n1\n"), "xml")
    assert "unknown format 'xml'" in msg


def test_missing_column_did_you_mean(tmp_path: Path) -> None:
    p = write(tmp_path / "sms.tsv", "Label\tSMS\nham\thi\nspam\twin\n")
    msg = err(read_splits, profile(p, text_column="SMS", label_column="lable"))
    assert "sms.tsv" in msg and "'lable'" in msg and "Label, SMS" in msg
    assert "Did you mean 'Label'" in msg and "data.label_column" in msg
    msg = err(read_splits, profile(p, label_column="Label"))  # default text_column "text"
    assert "'text'" in msg and "data.text_column" in msg


def test_causal_lm_missing_text_hints_prompt_response(tmp_path: Path) -> None:
    p = write(tmp_path / "p.jsonl", '{"prompt": "a", "response": "b"}\n')
    msg = err(read_splits, profile(p, task="causal-lm"))
    assert "data.prompt_column" in msg


def test_unseen_label_in_validation(tmp_path: Path) -> None:
    train = labelled_csv(tmp_path / "train.csv", {"a": 5, "b": 5})
    val = write(tmp_path / "val.csv", "text,label\nfine,a\nodd one,zebra\n")
    msg = err(read_splits, profile(train, validation=str(val)))
    assert "val.csv:3:" in msg and "'zebra'" in msg and "train.csv" in msg


def test_every_row_dropped(tmp_path: Path) -> None:
    p = write(tmp_path / "blank.csv", "text,label\n ,a\n\t,b\n")
    msg = err(read_splits, profile(p))
    assert "blank.csv" in msg and "all 2 rows were dropped" in msg


def test_single_class_is_an_error(tmp_path: Path) -> None:
    msg = err(read_splits, profile(labelled_csv(tmp_path / "one.csv", {"only": 10})))
    assert "one.csv" in msg and "at least two" in msg


def test_label_in_text_file_explains(tmp_path: Path) -> None:
    msg = err(read_splits, profile(write(tmp_path / "c.txt", "a\nb\n")))
    assert "c.txt" in msg and "plain-text" in msg


# --- cleaning, labels ---------------------------------------------------------------------

MESSY = ('text,label\n'
         '  hello world  ,a\n'   # stray whitespace: kept after stripping
         'hello world,a\n'       # duplicate of the above once stripped
         'hello world,b\n'       # same text, other label: not a duplicate
         ',a\n'                  # empty text
         '   ,b\n'               # whitespace-only text
         'no label,\n'           # empty label
         '\n'                    # blank line: not a row at all
         'other,b \n'            # label with a trailing space
         'other,b\n')            # duplicate once the label is stripped


def test_cleaning_and_dedup_counts(tmp_path: Path) -> None:
    p = write(tmp_path / "messy.csv", MESSY)
    before = digest(p)
    prep = read_splits(profile(p, split=[0.5, 0.5, 0.0]))
    f = prep.stats["files"]["train"]
    assert (f["rows_read"], f["dropped_empty"], f["dropped_duplicate"], f["rows_kept"]) == (8, 3, 2, 3)
    splits = (prep.train, prep.validation)
    rows = sorted(zip(col(*splits, name="text"),
                      [prep.label_names[i] for i in col(*splits, name="label")],
                      col(*splits, name="row")))
    assert rows == [("hello world", "a", 2), ("hello world", "b", 4), ("other", "b", 9)]
    assert digest(p) == before


def test_dedup_off_and_clean_off(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "text,label\n x ,a\nx,a\nx,a\ny,b\ny,b\n")
    kept = read_splits(profile(p, dedup=False, split=[0.5, 0.5, 0.0])).stats["files"]["train"]
    assert (kept["dropped_duplicate"], kept["rows_kept"]) == (0, 5)
    raw = read_splits(profile(p, clean=False, split=[0.5, 0.5, 0.0]))
    texts = sorted(col(raw.train, raw.validation, name="text"))
    assert texts == [" x ", "x", "y"]  # unstripped, so " x " is not a duplicate of "x"
    msg = err(read_splits, profile(write(tmp_path / "e.csv", "text,label\na,x\nb,\nc,y\n"), clean=False))
    assert "e.csv:3:" in msg and "label is empty" in msg


def test_int_labels_sort_numerically(tmp_path: Path) -> None:
    p = labelled_csv(tmp_path / "n.csv", {"10": 4, "2": 4, "1": 4})
    prep = read_splits(profile(p))
    assert prep.label_names == ["1", "2", "10"]
    assert prep.train.features["label"] == ClassLabel(names=["1", "2", "10"])
    for text, lab in zip(prep.train["text"], prep.train["label"]):
        assert text.startswith(prep.label_names[lab] + " ")


def test_classlabel_order_of_saved_dataset_is_kept(tmp_path: Path) -> None:
    feats = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos", "mid"])})
    ds = Dataset.from_dict({"text": [f"t{i}" for i in range(30)], "label": [i % 3 for i in range(30)]},
                           features=feats)
    ds.save_to_disk(str(tmp_path / "saved"))
    prep = read_splits(profile(tmp_path / "saved"))
    assert prep.label_names == ["neg", "pos", "mid"]
    for text, lab in zip(prep.train["text"], prep.train["label"]):
        assert int(text[1:]) % 3 == lab


# --- splits -------------------------------------------------------------------------------

COUNTS = {"a": 500, "b": 230, "c": 61, "d": 9, "e": 1}


def test_stratified_split_sizes(tmp_path: Path) -> None:
    prep = read_splits(profile(labelled_csv(tmp_path / "s.csv", COUNTS)))
    names = prep.label_names
    per = {s: Counter(names[i] for i in ds["label"]) for s, ds in prep.splits.items()}
    for lab, n in COUNTS.items():
        assert per["train"][lab] + per["validation"][lab] + per["test"][lab] == n
        if n >= 10:
            assert abs(per["validation"][lab] - 0.1 * n) <= 1
            assert abs(per["test"][lab] - 0.1 * n) <= 1
    assert per["train"]["e"] == 1  # a class too small to share stays in train
    assert prep.stats["sizes"] == {"train": 641, "validation": 80, "test": 80}


def test_split_is_deterministic_by_seed(tmp_path: Path) -> None:
    p = labelled_csv(tmp_path / "s.csv", COUNTS)
    a = read_splits(profile(p, seed=1))
    b = read_splits(profile(p, seed=1))
    c = read_splits(profile(p, seed=2))
    assert a.test["row"] == b.test["row"] and a.validation["row"] == b.validation["row"]
    assert a.test["row"] != c.test["row"]
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert set(a.train["row"]).isdisjoint(a.test["row"])
    assert set(a.validation["row"]).isdisjoint(a.test["row"])


def test_given_files_win_and_missing_split_is_carved(tmp_path: Path) -> None:
    train = labelled_csv(tmp_path / "train.csv", {"a": 50, "b": 50})
    val = labelled_csv(tmp_path / "val.csv", {"a": 3, "b": 3})
    prep = read_splits(profile(train, validation=str(val), split=[0.7, 0.1, 0.2]))
    assert prep.stats["sizes"] == {"train": 80, "validation": 6, "test": 20}
    assert prep.stats["carved_from_train"] == ["test"]
    test = labelled_csv(tmp_path / "test.csv", {"a": 2, "b": 2})
    both = read_splits(profile(train, validation=str(val), test=str(test)))
    assert both.stats["sizes"] == {"train": 100, "validation": 6, "test": 4}
    assert both.stats["carved_from_train"] == []


def test_zero_test_share_gives_no_test_split(tmp_path: Path) -> None:
    prep = read_splits(profile(labelled_csv(tmp_path / "s.csv", {"a": 20, "b": 20}),
                           split=[0.9, 0.1, 0.0]))
    assert prep.test is None and prep.validation is not None and prep.validation.num_rows == 4


def test_split_sizes_edge_cases() -> None:
    assert split_sizes(1000, 0.1, 0.1) == (100, 100)
    assert split_sizes(3, 0.1, 0.1) == (1, 1)  # a non-zero share gets a row when it can
    assert split_sizes(2, 0.1, 0.1) == (1, 0)  # train keeps one
    assert split_sizes(1, 0.1, 0.1) == (0, 0)
    assert split_sizes(10, 0.0, 0.2) == (0, 2)


def test_causal_lm_and_seq2seq_columns(tmp_path: Path) -> None:
    p = write(tmp_path / "pairs.jsonl", "".join(
        json.dumps({"q": f"question {i}", "a": f"answer {i}"}) + "\n" for i in range(20)))
    for task in ("causal-lm", "seq2seq"):
        prep = read_splits(profile(p, task=task, prompt_column="q", response_column="a"))
        assert prep.columns == ("prompt", "response") and prep.label_names is None
        assert prep.train.column_names == ["prompt", "response", "row"]
        assert prep.stats["sizes"] == {"train": 16, "validation": 2, "test": 2}
    txt = read_splits(profile(write(tmp_path / "c.txt", "\n".join(f"line {i}" for i in range(10))),
                          task="causal-lm"))
    assert txt.columns == ("text",) and txt.train.column_names == ["text", "row"]


# --- sample data --------------------------------------------------------------------------

def test_stats_are_json(tmp_path: Path) -> None:
    prep = read_splits(profile(labelled_csv(tmp_path / "s.csv", {"a": 10, "b": 10})))
    assert json.loads(json.dumps(prep.stats)) == prep.stats


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=80) | st.text(alphabet='ab,\t"{}[]:\n\r 1é\ufeff', max_size=80),
       ext=st.sampled_from([".csv", ".tsv", ".json", ".jsonl", ".txt", "", ".parquet"]))
def test_any_input_loads_or_raises_data_error(tmp_path: Path, content: bytes | str, ext: str) -> None:
    """Never a raw traceback: whatever the bytes, the answer is a Dataset or a DataError."""
    p = write(tmp_path / f"fuzz{ext}", content)
    for task in ("classification", "causal-lm"):
        try:
            read_splits(profile(p, task=task))
        except DataError:
            pass


def test_sample_data_prepares_and_is_left_untouched() -> None:
    tickets, instr = SAMPLE / "tickets.csv", SAMPLE / "instructions.jsonl"
    before = digest(tickets), digest(instr)
    prep = read_splits(profile(tickets))
    assert prep.label_names == ["account", "billing", "shipping", "technical"]
    f = prep.stats["files"]["train"]
    assert f["dropped_empty"] >= 2 and f["dropped_duplicate"] >= 40 and f["rows_kept"] > 1200
    lm = read_splits(profile(instr, task="causal-lm", prompt_column="prompt",
                         response_column="response"))
    assert 300 <= sum(lm.stats["sizes"].values()) <= 600
    assert lm.stats["files"]["train"]["dropped_duplicate"] == 0
    assert (digest(tickets), digest(instr)) == before


def test_sample_data_generator_reproduces_committed_files(tmp_path: Path) -> None:
    sys.path.insert(0, str(SAMPLE))
    try:
        import make_sample_data
    finally:
        sys.path.remove(str(SAMPLE))
    make_sample_data.main(tmp_path)
    for name in ("tickets.csv", "instructions.jsonl"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), name


def test_large_file_is_vectorised(tmp_path: Path) -> None:
    """Not a timing assert: 200k rows must simply finish well inside the suite's budget."""
    rng = np.random.default_rng(0)
    labels = rng.choice(["x", "y", "z"], size=200_000)
    body = "\n".join(f"row {i} text {lab},{lab}" for i, lab in enumerate(labels))
    prep = read_splits(profile(write(tmp_path / "big.csv", "text,label\n" + body + "\n")))
    assert sum(prep.stats["sizes"].values()) == 200_000
    assert int(np.max(prep.test["row"])) <= 200_001
