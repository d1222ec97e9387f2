"""Profiles: round trip, every validation error, --set, docs generated from the one schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunedeck.core.errors import ProfileError
from tunedeck.core.profile import apply_set, dumps, load, loads, new_profile
from tunedeck.core.profile.fields import field_specs, markdown

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("task", ["classification", "causal-lm", "seq2seq"])
def test_round_trip(task, tmp_path):
    p = new_profile(task)
    text = dumps(p)
    again = loads(text)
    assert again == p
    assert dumps(again) == text
    f = tmp_path / "p.toml"
    f.write_text(text)
    assert load(f) == p


def test_sample_profiles_valid():
    for f in (ROOT / "sample_data").glob("*.toml"):
        load(f)


def err(text: str, sets=None) -> str:
    with pytest.raises(ProfileError) as e:
        loads(text, "p.toml", sets=sets)
    return str(e.value)


def test_unknown_key_did_you_mean_with_line():
    msg = err('name = "x"\n[training]\nepochs = 1\nlearnig_rate = 1e-4\n')
    assert "p.toml:4 training.learnig_rate" in msg
    assert "did you mean 'training.learning_rate'" in msg


def test_unknown_section():
    msg = err('name = "x"\n[trainig]\nepochs = 1\n')
    assert "trainig" in msg and "did you mean 'training'" in msg


def test_wrong_type_names_key_and_line():
    msg = err('name = "x"\n\n[training]\nbatch_size = "big"\n')
    assert "p.toml:4 training.batch_size" in msg


@pytest.mark.parametrize(
    "body,key",
    [
        ("[training]\nlearning_rate = -0.1", "training.learning_rate"),
        ("[training]\nlearning_rate = nan", "training.learning_rate"),
        ("[training]\nlearning_rate = inf", "training.learning_rate"),
        ("[training]\nmax_steps = -5", "training.max_steps"),
        ("[training]\nbatch_size = 0", "training.batch_size"),
        ("[training]\nbatch_size = 99999999999999", "training.batch_size"),
        ("[training]\nprecision = \"fp8\"", "training.precision"),
        ("[data]\nsplit = [0.5, 0.2, 0.2]", "data.split"),
        ("[data]\nsplit = [1.0]", "data.split"),
        ("[data]\nformat = \"xlsx\"", "data.format"),
        ("[task]\ntype = \"regression\"", "task.type"),
        ("schema_version = 99", "schema_version"),
    ],
)
def test_impossible_values(body, key):
    msg = err('name = "x"\n' + body + "\n")
    assert key in msg
    assert "p.toml:" in msg


def test_bad_name_cannot_escape():
    for bad in ("../up", "/abs", "a/b", "..", ""):
        assert "name" in err(f'name = "{bad}"\n')


def test_prompt_without_response():
    msg = err('name = "x"\n[task]\ntype = "causal-lm"\n[data]\nprompt_column = "q"\n')
    assert "response_column" in msg


def test_not_toml():
    assert "not valid TOML" in err("name = \n[[[")


def test_several_problems_reported_together():
    msg = err('name = "x"\n[training]\nepochs = -1\nbatch_size = 0\n')
    assert "training.epochs" in msg and "training.batch_size" in msg


def test_set_overrides_use_same_validation():
    p = loads('name = "x"\n', sets=["training.epochs=2", "model.name=foo", "data.split=[0.9,0.05,0.05]"])
    assert p.training.epochs == 2 and p.model.name == "foo"
    assert p.data.split == [0.9, 0.05, 0.05]
    assert "training.epochs" in err('name = "x"\n', sets=["training.epochs=-1"])
    assert "did you mean" in err('name = "x"\n', sets=["training.epoch=2"])
    with pytest.raises(ProfileError):
        apply_set({}, "no-equals-sign")


def test_a_bad_set_value_is_blamed_on_set_not_on_a_file_line():
    text = 'name = "x"\n[training]\nmax_steps = 20\n'
    msg = err(text, sets=["training.max_steps=abc"])
    assert "--set training.max_steps" in msg and "p.toml:3" not in msg
    msg = err(text, sets=["training.max_stps=3"])
    assert "--set training.max_stps" in msg and "did you mean 'training.max_steps'" in msg
    # A problem in the file itself still names its line.
    assert "p.toml:3 training.max_steps" in err('name = "x"\n[training]\nmax_steps = -1\n',
                                                sets=["training.epochs=2"])


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ProfileError, match="no such file"):
        load(tmp_path / "nope.toml")
    with pytest.raises(ProfileError, match="not a regular file"):
        load(tmp_path)


def test_bom_and_crlf_accepted(tmp_path):
    f = tmp_path / "p.toml"
    f.write_bytes(b"\xef\xbb\xbfname = \"x\"\r\n[training]\r\nepochs = 2\r\n")
    assert load(f).training.epochs == 2


def test_field_specs_cover_schema_with_descriptions():
    specs = field_specs()
    paths = {s.path for s in specs}
    for key in ("task.type", "model.name", "data.train", "data.split", "training.learning_rate",
                "training.precision", "training.keep_checkpoints", "output.runs_dir"):
        assert key in paths
    assert all(s.description for s in specs)
    prec = next(s for s in specs if s.path == "training.precision")
    assert prec.kind == "choice" and "bf16" in prec.choices


def test_docs_generated_and_current():
    assert (ROOT / "docs" / "profile.md").read_text() == markdown(), \
        "docs/profile.md is stale: run `tunedeck profile docs > docs/profile.md`"
