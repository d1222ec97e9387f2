"""The dashboard's lines as Rich Text: progress, training stats, title, stale banner, machine
stats and the worker.log tail. Pure functions of the view model and the run's status (no
widgets), so that the screen only decides when to draw and where."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text

from tunedeck.core.runs.protocol import format_count
from tunedeck.tui import fmt
from tunedeck.tui.screens.dashboard_view import RunView

BAR_WIDTH = 30
NARROW_BAR_WIDTH = 20
WORKER_LOG_BYTES = 32768
WORKER_LOG_LINES = 300


def progress_bar(frac: float, width: int) -> Text:
    """━━━━━━╸━━━━ : done in the accent colour, the rest dim."""
    frac = min(1.0, max(0.0, frac))
    halves = int(round(frac * width * 2))
    full, half = divmod(halves, 2)
    t = Text("━" * full, style="green" if frac >= 1 else "magenta")
    if half:
        t.append("╸", style="magenta")
    t.append("━" * (width - full - half), style="grey30")
    return t


def progress_line(v: RunView, active: bool, bar_width: int) -> Text:
    """Bar, step/total (%), epoch, ETA while the run is active, training time."""
    pct = f" ({v.step / v.total:.0%})" if v.total else ""
    eta = v.eta
    if eta is None and v.total and v.step and v.elapsed:
        eta = v.elapsed / v.step * (v.total - v.step)
    prog = progress_bar(v.step / v.total if v.total else 0.0, bar_width)
    prog.append(" ")
    prog.append(f"step {v.step:,}" + (f"/{v.total:,}" if v.total else "") + pct, style="bold")
    prog.append(f" · epoch {v.epoch:.2f}")
    if active:
        prog.append(f" · ETA {fmt.duration(eta)}" if eta is not None else " · ETA –")
    if v.elapsed is not None:
        prog.append(f" · {fmt.duration(v.elapsed)} training", style="dim")  # not wall time
    return prog


def stats_line(v: RunView, status: dict[str, Any], width: int) -> Text:
    """loss, lr, grad, tok/s, samples/s (wide terminals), MFU and the best metric so far."""
    d = v.last
    st = Text()
    st.append("loss ", style="dim")
    st.append(fmt.num(d.get("loss")), style="bold cyan")
    st.append("  lr ", style="dim")
    st.append(fmt.num(d.get("lr"), 3))
    if "grad_norm" in d:
        st.append("  grad ", style="dim")
        st.append(fmt.num(d.get("grad_norm"), 3))
    st.append("  tok/s ", style="dim")
    st.append(fmt.rate(d.get("tokens_per_s")))
    if "samples_per_s" in d and width >= 100:
        # Left out in narrow terminals, so that MFU and the best metric stay on this line.
        st.append("  samples/s ", style="dim")
        st.append(fmt.rate(d.get("samples_per_s")))
    _append_mfu(st, d.get("mfu"))
    _append_best(st, v, status)
    return st


def _append_mfu(st: Text, mfu: Any) -> None:
    if mfu is None:
        return
    st.append("  MFU ", style="dim")
    try:
        st.append(f"{float(mfu):.1%}" if float(mfu) <= 1 else f"{float(mfu):.1f}%")
    except (TypeError, ValueError):
        pass


def _append_best(st: Text, v: RunView, status: dict[str, Any]) -> None:
    """The worker's best (status.json), else the best eval loss seen in the events."""
    best = status.get("best")
    best = best if isinstance(best, dict) else {}
    if best.get("metric") is not None and best.get("value") is not None:
        st.append("  best ", style="dim")
        st.append(f"{fmt.best(best.get('metric'), best.get('value'))} @ {best.get('step', '?')}", style="green")
    elif v.best:
        st.append("  best ", style="dim")
        st.append(f"{fmt.best(v.best[0], v.best[1])} @ {v.best[2]}", style="green")


def metric_plot_title(v: RunView) -> str:
    return f"eval {fmt.METRIC_SHORT.get(v.metric_name, v.metric_name)}" if v.metric_name else "eval"


def metric_note(v: RunView) -> str:
    """The newest eval's other metrics, for the metric plot's corner."""
    if not v.last_eval:
        return ""
    return " ".join(f"{fmt.METRIC_SHORT.get(k, k)} {fmt.num(x, 3)}" for k, x in v.last_eval.items()
                    if isinstance(x, (int, float)) and k != v.metric_name)[:40]


def title_text(v: RunView, run_id: str, shown: str, status: dict[str, Any], problem: str | None) -> Text:
    """State, run id, task, device, size, remote code; ``problem`` on a second line."""
    title = Text()
    title.append(f"{fmt.STATE_ICON.get(shown, '?')} {shown.upper()}", style=fmt.STATE_STYLE.get(shown, ""))
    title.append(f"  {run_id}", style="bold")
    task = status.get("task")
    prof = v.started.get("profile")
    if not task and isinstance(prof, dict) and isinstance(prof.get("task"), dict):
        task = prof["task"].get("type")
    if task:
        title.append(f"  {task}", style="dim")
    if v.started.get("device"):
        title.append(f" · {v.started['device']}", style="dim")
    if v.started.get("model_params"):
        title.append(f" · {format_count(v.started['model_params'])} params", style="dim")
        trainable = v.started.get("trainable_params")
        if isinstance(trainable, int) and trainable < v.started["model_params"]:  # LoRA
            title.append(f" ({format_count(trainable)} trainable)", style="dim")
    if v.started.get("trust_remote_code"):
        # The profile let the model repository run its own Python code: say so, always.
        title.append(" · ⚠ remote code ON", style="bold yellow")
    if problem is not None:
        title.append(f"\n{problem}", style="red")
    return title


