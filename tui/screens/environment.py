"""The environment report: ``tunedeck doctor --json`` run as a subprocess, shown with fixes."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, LoadingIndicator, Static

from tunedeck.core.errors import UserError
from tunedeck.tui.screens.base import BaseScreen

KNOWN = ("python", "torch", "cuda", "cuda_available", "gpus", "disk_free_gb", "offline", "problems")


def render_report(rep: dict[str, Any]) -> Group:
    """The doctor JSON; known keys first and nicely, any other key generically. Two-column
    grids so that long fixes wrap under themselves, not under the labels."""
    return Group(*problem_parts(rep), facts_table(rep))


def problem_parts(rep: dict[str, Any]) -> list[Any]:
    """The problems and their fixes (or '✓ no problems found'), then a blank line."""
    problems = rep.get("problems") or []
    if isinstance(problems, list) and problems:
        head = Text(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} to fix", style="bold red")
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=3, justify="right")
        grid.add_column(ratio=1)
        for p in problems:
            if isinstance(p, dict):
                grid.add_row(Text("✗", style="bold red"), Text(str(p.get("what", p))))
                if p.get("fix"):
                    grid.add_row(Text("→", style="yellow"), Text(str(p["fix"]), style="yellow"))
            else:
                grid.add_row(Text("✗", style="bold red"), Text(str(p), style="red"))
        return [head, grid, Text("")]
    if "problems" in rep:
        return [Text("✓ no problems found", style="bold green"), Text("")]
    return []


Row = tuple[str, Any, "bool | None"]


def facts_table(rep: dict[str, Any]) -> Table:
    """Python, torch, CUDA, GPUs, disk, offline, then any key this screen does not know."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(ratio=1)
    for label, value, ok in fact_rows(rep):
        style = "" if ok is None else ("green" if ok else "red")
        facts.add_row(label, Text(_fmt(value), style=style))
    return facts


def fact_rows(rep: dict[str, Any]) -> list[Row]:
    """(label, value, ok) for each fact: ok True shows green, False red, None plain."""
    rows: list[Row] = []
    if "python" in rep:
        rows.append(("Python", rep["python"], None))
    if "torch" in rep:
        rows.append(("torch", rep["torch"] or "not installed", bool(rep["torch"])))
    if "cuda" in rep:
        rows.append(_cuda_row(rep))
    if "gpus" in rep:
        rows += _gpu_rows(rep["gpus"] or [])
    if "disk_free_gb" in rep:
        try:
            free = float(rep["disk_free_gb"])
            rows.append(("Disk free", f"{free:.1f} GB", free >= 5))
        except (TypeError, ValueError):
            rows.append(("Disk free", rep["disk_free_gb"], None))
    if "offline" in rep:
        rows.append(("Offline", "yes (hub not used)" if rep["offline"] else "no", None))
    rows += [(k.replace("_", " ").capitalize(), v, None) for k, v in rep.items() if k not in KNOWN]
    return rows


def _cuda_row(rep: dict[str, Any]) -> Row:
    if rep["cuda"] and rep.get("cuda_available") is False:  # a CUDA build of torch that sees no GPU
        return ("CUDA", f"{rep['cuda']} (torch's build), no GPU visible", False)
    return ("CUDA", rep["cuda"] or "not available (a CPU build of torch)", bool(rep["cuda"]))


def _gpu_rows(gpus: list[Any]) -> list[Row]:
    if not gpus:
        return [("GPUs", "none found (training runs on the CPU)", False)]
    rows: list[Row] = []
    for i, g in enumerate(gpus):
        if not isinstance(g, dict):
            rows.append((f"GPU {i}", g, None))
            continue
        bits = [str(g.get("name", "?"))]
        if g.get("memory_gb") is not None:
            bits.append(f"{float(g['memory_gb']):.0f} GB")
        if "bf16" in g:
            bits.append("bf16 ✓" if g["bf16"] else "no bf16 (fp16/fp32)")
        extra = {k: v for k, v in g.items() if k not in ("name", "memory_gb", "bf16")}
        bits += [f"{k} {_fmt(v)}" for k, v in extra.items()]
        rows.append((f"GPU {i}", " · ".join(bits), True))
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v) or "–"
    return "–" if v is None else str(v)


def local_facts(runs_dir: Any) -> Text:
    """What this process can tell without importing torch."""
    t = Text()
    t.append("This TUI process\n", style="bold underline")
    t.append(f"{'Python':<14}", style="bold")
    t.append(f"{platform.python_version()} ({sys.executable})\n")
    t.append(f"{'Runs dir':<14}", style="bold")
    t.append(f"{runs_dir}\n")
    try:
        probe = runs_dir if os.path.isdir(runs_dir) else os.path.dirname(os.path.abspath(runs_dir)) or "."
        free = shutil.disk_usage(probe).free / 1e9
        t.append(f"{'Disk free':<14}", style="bold")
        t.append(f"{free:.1f} GB\n", style="green" if free >= 5 else "red")
    except OSError:
        pass
    off = [k for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE") if os.environ.get(k)]
    t.append(f"{'Offline env':<14}", style="bold")
    t.append((", ".join(off) if off else "not set") + "\n")
    return t


class EnvironmentScreen(BaseScreen):
    BINDINGS = [
        Binding("r", "refresh", "Re-check"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__(id="environment-screen")
        self.report: dict[str, Any] | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        with VerticalScroll(id="env-body"):
            yield Static(Text("tunedeck doctor", style="bold underline"), id="env-title")
            yield LoadingIndicator(id="env-loading")
            yield Static(id="env-report")
            yield Static(id="env-local")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "environment"
        self.action_refresh()
        self.ready = True

    def action_refresh(self) -> None:
        self.query_one("#env-loading").display = True
        self.query_one("#env-report", Static).update(Text("running 'tunedeck doctor --json' …", style="dim"))
        self.run_doctor()

    @work(thread=True, exclusive=True, group="doctor", exit_on_error=False)
    def run_doctor(self) -> None:
        try:
            rep = self.services.doctor()
            err = None
        except UserError as e:
            rep, err = None, str(e)
        except Exception as e:  # never a traceback on screen
            rep, err = None, f"{type(e).__name__}: {e}"
        self.app.call_from_thread(self.show_report, rep, err)

    def show_report(self, rep: dict[str, Any] | None, err: str | None) -> None:
        if not self.is_mounted:
            return
        self.report, self.error = rep, err
        self.query_one("#env-loading").display = False
        out = self.query_one("#env-report", Static)
        local = self.query_one("#env-local", Static)
        if err is not None:
            out.update(Text.assemble(("doctor could not run\n", "bold red"), (err, "red")))
            # Still say what this process can tell without torch.
            local.update(Text("\n") + local_facts(self.runs_dir))
        else:
            local.update("")
            out.update(render_report(rep or {}))

    def action_back(self) -> None:
        self.tapp.go_back()
