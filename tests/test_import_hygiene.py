"""core/ never imports textual or tui/; the torch-free core modules stay torch-free."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_core_never_imports_ui():
    offenders = []
    for f in (ROOT / "core").rglob("*.py"):
        for mod in imported_modules(f):
            top = mod.split(".")[0]
            if top in ("textual", "textual_fastdatatable") or mod.startswith("tunedeck.tui"):
                offenders.append(f"{f.relative_to(ROOT)} imports {mod}")
    assert not offenders, offenders


def test_core_runtime_import_pulls_no_ui():
    code = (
        "import sys, importlib, pkgutil, tunedeck.core\n"
        "for m in pkgutil.walk_packages(tunedeck.core.__path__, 'tunedeck.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'textual' or m.startswith('tunedeck.tui')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_torch_free_core_modules():
    code = (
        "import sys\n"
        "import tunedeck.core.runs.rundir, tunedeck.core.runs.events, tunedeck.core.profile, tunedeck.core.profile.fields, tunedeck.core.errors, tunedeck.core.fsutil\n"
        "import tunedeck.core.runs.protocol, tunedeck.core.runs.listing, tunedeck.core.runs.lifecycle, tunedeck.core.runs.launch_checks, tunedeck.core.cli\n"
        "import tunedeck.core.data.formats, tunedeck.core.data.head, tunedeck.core.data.reader, tunedeck.core.data.cleaning, tunedeck.core.data.split, tunedeck.core.data.table_stats\n"
        "bad = [m for m in ('torch', 'transformers', 'datasets', 'accelerate') if m in sys.modules]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_no_shell_subprocesses():
    for f in list((ROOT / "core").rglob("*.py")) + list((ROOT / "tui").rglob("*.py")):
        text = f.read_text(encoding="utf-8")
        assert "shell=True" not in text and "os.system(" not in text, f
