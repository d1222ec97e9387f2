"""The TUI process never imports torch (or transformers, datasets, accelerate), and imports only
the torch-free core modules. Checked in a fresh interpreter that opens every screen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "datasets", "accelerate", "evaluate", "safetensors")
# Torch-free core modules the TUI may import (and their submodules), and the packages above them.
ALLOWED_CORE = ("tunedeck.core.runs.rundir", "tunedeck.core.runs.events", "tunedeck.core.errors",
                "tunedeck.core.runs.protocol", "tunedeck.core.runs.listing",
                "tunedeck.core.runs.lifecycle", "tunedeck.core.runs.launch",
                "tunedeck.core.runs.launch_checks", "tunedeck.core.runs.gpu_stats",
                "tunedeck.core.runs.drivers.base", "tunedeck.core.runs.drivers.cv_summary",
                "tunedeck.core.fsutil", "tunedeck.core.profile",
                "tunedeck.core.data.formats", "tunedeck.core.data.reader", "tunedeck.core.data.head",
                "tunedeck.core.data.batches",
                "tunedeck.core.data.delimited", "tunedeck.core.data.json_reader",
                "tunedeck.core.data.cleaning", "tunedeck.core.data.split",
                "tunedeck.core.eval.error_analysis", "tunedeck.core.eval.predictions",
                "tunedeck.core.data.table_stats", "tunedeck.core.eval.compare",
                "tunedeck.core.prepare.annotation", "tunedeck.core.data.chat")
ALLOWED_PACKAGES = ("tunedeck.core", "tunedeck.core.runs", "tunedeck.core.data", "tunedeck.core.eval",
                    "tunedeck.core.runs.drivers", "tunedeck.core.prepare")
# The console script parses with the CLI's (torch-free) parser and runs non-TUI commands in
# process; core.models resolves model paths without importing torch.
ALLOWED_EXTRA = {"entry.py": ("tunedeck.core.cli",), "data_source.py": ("tunedeck.core.models",)}


def allowed(m: str) -> bool:
    return m in ALLOWED_PACKAGES or any(m == a or m.startswith(a + ".") for a in ALLOWED_CORE)

SCRIPT = textwrap.dedent('''
    import asyncio, json, sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from tui_fakes import fake_services, make_run, training_events
    from tunedeck.tui.app import TunedeckApp
    from tunedeck.tui.screens.datasets import DatasetsScreen
    from tunedeck.tui.screens.editor import EditorScreen
    from tunedeck.tui.screens.environment import EnvironmentScreen
    from tunedeck.tui.screens.dashboard import DashboardScreen

    runs = Path("runs")
    run = make_run(runs, "a-20260101-000000-0001", state="finished", events=training_events(20))
    run2 = make_run(runs, "b-20260101-000000-0002", state="finished", events=training_events(20))
    Path("d.csv").write_text("text,label\\nhello,a\\nworld,b\\n")

    async def wait(pilot, cond):
        for _ in range(200):
            if cond():
                return
            await pilot.pause(0.05)
        raise SystemExit("timeout")

    async def main():
        app = TunedeckApp(runs, services=fake_services())
        async with app.run_test() as pilot:
            await pilot.pause()
            app.open_dashboard(run.path)
            await wait(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready)
            app.open_compare([run.path, run2.path])
            await wait(pilot, lambda: getattr(app.screen, "comparison", None) is not None)
            app.open_dataset(Path("d.csv"))
            await wait(pilot, lambda: isinstance(app.screen, DatasetsScreen) and app.screen.stats is not None)
            await pilot.press("a")  # the annotation screen reads the file in process
            await wait(pilot, lambda: getattr(app.screen, "session", None) is not None)
            await pilot.press("escape")
            app.open_editor()
            await wait(pilot, lambda: isinstance(app.screen, EditorScreen) and app.screen.ready)
            await pilot.press("ctrl+t")
            await pilot.press("f2")
            await wait(pilot, lambda: isinstance(app.screen, EnvironmentScreen) and app.screen.report is not None)
            await pilot.press("ctrl+p")
            await pilot.pause(0.3)
        print(json.dumps(sorted(sys.modules)))

    asyncio.run(main())
''')


def test_no_torch_in_the_tui_process(tmp_path: Path) -> None:
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(tests=str(Path(__file__).parent))],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    mods = json.loads(proc.stdout.strip().splitlines()[-1])
    heavy = [m for m in mods if m.split(".")[0] in HEAVY]
    assert heavy == [], f"the TUI imported {heavy[:10]}"
    core = [m for m in mods if m == "tunedeck.core" or m.startswith("tunedeck.core.")]
    bad = [m for m in core if not allowed(m)]
    assert bad == [], f"the TUI imported core modules outside the torch-free set: {bad}"


def test_tui_sources_import_only_allowed_core_modules() -> None:
    import ast

    for path in (ROOT / "tui").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for n in names:
                top = n.split(".")[0]
                assert top not in HEAVY, f"{path}: imports {n}"
                assert top not in ("core", "tui"), f"{path}: imports {n} (the package is tunedeck.*)"
                if n.startswith("tunedeck.core"):
                    assert allowed(n) or n in ALLOWED_EXTRA.get(path.name, ()), f"{path}: imports {n}"
