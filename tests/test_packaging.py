"""The folders core/ and tui/ install as tunedeck.core and tunedeck.tui: nothing named plain
`core` or `tui` lands in site-packages. Checked on a built wheel installed into a fresh venv
outside the checkout: `tunedeck doctor` and a tiny `tunedeck train` from another directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tdhelpers import tiny_cls_profile

ROOT = Path(__file__).resolve().parents[1]


def _declared_packages() -> list[str]:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return sorted(doc["tool"]["setuptools"]["packages"])


def test_every_package_folder_is_declared():
    found = sorted("tunedeck." + ".".join(p.parent.relative_to(ROOT).parts)
                   for top in ("core", "tui") for p in (ROOT / top).rglob("__init__.py"))
    assert _declared_packages() == found, "pyproject.toml [tool.setuptools] packages is out of date"


def test_no_module_imports_the_bare_names():
    import ast

    bad = []
    for top in ("core", "tui", "tests", "scripts", "benchmarks", "sample_data"):
        for f in (ROOT / top).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
                bad += [f"{f.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("core", "tui")]
    assert bad == []


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path, cls_csv):
    # Build from a copy of the sources: setuptools builds in the tree (build/), where files of
    # modules since deleted would linger and ship.
    src = tmp_path / "src"
    for name in ("core", "tui"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(wheels), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("tunedeck-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"tunedeck"}, tops
    assert "tunedeck/tui/app.tcss" in names and "tunedeck/core/py.typed" in names

    venv = tmp_path / "venv"
    # The venv sees the heavy dependencies (torch...) of this interpreter, but tunedeck comes
    # from the wheel: its own site-packages is searched before the editable install's finder.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    inst = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(py), "-c", "import tunedeck.core, tunedeck.tui; print(tunedeck.core.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert where.returncode == 0 and str(venv) in where.stdout, where.stdout + where.stderr
    tunedeck = venv / "bin" / "tunedeck"
    doctor = subprocess.run([str(tunedeck), "doctor"], cwd=elsewhere, env=env, capture_output=True,
                            text=True, timeout=120)
    assert doctor.returncode in (0, 1), doctor.stderr[-2000:]
    assert "torch" in doctor.stdout
    prof = tiny_cls_profile(tmp_path, cls_csv, epochs=1)
    train = subprocess.run([str(tunedeck), "train", str(prof)], cwd=elsewhere, env=env,
                           capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-2000:]
    run_dir = Path(train.stdout.strip().splitlines()[-1])
    assert (run_dir / "model" / "config.json").exists()
