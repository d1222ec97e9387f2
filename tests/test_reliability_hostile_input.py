"""Promise 7: hostile or broken input. Each case runs ``tunedeck train PROFILE`` and must end
with exit code 2, one clear message on stderr naming the file/line/field, no traceback, and no
run directory or partial output left behind. Most run in-process (``tunedeck.core.cli.main``); a few,
including the FIFO, through a real subprocess. A Hypothesis test feeds thousands of generated
TOML documents to the profile loader: only ProfileError ever escapes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from test_reliability_support import TINY_BERT, TUNEDECK, cli_env, make_classification_rows

# --- the base case: a valid tiny profile and data file --------------------------------------


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


def base_sections(data: str) -> dict[str, dict[str, object]]:
    return {
        "": {"name": "hostile"},
        "task": {"type": "classification"},
        "model": {"config": dict(TINY_BERT)},
        "data": {"train": data},
        "training": {"epochs": 1, "batch_size": 16, "max_length": 32, "learning_rate": 3e-3},
        "output": {"runs_dir": "runs"},
    }


def render(sections: dict[str, dict[str, object]], raw: dict[str, str] | None = None) -> str:
    """TOML text; ``raw`` maps 'section.key' to a verbatim TOML value (nan, inf, garbage)."""
    raw = dict(raw or {})
    out: list[str] = []
    for sec, kv in sections.items():
        if sec:
            out.append(f"\n[{sec}]")
        for k, v in kv.items():
            key = f"{sec}.{k}" if sec else k
            out.append(f"{k} = {raw.pop(key) if key in raw else _toml_value(v)}")
        for key in [k for k in raw if (k.rpartition(".")[0] == sec)]:
            out.append(f"{key.rpartition('.')[2]} = {raw.pop(key)}")
    assert not raw, raw
    return "\n".join(out) + "\n"


def csv_text(n: int = 60) -> str:
    return "text,label\n" + "".join(f"{t},{l}\n" for t, l in make_classification_rows(n))


@dataclass
class Case:
    id: str
    expect: list[str]  # substrings the message must hold (file/line/field + what)
    profile: Callable[[Path], str] | None = None  # tmp -> TOML text (default: the base)
    data: Callable[[Path], None] | None = None  # writes tmp/"data.csv" (or whatever it names)
    args: list[str] = field(default_factory=list)


def _p(raw: dict[str, str] | None = None, drop: tuple[str, ...] = (), data: str = "data.csv",
       edit: Callable[[dict], None] | None = None) -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        secs = base_sections(data)
        for key in drop:
            sec, _, k = key.rpartition(".")
            secs[sec].pop(k, None)
        if edit:
            edit(secs)
        return render(secs, raw)
    return make


def _text(s: str) -> Callable[[Path], str]:
    return lambda tmp: s


def _write(name: str, content: bytes | str) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        p = tmp / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return make


def _csv(rows: list[tuple[str, str]], header: str = "text,label", name: str = "data.csv",
         nl: str = "\n") -> Callable[[Path], None]:
    body = header + nl + "".join(f"{t},{l}{nl}" for t, l in rows)
    return _write(name, body)


GOOD = make_classification_rows(60)
PROF = "profile.toml"

PROFILE_CASES = [
    Case("unknown-top-key", ["profile.toml", "colour", "unknown key"], _p({"colour": '"red"'})),
    Case("typo-did-you-mean", ["training.learning_rat", "did you mean", "training.learning_rate"],
         _p({"training.learning_rat": "0.1"})),
    Case("unknown-section", ["optimizer", "unknown key"], _p(edit=lambda s: s.update(optimizer={"x": 1}))),
    Case("epochs-string", ["training.epochs", "three"], _p({"training.epochs": '"three"'})),
    Case("nan-lr", ["training.learning_rate", "finite"], _p({"training.learning_rate": "nan"})),
    Case("inf-lr", ["training.learning_rate", "finite"], _p({"training.learning_rate": "inf"})),
    Case("negative-lr", ["training.learning_rate", "greater than 0"], _p({"training.learning_rate": "-0.1"})),
    Case("negative-max-steps", ["training.max_steps", "-5"], _p({"training.max_steps": "-5"})),
    Case("zero-batch", ["training.batch_size"], _p({"training.batch_size": "0"})),
    Case("huge-batch", ["training.batch_size", "1000000000000"], _p({"training.batch_size": "1000000000000"})),
    Case("huge-epochs", ["training.epochs"], _p({"training.epochs": "1e308"})),
    Case("int-overflow", ["profile.toml:", "training.seed"], _p({"training.seed": "99999999999999999999999"})),
    Case("seed-negative", ["training.seed"], _p({"training.seed": "-1"})),
    Case("bool-as-int", ["training.batch_size"], _p({"training.batch_size": "true"}),
         args=["--set", "training.max_steps=1"]),
    Case("float-steps", ["training.max_steps", "2.5"], _p({"training.max_steps": "2.5"})),
    Case("toml-syntax", ["profile.toml", "not valid TOML"], _text("name = 'x'\n[training\nepochs = 1\n")),
    Case("duplicate-key", ["profile.toml", "not valid TOML"],
         _text('name = "a"\nname = "b"\n')),
    Case("bad-task", ["task.type", "regression"], _p({"task.type": '"regression"'})),
    Case("future-schema", ["schema_version"], _p({"schema_version": "99"})),
    Case("name-dotdot", ["name", "'..'"], _p({"name": '"../escape"'})),
    Case("name-absolute", ["name"], _p({"name": '"/etc/passwd"'})),
    Case("name-empty", ["name"], _p({"name": '""'})),
    Case("name-huge", ["name"], _p({"name": json.dumps("n" * 1000)})),
    Case("split-sum", ["data.split", "sum to 1"], _p({"data.split": "[0.5, 0.1, 0.1]"})),
    Case("split-length", ["data.split", "three"], _p({"data.split": "[0.9, 0.1]"})),
    Case("split-negative", ["data.split"], _p({"data.split": "[1.2, -0.1, -0.1]"})),
    Case("bad-precision", ["training.precision", "fp8"], _p({"training.precision": '"fp8"'})),
    Case("model-not-table", ["model"], _p(edit=lambda s: (s.pop("model"), s[""].update(model="bert")))),
    Case("training-not-table", ["training"], _p(edit=lambda s: (s.pop("training"), s[""].update(training=5)))),
    Case("dropout-1.5", ["training.dropout"], _p({"training.dropout": "1.5"})),
    Case("max-length-4", ["training.max_length"], _p({"training.max_length": "4"})),
    Case("warmup-2", ["training.warmup_ratio"], _p({"training.warmup_ratio": "2.0"})),
    Case("keep-zero", ["training.keep_checkpoints"], _p({"training.keep_checkpoints": "0"})),
    Case("format-xml", ["data.format", "xml"], _p({"data.format": '"xml"'})),
    Case("empty-text-column-name", ["data.text_column"], _p({"data.text_column": '""'})),
    Case("prompt-without-response", ["response_column"], _p({"data.prompt_column": '"text"'})),
    Case("eval-batch-negative", ["training.eval_batch_size"], _p({"training.eval_batch_size": "-3"})),
    Case("no-train-data", ["data.train"], _p(drop=("data.train",))),
    Case("profile-empty-file", ["data.train"], _text("")),
    Case("profile-latin1", ["profile.toml", "UTF-8"], lambda t: None, args=[]),  # written below
    Case("profile-is-dir", ["profile.toml", "directory"], lambda t: None),  # made below
    Case("profile-missing", ["nope.toml", "no such file"], lambda t: None, args=["--missing"]),
    Case("set-no-equals", ["--set", "section.key=value"], args=["--set", "training.epochs"]),
    Case("set-unknown", ["training.epoch", "did you mean"], args=["--set", "training.epoch=2"]),
    Case("set-nan", ["training.learning_rate", "finite"], args=["--set", "training.learning_rate=nan"]),
    Case("model-config-bad-type", ["model.config", "model_type"],
         _p(edit=lambda s: s["model"].update(config={"model_type": "no-such-arch"}))),
    Case("model-config-typo-key", ["model.config.num_hidden_layer", "did you mean 'num_hidden_layers'"],
         _p(edit=lambda s: s["model"]["config"].update(num_hidden_layer=1))),
    Case("model-config-cannot-build", ["model.config", "cannot build", "fix [model.config]"],
         _p(edit=lambda s: s["model"]["config"].update(hidden_size=30, num_attention_heads=4))),
    Case("model-hub-id-offline-uncached", ["no-such-org/no-such-model", "local"],
         _p(edit=lambda s: s["model"].update(name="no-such-org/no-such-model") or
            s["model"].pop("config"))),
    Case("model-missing-dir", ["model.name", "no directory"],
         _p(edit=lambda s: s["model"].update(name="./no-such-model-dir", config=None) or
            s["model"].pop("config"))),
]

DATA_CASES = [
    Case("data-missing", ["data.csv", "no such file"], data=None),
    Case("data-empty", ["data.csv", "empty"], data=_write("data.csv", b"")),
    Case("data-whitespace", ["data.csv", "empty"], data=_write("data.csv", "\n  \n\t\n")),
    Case("header-only", ["data.csv", "header", "no rows"], data=_write("data.csv", "text,label\n")),
    Case("missing-text-column", ["data.csv", "text"], data=_csv(GOOD, header="body,label")),
    Case("missing-label-column", ["data.csv", "label"], data=_csv(GOOD, header="text,category")),
    Case("ragged-row", ["data.csv:5"], data=_write(
        "data.csv", "text,label\n" + "".join(f"{t},{l}\n" for t, l in GOOD[:3]) + "a,b,c,d\n"
        + "".join(f"{t},{l}\n" for t, l in GOOD[3:]))),
    Case("jsonl-malformed-line", ["data.jsonl:3", "not valid JSON"], _p(data="data.jsonl"),
         data=_write("data.jsonl", "".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in GOOD[:2])
                     + '{"text": "broken", "label": \n'
                     + "".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in GOOD[2:]))),
    Case("jsonl-array-line", ["data.jsonl:2", "not an object"], _p(data="data.jsonl"),
         data=_write("data.jsonl", json.dumps({"text": "a", "label": "pos"}) + "\n[1, 2]\n"
                     + "".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in GOOD))),
    Case("json-scalar", ["data.json"], _p(data="data.json"), data=_write("data.json", "42\n")),
    Case("latin1-bytes", ["data.csv", "UTF-8"], data=_write(
        "data.csv", ("text,label\n" + "".join(f"{t},{l}\n" for t, l in GOOD[:5])).encode()
        + "caf\xe9 cr\xe8me,pos\n".encode("latin-1")
        + "".join(f"{t},{l}\n" for t, l in GOOD[5:]).encode())),
    Case("utf16", ["data.csv"], data=_write("data.csv", csv_text().encode("utf-16"))),
    Case("binary-garbage", ["data.csv"], data=_write("data.csv", bytes(range(256)) * 40)),
    Case("nul-bytes", ["data.csv", "NUL"], data=_write("data.csv", csv_text().replace("movie", "mo\0vie", 1))),
    Case("empty-texts", ["data.csv", "text"], data=_csv([("", l) for _, l in GOOD])),
    Case("whitespace-texts", ["data.csv"], data=_csv([("   ", l) for _, l in GOOD])),
    Case("single-class", ["data.csv", "single"], data=_csv([(t, "pos") for t, _ in GOOD])),
    Case("empty-labels-no-clean", ["data.csv:3", "label is empty"], _p({"data.clean": "false"}),
         data=_csv(GOOD[:1] + [(t, "") for t, _ in GOOD[1:3]] + GOOD[3:])),
    Case("two-rows", ["data.csv"], data=_csv(GOOD[:2])),
    Case("data-is-dir", ["data.csv", "directory"], data=lambda t: (t / "data.csv").mkdir()),
    Case("data-is-devnull", ["/dev/null", "not a regular file"], _p(data="/dev/null")),
    Case("symlink-loop", ["data.csv"], data=lambda t: os.symlink(t / "data.csv", t / "data.csv")),
    Case("parquet-garbage", ["data.parquet", "Parquet"], _p(data="data.parquet"),
         data=_write("data.parquet", "this is not parquet at all\n" * 20)),
    Case("unknown-extension-binary", ["data.bin"], _p(data="data.bin"),
         data=_write("data.bin", bytes(range(256)) * 20)),
    Case("tsv-but-commas", ["data.tsv"], _p(data="data.tsv"), data=_csv(GOOD, name="data.tsv")),
    Case("excel-file", ["data.xlsx"], _p(data="data.xlsx"), data=_write("data.xlsx", b"PK\x03\x04" + b"\0" * 200)),
    Case("validation-unseen-label", ["val.csv", "neutral"],
         _p(edit=lambda s: s["data"].update(validation="val.csv")),
         data=lambda t: (_csv(GOOD)(t), _csv([(t_, "neutral") for t_, _ in GOOD[:10]], name="val.csv")(t))),
    Case("validation-missing", ["val.csv", "no such file"],
         _p(edit=lambda s: s["data"].update(validation="val.csv")), data=_csv(GOOD)),
    Case("duplicate-header", ["data.csv:1", "more than once"], data=_csv(GOOD, header="text,text")),
    Case("list-text-column", ["data.jsonl", "text"], _p(data="data.jsonl"),
         data=_write("data.jsonl", "".join(json.dumps({"text": [i, i], "label": l}) + "\n"
                                          for i, (_, l) in enumerate(GOOD)))),
    Case("ten-mb-line", ["data.jsonl:2"], _p(data="data.jsonl"),
         data=_write("data.jsonl", json.dumps({"text": "a", "label": "pos"}) + "\n"
                     + '{"text": "' + "x" * (10 * 1024 * 1024) + '\n')),
]


def _prepare_case(case: Case, tmp: Path) -> list[str]:
    if case.id == "profile-latin1":
        (tmp / PROF).write_bytes(render(base_sections("data.csv")).encode() + "# caf\xe9\n".encode("latin-1"))
    elif case.id == "profile-is-dir":
        (tmp / PROF).mkdir()
    elif case.id != "profile-missing":
        (tmp / PROF).write_text((case.profile or _p())(tmp) or "", encoding="utf-8")
    if case.data is not None:
        case.data(tmp)
    elif case.id not in ("data-missing",) and not case.id.startswith("data-is-devnull"):
        _csv(GOOD)(tmp)
    if case.id == "profile-missing":
        return ["train", str(tmp / "nope.toml")]
    return ["train", str(tmp / PROF), *case.args]


def _snapshot(tmp: Path) -> dict[str, str]:
    out = {}
    for p in sorted(tmp.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(tmp))] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[str(p.relative_to(tmp))] = "dir" if p.is_dir() else "other"
    return out


def check_refused(tmp: Path, rc: int, err: str, expect: list[str], before: dict[str, str]) -> None:
    assert rc == 2, (rc, err)
    assert "Traceback" not in err and 'File "' not in err, err
    assert err.startswith("tunedeck: ") and err.count("tunedeck: ") == 1, err
    for s in expect:
        assert s in err, (s, err)
    assert len(err) < 4000
    assert not (tmp / "runs").exists(), "a run directory was left behind"
    assert _snapshot(tmp) == before, "input files were modified or output was left behind"


ALL = PROFILE_CASES + DATA_CASES
XFAIL: dict[str, str] = {}  # none open: add "case-id": "reason" for a known bug


def test_at_least_fifty_cases():
    assert len(ALL) + 1 >= 50  # + the FIFO case below
    assert len({c.id for c in ALL}) == len(ALL)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(
    strict=True, reason=XFAIL[c.id])] if c.id in XFAIL else []) for c in ALL])
def test_hostile_input_in_process(case, tmp_path, capsys, monkeypatch):
    from tunedeck.core.cli import main

    monkeypatch.chdir(tmp_path)
    argv = _prepare_case(case, tmp_path)
    before = _snapshot(tmp_path)
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    if os.environ.get("TUNEDECK_SHOW_MESSAGES"):
        with open(os.environ["TUNEDECK_SHOW_MESSAGES"], "a", encoding="utf-8") as f:
            f.write(f"{case.id}: {err.replace(str(tmp_path) + '/', '')}\n")
    check_refused(tmp_path, rc, err, case.expect, before)


_START_CASES = (
    # tier "tokenize": small data, everything `train` checks (data, tokenizer, model config);
    [pytest.param(c, "tokenize", id=c.id) for c in DATA_CASES + PROFILE_CASES
     if c in DATA_CASES or c.id.startswith("model-")]
    # tier "data-layer": data too big to tokenize in `start` (here: any) still goes through the
    # data layer there.
    + [pytest.param(c, "data-layer", id=f"{c.id}-data-layer") for c in DATA_CASES])


@pytest.mark.parametrize("case,tier", _START_CASES)
def test_bad_data_is_refused_by_start_before_any_worker(case, tier, tmp_path, capsys, monkeypatch):
    """`tunedeck start` checks before launching: the same refusals, exit 2, no run directory,
    and no worker launched."""
    import tunedeck.core.runs.launch_checks
    import tunedeck.core.runs.lifecycle
    from tunedeck.core.cli import main

    def launched(*_a, **_k):
        raise AssertionError("a worker was launched for bad data")

    monkeypatch.setattr(tunedeck.core.runs.lifecycle, "start_detached", launched)
    if tier == "data-layer":
        monkeypatch.setattr(tunedeck.core.runs.launch_checks, "TOKENIZE_UP_TO_BYTES", -1)
    monkeypatch.chdir(tmp_path)
    argv = _prepare_case(case, tmp_path)
    argv[0] = "start"
    before = _snapshot(tmp_path)
    rc = main(argv)
    check_refused(tmp_path, rc, capsys.readouterr().err.strip(), case.expect, before)


def _subprocess(argv: list[str], tmp: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(TUNEDECK + argv, cwd=tmp, env=cli_env(tmp), capture_output=True,
                          text=True, timeout=timeout)


def test_fifo_as_data_file_does_not_hang(tmp_path):
    """A FIFO as data.train: refused at once (opening it would block forever)."""
    os.mkfifo(tmp_path / "data.csv")
    (tmp_path / PROF).write_text(render(base_sections("data.csv")), encoding="utf-8")
    before = _snapshot(tmp_path)
    out = _subprocess(["train", PROF], tmp_path, timeout=60)
    check_refused(tmp_path, out.returncode, out.stderr.strip(), ["data.csv", "FIFO"], before)


@pytest.mark.parametrize("case_id", ["nan-lr", "jsonl-malformed-line", "header-only"])
def test_hostile_input_through_a_real_process(case_id, tmp_path):
    case = next(c for c in ALL if c.id == case_id)
    argv = _prepare_case(case, tmp_path)
    argv[1] = os.path.relpath(argv[1], tmp_path)
    before = _snapshot(tmp_path)
    out = _subprocess(argv, tmp_path)
    check_refused(tmp_path, out.returncode, out.stderr.strip(), case.expect, before)


# --- messy but valid input is read correctly ------------------------------------------------

@pytest.mark.parametrize("variant", ["bom", "crlf", "bom+crlf"])
def test_bom_and_crlf_are_read_cleanly(tmp_path, variant):
    from tunedeck.core.runs.lifecycle import load_profile as _load_profile
    from tunedeck.core.data import read_splits as prepare

    nl = "\r\n" if "crlf" in variant else "\n"
    body = ("text,label" + nl + "".join(f"{t},{l}{nl}" for t, l in GOOD)).encode()
    if "bom" in variant:
        body = b"\xef\xbb\xbf" + body
    (tmp_path / "data.csv").write_bytes(body)
    (tmp_path / PROF).write_text(render(base_sections(str(tmp_path / "data.csv"))), encoding="utf-8")
    data = prepare(_load_profile(str(tmp_path / PROF), None))
    assert sorted(data.label_names) == ["neg", "pos"]  # no "\r", no BOM in the header
    rows = data.train[:5]
    assert all(not t.endswith("\r") and "\ufeff" not in t for t in rows["text"])


def test_mixed_type_label_column_is_text(tmp_path):
    """JSON labels 1 and "1" and "pos": read as the strings they spell, not a crash."""
    from tunedeck.core.runs.lifecycle import load_profile as _load_profile
    from tunedeck.core.data import read_splits as prepare

    lines = [json.dumps({"text": t, "label": (1 if i % 3 == 0 else "1" if i % 3 == 1 else "pos")})
             for i, (t, _) in enumerate(GOOD)]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / PROF).write_text(render(base_sections(str(tmp_path / "d.jsonl"))), encoding="utf-8")
    try:
        data = prepare(_load_profile(str(tmp_path / PROF), None))
    except Exception as e:  # a refusal is fine if it is the clear kind
        from tunedeck.core.errors import UserError

        assert isinstance(e, UserError) and "label" in str(e), repr(e)
    else:
        assert set(data.label_names) <= {"1", "pos"}


# --- generated profiles: only ProfileError escapes ------------------------------------------

def test_generated_toml_only_raises_profile_error():
    import tomli_w
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tunedeck.core.errors import ProfileError
    from tunedeck.core.profile import loads
    from tunedeck.core.profile.schema import Profile

    sections = {name: list(f.annotation.model_fields) for name, f in Profile.model_fields.items()
                if hasattr(f.annotation, "model_fields")}
    keys = st.sampled_from([k for ks in sections.values() for k in ks] + ["x", "name", "ü", ""])
    scalars = st.one_of(
        st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=True),
        st.booleans(), st.text(max_size=20), st.sampled_from(["auto", "fp32", "rows", "tokens",
                                                             "classification", "causal-lm"]))
    values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(keys, c, max_size=3),
                          max_leaves=6)
    section = st.dictionaries(keys, values, max_size=6)
    docs = st.dictionaries(st.sampled_from(list(sections) + ["name", "schema_version", "extra"]),
                           section | scalars, max_size=6)

    @settings(max_examples=1200, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(docs)
    def structured(doc):
        try:
            text = tomli_w.dumps(doc)
        except (TypeError, ValueError):
            return
        try:
            loads(text)
        except ProfileError:
            pass

    @settings(max_examples=800, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.text(alphabet=st.sampled_from(list("[]{}=\"'.,#\n\\ abc019-+_e:nfai")), max_size=80))
    def raw(text):
        try:
            loads(text)
        except ProfileError:
            pass

    structured()
    raw()