def stale_banner(reason: str, raw_state: str | None) -> Text:
    return Text(f" ⚠ STALE — {reason}. status.json still says "
                f"'{raw_state}'. r resumes from the newest checkpoint. ", style="bold")


def sys_line(s: dict[str, Any], gpus: list[dict[str, Any]] | None = None, width: int = 80) -> Text:
    """GPUs, CPU, RAM and the worker's memory. ``gpus``: the worker's readings (status.json
    ``gpus``), shown instead of this machine's own (``s["gpus"]``, the same readings taken by
    the TUI) while the run is active; a
    reading that does not fit in ``width`` is left out whole, never cut in the middle."""
    t = Text(no_wrap=True, overflow="ellipsis")
    gpus = gpus or [g for g in s.get("gpus") or [] if isinstance(g, dict)]
    if gpus:
        t.append_text(gpu_text(gpus, width - SYS_ROOM))
        t.append("  ")
    parts = []
    if "cpu_percent" in s:
        parts.append(("CPU ", f"{5 * round(s['cpu_percent'] / 5):.0f}%  "))
    if "ram_used_gb" in s:
        parts.append(("RAM ", f"{s['ram_used_gb']:.1f}/{s.get('ram_total_gb', 0):.1f}GB  "))
    if "worker_rss_gb" in s:
        parts.append(("worker ", f"{s['worker_rss_gb']:.2f}GB"))
    for label, value in parts:
        if gpus and t.cell_len + len(label) + len(value.rstrip()) > width - 2:  # 2: padding
            break
        t.append(label, style="bold")
        t.append(value)
    return t


# What the CPU and RAM readings after the GPUs take: per-GPU readings get the rest of the line.
SYS_ROOM = 30


def status_gpus(status: dict[str, Any]) -> list[dict[str, Any]]:
    """status.json's ``gpus`` (docs/events.md), the entries that are readings, else []."""
    gpus = status.get("gpus")
    return [g for g in gpus if isinstance(g, dict)] if isinstance(gpus, list) else []


def gpu_text(gpus: list[dict[str, Any]], room: int) -> Text:
    """One entry per GPU (``GPU0 H200  41.2/139.8 GiB  97%  64°C``) when they fit in ``room``
    columns, else one summary of them all (8 GPUs at 80 columns); ``g`` lists each."""
    each = Text("  ").join(gpu_entry(g) for g in gpus)
    if each.cell_len <= room:
        return each
    t = Text(f"{len(gpus)} GPUs: ", style="bold")
    used, total = _mean(gpus, "memory_used_mib"), _mean(gpus, "memory_total_mib")
    parts = []
    if used is not None and total is not None:
        parts.append(f"mem {used / 1024:.0f}/{total / 1024:.0f} GiB avg")
    util = _mean(gpus, "utilization_pct")
    if util is not None:
        parts.append(f"util {util:.0f}% avg")
    temps = [g["temperature_c"] for g in gpus if isinstance(g.get("temperature_c"), (int, float))]
    if temps:
        parts.append(f"max {max(temps):.0f}°C")
    t.append(", ".join(parts) or "no readings")
    t.append(" (g)", style="dim")
    return t


def gpu_entry(g: dict[str, Any]) -> Text:
    """GPU0 H200  41.2/139.8 GiB  97%  64°C (a value the board does not report is left out)."""
    t = Text(f"GPU{g.get('index', '?')}", style="bold")
    name = str(g.get("name") or "")
    for vendor in ("NVIDIA ", "Tesla ", "GeForce "):
        name = name.replace(vendor, "")
    if name:
        t.append(f" {name}")
    used, total = g.get("memory_used_mib"), g.get("memory_total_mib")
    if isinstance(used, (int, float)) and isinstance(total, (int, float)):
        t.append(f"  {used / 1024:.1f}/{total / 1024:.1f} GiB")
    if isinstance(g.get("utilization_pct"), (int, float)):
        t.append(f"  {g['utilization_pct']:.0f}%")
    if isinstance(g.get("temperature_c"), (int, float)):
        t.append(f"  {g['temperature_c']:.0f}°C")
    return t


def _mean(gpus: list[dict[str, Any]], key: str) -> float | None:
    vals = [g[key] for g in gpus if isinstance(g.get(key), (int, float))]
    return sum(vals) / len(vals) if vals else None


def empty_events_note(has_metrics: bool) -> Text:
    return Text("(events.jsonl is empty: this run's history was not recorded"
                + ("; m shows its results)" if has_metrics else ")"), style="dim")


def worker_log_lines(path: Path) -> list[str]:
    """The last lines of worker.log (its last 32 KiB), or one line saying why there are none."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - WORKER_LOG_BYTES))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        text = f"(no worker.log at {path})"
    if not text.strip():
        text = f"({path} is empty: the worker writes warnings and tracebacks there)"
    return text.splitlines()[-WORKER_LOG_LINES:]
