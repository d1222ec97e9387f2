"""The shape the project asks of core/: functions readable in one screen (~60 lines) unless a
comment beside them says why not (``# long: <reason>`` on the def line or the line above), and
modules under ~500 lines (split along the concern when one grows past that)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTION_LINES = 60
MODULE_LINES = 500


def _functions(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            around = " ".join(lines[max(0, first - 2): node.lineno])
            yield node, node.end_lineno - first + 1, "# long:" in around


def test_core_functions_fit_a_screen():
    long = [f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)"
            for p in sorted((ROOT / "core").rglob("*.py"))
            for node, n, excused in _functions(p) if n > FUNCTION_LINES and not excused]
    assert long == [], "split these into named parts, or say why beside them with '# long:'"


def test_core_modules_hold_one_concern():
    big = [f"{p.relative_to(ROOT)} ({n} lines)" for p in sorted((ROOT / "core").rglob("*.py"))
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MODULE_LINES]
    assert big == []
