"""The labelling session behind the annotation screen: labels, undo, skip, the unlabelled filter,
saving beside the original (never into it), resuming, sampling, and jumping to a file row."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from tunedeck.core.errors import DataError
from tunedeck.core.prepare import annotation as an
from tunedeck.core.prepare.annotation import open_annotation


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def write_unlabelled(p: Path, n: int = 6) -> Path:
    p.write_text("id,text\n" + "".join(f"{i},message {i}\n" for i in range(n)))
    return p


def read_csv(p: Path) -> list[dict[str, str]]:
    with p.open(newline="") as f:
        return list(csv.DictReader(f))


def test_label_undo_save_and_resume(tmp_path: Path) -> None:
    src = write_unlabelled(tmp_path / "msgs.csv")
    before = sha256(src)
    s = open_annotation(src, labels=["spam", "ham"])
    assert (s.text_column, s.label_column, s.labels) == ("text", "label", ["spam", "ham"])
    assert s.current()["text"] == "message 0" and s.current()["record"] == 2  # line 2 of the file
    assert s.label_number(1) == "spam" and s.label_number(2) == "ham"
    assert s.label_number(3) is None  # no third label: nothing happens
    assert s.position == 2
    assert s.undo() and s.position == 1 and s.label_of(1) is None
    s.label_number(1)
    assert s.skip() and s.position == 3
    assert s.progress() == {"labelled": 2, "total": 6, "this_session": 2, "skipped": 1, "given": 2,
                            "position": 3}
    out = s.save()
    assert out == tmp_path / "msgs.labels.csv"
    assert out.stat().st_mode & 0o777 == 0o644  # readable like any dataset, not private
    assert out.read_text() == "id,text,label\n0,message 0,spam\n1,message 1,spam\n"
    assert sha256(src) == before

    again = open_annotation(src)
    assert again.resumed and again.position == 3 and again.labels == ["spam", "ham"]
    assert (again.label_of(0), again.label_of(1), again.label_of(2)) == ("spam", "spam", None)
    assert again.skipped == {2} and again.progress()["this_session"] == 0


def test_saves_by_itself_every_few_labels(tmp_path: Path) -> None:
    src = write_unlabelled(tmp_path / "m.csv", 12)
    s = open_annotation(src, labels=["a", "b"])
    for _ in range(an.SAVE_EVERY - 1):
        s.label_number(2)
    assert not s.work_path.exists()
    s.label_number(1)
    assert len(read_csv(s.work_path)) == an.SAVE_EVERY and s.unsaved == 0
    state = json.loads(s.state_path.read_text())
    assert state["position_row"] == an.SAVE_EVERY and len(state["given"]) == an.SAVE_EVERY


def test_unlabelled_filter_skips_labelled_rows(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_text("text,label\nt0,x\nt1,\nt2,y\nt3,\nt4,x\n")
    s = open_annotation(src)
    assert s.labels == ["x", "y"]  # from the file
    assert s.progress()["labelled"] == 3
    assert s.toggle_unlabeled_only() and s.current()["text"] == "t1"
    s.label_number(2)
    assert s.current()["text"] == "t3"  # straight to the next unlabelled row
    s.label_number(1)
    assert s.progress()["labelled"] == 5
    assert not s.next()  # nothing unlabelled is left
    s.toggle_unlabeled_only()
    assert s.prev() and s.current()["text"] == "t2"
    s.save()
    assert [r["label"] for r in read_csv(s.work_path)] == ["x", "y", "y", "x", "x"]


def test_relabelling_from_a_file_row_and_jsonl_keeps_types(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n" for i in range(4)))
    s = open_annotation(src)
    assert s.labels == ["0", "1"]
    s.goto_record(3)  # line 3: the third record
    assert s.current()["text"] == "t2" and s.current()["original"] == "0"
    s.label_number(2)
    s.save()
    assert s.work_path.name == "d.labels.jsonl"
    rows = [json.loads(x) for x in s.work_path.read_text().splitlines()]
    assert rows == [{"text": "t0", "label": 0}, {"text": "t1", "label": 1},
                    {"text": "t2", "label": 1}, {"text": "t3", "label": 1}]
    with pytest.raises(DataError, match="no row at line 99"):
        s.goto_record(99)


def test_sample_is_seeded_and_resumed(tmp_path: Path) -> None:
    src = write_unlabelled(tmp_path / "big.csv", 200)
    s = open_annotation(src, labels=["a", "b"], sample=10, seed=7)
    assert s.rows == an.sample_rows(200, 10, 7) and len(s.rows) == 10
    assert s.rows != an.sample_rows(200, 10, 8)
    s.label_number(1)
    s.save()
    again = open_annotation(src, sample=50, seed=1)  # the saved session wins
    assert again.rows == s.rows and again.position == 1
    missing = next(r for r in range(200) if r not in s.rows)
    again.goto_record(missing + 2)  # a row that was not drawn joins the session (line = row + 2)
    assert again.row == missing and len(again.rows) == 11 and again.rows == sorted(again.rows)


def test_clear_errors(tmp_path: Path) -> None:
    src = write_unlabelled(tmp_path / "m.csv")
    with pytest.raises(DataError, match="give the labels"):
        open_annotation(src)
    s = open_annotation(src, labels=["a"])
    s.label_number(1)
    s.save()
    src.write_text(src.read_text() + "9,late row\n")
    with pytest.raises(DataError, match="changed since the labels"):
        open_annotation(src)


def test_undo_restores_skips_and_earlier_labels(tmp_path: Path) -> None:
    src = write_unlabelled(tmp_path / "m.csv", 3)
    s = open_annotation(src, labels=["a", "b"])
    s.skip()
    assert s.skipped == {0} and s.position == 1
    s.undo()
    assert s.skipped == set() and s.position == 0
    s.label_number(1)
    s.prev()
    s.label_number(2)  # relabel row 0: a -> b
    assert s.label_of(0) == "b" and s.progress()["this_session"] == 2
    s.undo()
    assert s.label_of(0) == "a" and s.position == 0 and s.progress()["this_session"] == 1
    s.undo()
    assert s.label_of(0) is None and not s.undo()
    with pytest.raises(DataError, match="'c' is not one of the labels"):
        s.set_label("c")
