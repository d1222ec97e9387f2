"""tunedeck data convert: every format both ways, renames, mappings, chat <-> pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunedeck.core.cli import main
from tunedeck.core.data.reader import read_source
from prepare_helpers import run_json

ROWS = [{"text": "hello, \"world\"", "label": "a"}, {"text": "line two", "label": "b"},
        {"text": "ünïcode ✓", "label": "a"}]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "parquet", "arrow"])
def test_round_trip_every_format(tmp_path, capsys, fmt):
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), "utf-8")
    r = run_json(["convert", str(src), "--to", fmt], capsys)
    out = Path(r["output"])
    same = "d.converted.jsonl"  # the input's own name is never written over
    assert out.name == {"arrow": "d", "jsonl": same}.get(fmt, f"d.{fmt}")
    assert r["rows_in"] == r["rows_out"] == 3
    assert read_source(out).table.to_pylist() == ROWS
    back = run_json(["convert", str(out), "--out", str(tmp_path / "back.jsonl")], capsys)
    assert read_source(Path(back["output"])).table.to_pylist() == ROWS


def test_rename_and_map_alpaca(tmp_path, capsys):
    src = tmp_path / "alpaca.json"
    src.write_text(json.dumps([
        {"instruction": "Add the numbers", "input": "2 and 3", "output": "5"},
        {"instruction": "Say hi", "input": "", "output": "hi"},
    ]))
    r = run_json(["convert", str(src), "--out", str(tmp_path / "pairs.jsonl"),
                  "--map", "prompt=instruction+input", "--rename", "output=response"], capsys)
    rows = [json.loads(line) for line in Path(r["output"]).read_text().splitlines()]
    assert rows == [{"response": "5", "prompt": "Add the numbers\n\n2 and 3"},
                    {"response": "hi", "prompt": "Say hi"}]
    capsys.readouterr()
    assert main(["data", "convert", str(src), "--map", "prompt=instruction+nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert main(["data", "convert", str(src), "--rename", "justaname"]) == 2


def test_chat_to_pairs_and_back(tmp_path, capsys):
    src = tmp_path / "chat.jsonl"
    convs = [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
         {"role": "assistant", "content": "4"}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
         {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye!"}],
    ]
    src.write_text("".join(json.dumps({"id": i, "messages": m}) + "\n" for i, m in enumerate(convs)))
    r = run_json(["convert", str(src), "--chat", "to-pairs", "--out", str(tmp_path / "p.jsonl")],
                 capsys)
    rows = [json.loads(line) for line in Path(r["output"]).read_text().splitlines()]
    assert rows[0] == {"id": 0, "prompt": "Be brief.\n\n2+2?", "response": "4"}
    assert rows[1]["prompt"] == "user: Hi\nassistant: Hello\nuser: Bye"
    assert rows[1]["response"] == "Bye!"
    r = run_json(["convert", r["output"], "--chat", "from-pairs", "--system", "Be kind.",
                  "--out", str(tmp_path / "c.jsonl")], capsys)
    back = [json.loads(line) for line in Path(r["output"]).read_text().splitlines()]
    assert back[0]["messages"] == [{"role": "system", "content": "Be kind."},
                                   {"role": "user", "content": "Be brief.\n\n2+2?"},
                                   {"role": "assistant", "content": "4"}]
    err = run_json(["convert", str(src), "--to", "csv"], capsys, code=2)
    assert err["kind"] == "user" and "write jsonl or parquet instead" in err["error"]
    assert not (tmp_path / "chat.csv").exists()
