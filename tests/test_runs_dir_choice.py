"""Where `train`/`start` put a new run: --runs-dir or --set, else $TUNEDECK_RUNS_DIR (where the
TUI and `tunedeck runs` look), else the profile's output.runs_dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from tdhelpers import tiny_cls_profile


@pytest.fixture
def started(monkeypatch, tmp_path):
    """`tunedeck start` in process, with the launch replaced: returns the run directories made."""
    import tunedeck.core.runs.lifecycle

    monkeypatch.setattr(tunedeck.core.runs.lifecycle, "start_detached", lambda run, **kw: 4242)
    monkeypatch.chdir(tmp_path)

    def start(argv: list[str], capsys) -> Path:
        from tunedeck.core.cli import main

        assert main(argv) == 0
        return Path(capsys.readouterr().out.strip().splitlines()[-1])
    return start


@pytest.mark.parametrize("how", ["profile", "env", "flag", "flag-over-env", "set-over-env"])
def test_where_a_new_run_goes(how, started, cls_csv, tmp_path, monkeypatch, capsys):
    prof = tiny_cls_profile(tmp_path, cls_csv)  # output.runs_dir = tmp/runs
    argv = ["start", str(prof)]
    expect = tmp_path / "runs"
    if how in ("env", "flag-over-env", "set-over-env"):
        monkeypatch.setenv("TUNEDECK_RUNS_DIR", str(tmp_path / "from-env"))
        expect = tmp_path / "from-env"
    if how.startswith("flag"):
        argv += ["--runs-dir", str(tmp_path / "from-flag")]
        expect = tmp_path / "from-flag"
    if how == "set-over-env":
        argv += ["--set", f'output.runs_dir="{tmp_path / "from-set"}"']
        expect = tmp_path / "from-set"
    run = started(argv, capsys)
    assert run.parent == expect.resolve()
    # The frozen profile says where the run really is, so a resume from anywhere finds it.
    assert f'runs_dir = "{expect.resolve()}"' in (run / "profile.toml").read_text()
