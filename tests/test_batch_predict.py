"""`tunedeck predict RUN --file IN --out OUT`: a whole file through a really trained tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from tdhelpers import tiny_cls_profile, tiny_lm_profile
from test_eval_run import cli, train


def test_classification_file_csv_and_parquet(tmp_path, cls_csv, capsys):
    run_dir = train(tiny_cls_profile(tmp_path, cls_csv, epochs=2), capsys)
    inputs = tmp_path / "in.csv"
    inputs.write_text("id,text\n1,great wonderful movie\n2,awful terrible film\n3,\n4,great wonderful movie\n")
    out = cli(["predict", str(run_dir), "--file", str(inputs), "--out", str(tmp_path / "p.csv")], capsys)
    assert "4 rows predicted" in out.out
    assert "predict: 100% (4/4 rows)" in out.err  # stderr is not a terminal: plain lines
    table = pcsv.read_csv(tmp_path / "p.csv").to_pylist()
    assert [r["id"] for r in table] == [1, 2, 3, 4]  # every row, the input columns first
    assert all(r["predicted"] in ("neg", "pos") and 0.5 <= r["probability"] <= 1 for r in table)
    assert table[0]["predicted"] == table[3]["predicted"]
    single = json.loads(cli(["predict", str(run_dir), "great wonderful movie", "--json"], capsys).out)
    assert single["label"] == table[0]["predicted"]
    assert single["probability"] == pytest.approx(table[0]["probability"], rel=1e-5)
    cli(["predict", str(run_dir), "--file", str(inputs), "--out", str(tmp_path / "p.parquet")], capsys)
    assert pq.read_table(tmp_path / "p.parquet").column_names == ["id", "text", "predicted", "probability"]


def test_lm_file_jsonl_generations(tmp_path, lm_jsonl, capsys):
    run_dir = train(tiny_lm_profile(tmp_path, lm_jsonl, epochs=1), capsys)
    inputs = tmp_path / "prompts.jsonl"
    inputs.write_text("".join(json.dumps({"prompt": f"add {a} and 2"}) + "\n" for a in range(5)))
    cli(["predict", str(run_dir), "--file", str(inputs), "--out", str(tmp_path / "g.jsonl")], capsys)
    rows = [json.loads(x) for x in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == [f"add {a} and 2" for a in range(5)]
    assert all(isinstance(r["generation"], str) for r in rows)
    single = cli(["predict", str(run_dir), "add 0 and 2", "--json"], capsys).out
    assert json.loads(single)["continuation"].strip() == rows[0]["generation"]


def test_predict_file_errors(tmp_path, cls_csv, capsys):
    run_dir = train(tiny_cls_profile(tmp_path, cls_csv, epochs=1), capsys)
    inputs = tmp_path / "in.csv"
    inputs.write_text("body\nhello\n")
    err = cli(["predict", str(run_dir), "--file", str(inputs), "--out", str(tmp_path / "p.csv")],
              capsys, code=2).err
    assert "'text'" in err and "body" in err and not (tmp_path / "p.csv").exists()
    err = cli(["predict", str(run_dir), "--file", str(inputs), "--out", str(tmp_path / "p.xlsx")],
              capsys, code=2).err
    assert ".xlsx" in err and ".parquet" in err
    err = cli(["predict", str(run_dir), "--file", str(inputs)], capsys, code=2).err
    assert "--out" in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".p.")]  # no temp leftovers
