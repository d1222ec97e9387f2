"""A tiny causal LM really trains, then `tunedeck samples` and `tunedeck serve-predict` use it;
`tunedeck errors` reads saved evaluations."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest

from tdhelpers import TUNEDECK, cli_env, tiny_cls_profile, tiny_lm_profile
from test_error_analysis import crafted_cls_rows, write_saved_eval


def run_inproc(args, capsys, code=0):
    from tunedeck.core.cli import main

    capsys.readouterr()
    rc = main(args)
    out = capsys.readouterr()
    assert rc == code, out.err
    return out


@pytest.fixture
def lm_run(tmp_path, lm_jsonl, capsys) -> Path:
    prof = tiny_lm_profile(tmp_path, lm_jsonl, epochs=2)
    out = run_inproc(["train", str(prof)], capsys)
    return Path(out.out.strip().splitlines()[-1])


def test_samples_greedy_and_sampled_beside_references(lm_run, lm_jsonl, capsys):
    runs = str(lm_run.parent)
    out = run_inproc(["samples", lm_run.name, "--runs-dir", runs, "--n", "3", "--temperature",
                      "1.5", "--top-p", "0.9", "--max-new-tokens", "6", "--json"], capsys)
    data = json.loads(out.out)
    assert (data["split"], data["temperature"], data["top_p"], data["max_new_tokens"]) == (
        "validation", 1.5, 0.9, 6)
    samples = data["samples"]
    assert len(samples) == 3
    source = {json.loads(line)["prompt"]: json.loads(line)["response"]
              for line in lm_jsonl.read_text().splitlines()}
    for s in samples:
        assert source[s["prompt"]] == s["reference"]  # a real validation pair of the data file
        assert isinstance(s["row"], int) and s["row"] >= 1
        assert isinstance(s["greedy"], str) and isinstance(s["sampled"], str)
    # Greedy is deterministic: asking again gives the same text; the sampled one is seeded.
    again = json.loads(run_inproc(["samples", lm_run.name, "--runs-dir", runs, "--n", "3",
                                   "--temperature", "1.5", "--top-p", "0.9",
                                   "--max-new-tokens", "6", "--json"], capsys).out)
    assert [s["greedy"] for s in again["samples"]] == [s["greedy"] for s in samples]
    assert [s["sampled"] for s in again["samples"]] == [s["sampled"] for s in samples]
    text = run_inproc(["samples", lm_run.name, "--runs-dir", runs, "--n", "1"], capsys).out
    assert "reference:" in text and "greedy:" in text and "sampled:" in text


def test_samples_settings_and_split_errors(lm_run, capsys):
    runs = str(lm_run.parent)
    err = run_inproc(["samples", lm_run.name, "--runs-dir", runs, "--top-p", "1.5"], capsys, code=2).err
    assert "--top-p 1.5: must be in (0, 1]" in err
    err = run_inproc(["samples", lm_run.name, "--runs-dir", runs, "--temperature", "0"], capsys, code=2).err
    assert "--temperature 0.0: must be above 0" in err
    err = run_inproc(["samples", lm_run.name, "--runs-dir", runs, "--split", "holdout"], capsys, code=2).err
    assert "--split holdout" in err and "has no holdout rows (it has: train, validation, test)" in err
    err = run_inproc(["samples", lm_run.name, "--runs-dir", runs, "--n", "0"], capsys, code=2).err
    assert "--n 0: ask for at least 1 sample" in err


def test_serve_lines_answers_and_survives_bad_lines(lm_run):
    from tunedeck.core.cli.analysis_commands import serve_lines
    from tunedeck.core.eval.run_model import load_run_model
    from tunedeck.core.runs.rundir import RunDir

    rm = load_run_model(RunDir(lm_run))
    out = io.StringIO()
    serve_lines(rm, io.StringIO('{"text": "add 2 and 3"}\nnot json\n{"txt": 1}\n\n'
                                '{"text": "add 2 and 3"}\n'), out)
    replies = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(replies) == 4
    assert isinstance(replies[0]["generation"], str)
    assert "error" in replies[1] and 'non-empty "text"' in replies[2]["error"]
    assert replies[3] == replies[0]  # greedy: the same answer


def test_serve_predict_subprocess_classifier(tmp_path, cls_csv, capsys):
    prof = tiny_cls_profile(tmp_path, cls_csv, epochs=2)
    run_dir = Path(run_inproc(["train", str(prof)], capsys).out.strip().splitlines()[-1])
    proc = subprocess.run(TUNEDECK + ["serve-predict", str(run_dir)], input='{"text": "great love"}\n',
                          capture_output=True, text=True, env=cli_env(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr
    ready, reply = [json.loads(line) for line in proc.stdout.splitlines()]
    assert ready == {"ready": True, "run_id": run_dir.name, "task": "classification"}
    assert set(reply["probabilities"]) == {"neg", "pos"}
    assert reply["label"] in ("neg", "pos")
    assert sum(reply["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    # the same answer as `tunedeck predict RUN TEXT` (one loader, one answering function)
    single = json.loads(run_inproc(["predict", str(run_dir), "great love", "--json"], capsys).out)
    assert single == reply
    # errors: a classifier has no samples; a run without saved evaluations says what to run
    err = run_inproc(["samples", str(run_dir)], capsys, code=2).err
    assert "is a classifier" in err
    err = run_inproc(["errors", str(run_dir)], capsys, code=2).err
    assert f"tunedeck eval {run_dir.name}" in err
    write_saved_eval(run_dir, "test-final", "classification", crafted_cls_rows(), ["a", "b", "c"])
    out = run_inproc(["errors", str(run_dir)], capsys).out
    assert "ECE 0.3450" in out and "a -> b p=0.900" in out
    data = json.loads(run_inproc(["errors", str(run_dir), "--json", "--top", "2"], capsys).out)
    assert [e["index"] for e in data["confidently_wrong"]] == [2, 6]
