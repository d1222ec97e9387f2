"""Promise 8: no code execution from data. Checkpoints load through safetensors and
``torch.load(weights_only=True)`` only: a crafted pickle is refused and its payload never runs.
trust_remote_code is off unless the profile says so. Run and profile names cannot escape their
directories. Hub tokens are never written into run artifacts. No subprocess runs through a
shell."""

from __future__ import annotations

import ast
import json
import os
import pickle
from pathlib import Path

import pytest

from tunedeck.core.engine import checkpoint as C
from tunedeck.core.errors import ModelError, RunError
from test_reliability_support import (  # noqa: F401 - fixtures
    ROOT, checkpoint_steps, clean_hooks, cls_setup, of_type, one_thread, resume_fg, status, train_fg,
    train_killed)


class _Payload:
    """Unpickling this creates ``path``: proof that code ran."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    os.environ.pop("TUNEDECK_TEST_KILL_AT_STEP", None)
    try:
        prof = cls_setup(tmp_path_factory.mktemp("security"), save_every_steps=2)
        run, outcome = train_killed(prof, {"TUNEDECK_TEST_HOOKS": "step:4=TERM"})
    finally:
        torch.set_num_threads(n)
    assert outcome == ("exit", 0) and status(run)["state"] == "stopped"
    return run


def _plant(ckpt: Path, name: str, payload: object) -> None:
    (ckpt / name).write_bytes(pickle.dumps(payload, protocol=2))
    manifest = json.loads((ckpt / C.COMPLETE).read_text())  # an attacker fixes the manifest too
    manifest["files"][name] = (ckpt / name).stat().st_size
    (ckpt / C.COMPLETE).write_text(json.dumps(manifest))


@pytest.mark.usefixtures("one_thread", "clean_hooks")
@pytest.mark.parametrize("name", ["optimizer.pt", "scheduler.pt", "rng.pt"])
def test_crafted_pickle_in_checkpoint_is_refused(stopped_run, tmp_path, name):
    import shutil

    run = tmp_path / stopped_run.name
    shutil.copytree(stopped_run, run)
    ckpt = C.list_complete(run / "checkpoints")[-1]
    marker = tmp_path / "PWNED"
    _plant(ckpt, name, _Payload(marker))
    assert C.is_complete(ckpt)
    assert resume_fg(run) == 1
    assert not marker.exists(), "the pickle's payload ran"
    st = status(run)
    assert st["state"] == "failed"
    assert "refused" in st["message"] and name in st["message"] and "run code" in st["message"]
    assert "Traceback" not in st["message"]
    assert of_type(run, "run_failed")[-1]["error"] == st["message"]
    assert not (run / "model").exists()
    # Loading it directly refuses too, and leaves the model untouched.
    import torch

    model = torch.nn.Linear(2, 2)
    with pytest.raises(C.UnsafeCheckpoint):
        C.load_checkpoint(ckpt, model, torch.optim.AdamW(model.parameters()),
                          torch.optim.lr_scheduler.LambdaLR(torch.optim.AdamW(model.parameters()), lambda s: 1))
    assert not marker.exists()


def test_torch_zip_pickle_is_refused_too(tmp_path):
    import torch

    marker = tmp_path / "PWNED"
    torch.save({"state": {}, "evil": _Payload(marker)}, tmp_path / "optimizer.pt")
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "optimizer.pt", weights_only=True)
    assert not marker.exists()


# --- trust_remote_code --------------------------------------------------------------------

def test_trust_remote_code_is_off_by_default_and_passed_through(tmp_path, monkeypatch):
    import transformers

    from tunedeck.core import models
    from tunedeck.core.runs.lifecycle import load_profile as _load_profile
    from tunedeck.core.profile.schema import ModelSection

    assert ModelSection().trust_remote_code is False
    seen: list[object] = []

    def spy(cls, name, **kw):
        seen.append(kw.get("trust_remote_code", "absent"))
        raise OSError("offline in this test")

    for auto in (transformers.AutoConfig, transformers.AutoTokenizer,
                 transformers.AutoModelForSequenceClassification):
        monkeypatch.setattr(auto, "from_pretrained", classmethod(spy))
    prof = _load_profile(str(cls_setup(tmp_path)), ["model.name=\"some-org/some-model\""])
    prof = prof.model_copy(update={"model": prof.model.model_copy(update={"config": None})})
    for call in (lambda p: models.load_tokenizer(p),
                 lambda p: models.build_config(p, None, {}),
                 lambda p: models.load_model(p, transformers.AutoModelForSequenceClassification, None)):
        with pytest.raises(ModelError):
            call(prof)
    assert seen and all(v is False for v in seen), seen
    seen.clear()
    trusted = prof.model_copy(update={"model": prof.model.model_copy(update={"trust_remote_code": True})})
    with pytest.raises(ModelError):
        models.build_config(trusted, None, {})
    assert seen == [True]


def test_remote_code_in_a_model_directory_never_runs(tmp_path):
    """A local model directory whose config asks for its own Python code: refused with a clear
    ModelError, and the code is never imported."""
    from tunedeck.core import models
    from tunedeck.core.runs.lifecycle import load_profile as _load_profile

    marker = tmp_path / "PWNED"
    mdir = tmp_path / "evil-model"
    mdir.mkdir()
    (mdir / "config.json").write_text(json.dumps({
        "model_type": "evil-arch", "architectures": ["EvilModel"],
        "auto_map": {"AutoConfig": "configuration_evil.EvilConfig",
                     "AutoModelForSequenceClassification": "modeling_evil.EvilModel"}}))
    code = f"open({str(marker)!r}, 'w').close()\nfrom transformers import PretrainedConfig\n" \
           "class EvilConfig(PretrainedConfig):\n    model_type = 'evil-arch'\n"
    (mdir / "configuration_evil.py").write_text(code)
    (mdir / "modeling_evil.py").write_text(code)
    prof = _load_profile(str(cls_setup(tmp_path)), [f"model.name=\"{mdir}\""])
    prof = prof.model_copy(update={"model": prof.model.model_copy(update={"config": None})})
    with pytest.raises(ModelError) as e:
        models.build_config(prof, None, {})
    assert "model.name" in str(e.value)
    assert not marker.exists()


# --- names --------------------------------------------------------------------------------

def test_run_names_cannot_escape(tmp_path):
    from tunedeck.core.runs.listing import list_runs
    from tunedeck.core.runs.rundir import create_run, find_run

    runs = tmp_path / "runs"
    outside = tmp_path / "outside"
    victim = create_run(outside, "victim", "name = 'victim'\n")
    mine = create_run(runs, "mine", "name = 'mine'\n")
    os.symlink(victim.path, runs / "zz-link")  # a symlink planted inside runs/
    assert find_run(runs, mine.id).path == mine.path
    for ref in ("zz-link", "zz", "victim", victim.id):
        with pytest.raises(RunError):
            find_run(runs, ref)
    assert [r.id for r in list_runs(runs)] == [mine.id]
    with pytest.raises(RunError):
        find_run(runs, str(runs / "zz-link"))  # even as a path: not through a symlink
    for bad in ("../escape", "/abs", "a/b", "..", ".hidden", "", "x" * 200):
        with pytest.raises(RunError):
            create_run(runs, bad, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "runs"]
    assert sorted(p.name for p in runs.iterdir()) == sorted([mine.id, "zz-link"])


def test_profile_names_cannot_escape():
    from tunedeck.core.errors import ProfileError
    from tunedeck.core.profile import loads

    for bad in ("../x", "/etc/x", "a/b", "..", ".x", "x\\..\\y", "a\x00b", "~root"):
        with pytest.raises(ProfileError):
            loads(f"name = {json.dumps(bad)}\n")


# --- tokens -------------------------------------------------------------------------------

@pytest.mark.usefixtures("one_thread", "clean_hooks")
def test_hub_token_never_written(tmp_path, monkeypatch):
    token = "hf_" + "Tk9" * 11
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", token)
    hf_home = tmp_path / "hf"
    hf_home.mkdir()
    (hf_home / "token").write_text(token)  # the standard token file
    monkeypatch.setenv("HF_HOME", str(hf_home))
    prof = cls_setup(tmp_path / "p", save_every_steps=3, epochs=1)
    run = train_fg(prof)
    assert status(run)["state"] == "finished"
    files = [p for p in run.rglob("*") if p.is_file()]
    assert len(files) > 10
    assert [str(p) for p in files if token.encode() in p.read_bytes()] == []
    assert token not in prof.read_text()


# --- no shell, no unsafe loaders ----------------------------------------------------------

def _sources() -> list[Path]:
    out = []
    for top in ("core", "tui", "scripts", "benchmarks"):
        d = ROOT / top
        if d.is_dir():
            out += sorted(d.rglob("*.py"))
    return out


def test_no_shell_and_no_unsafe_loading_in_the_source_tree():
    problems = []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if "shell" in kw and not (isinstance(kw["shell"], ast.Constant) and kw["shell"].value is False):
                problems.append(f"{where}: {name}(shell=...)")
            if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput",
                        "pickle.load", "pickle.loads", "eval", "exec", "yaml.load"):
                problems.append(f"{where}: {name}()")
            if name.endswith("torch.load") or name == "load" and "weights_only" in kw:
                w = kw.get("weights_only")
                if not (isinstance(w, ast.Constant) and w.value is True):
                    problems.append(f"{where}: torch.load without weights_only=True")
            t = kw.get("trust_remote_code")
            if isinstance(t, ast.Constant) and t.value is True:
                problems.append(f"{where}: trust_remote_code=True hard-coded")
    assert problems == []
    assert len(_sources()) > 10
