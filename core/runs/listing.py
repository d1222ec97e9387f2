"""Listing runs: one summary per run directory, for ``tunedeck runs`` and the TUI's runs table.

Torch-free. Reads each run's status.json once and asks ``RunDir.effective_state`` for the honest
state (a dead worker's "running" is "failed").
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunedeck.core.runs.protocol import ACTIVE_STATES
from tunedeck.core.runs.rundir import RunDir


@dataclass
class RunSummary:
    id: str
    path: str
    name: str
    task: str
    state: str
    reason: str
    step: int
    total_steps: int
    epoch: float
    best_metric: str | None
    best_value: float | None
    started: float | None
    duration: float | None
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = "run"  # "cv": a k-fold group; step/total_steps count its folds
    members: list["RunSummary"] = field(default_factory=list)  # a group's runs, in order

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(run: RunDir, now: float | None = None) -> RunSummary:
    now = time.time() if now is None else now
    st = run.read_status()
    state, reason = run.effective_state(now, st)
    started = st.get("started") or st.get("created")
    end = st.get("ended") if state not in ACTIVE_STATES else None
    if state in ACTIVE_STATES:
        end = now
    elif end is None:
        end = st.get("heartbeat") or st.get("updated")
    best = st.get("best") or {}
    return RunSummary(
        id=run.id,
        path=str(run.path),
        name=st.get("name") or run.id.rsplit("-", 3)[0],
        task=st.get("task", "?"),
        state=state,
        reason=reason or "",
        step=int(st.get("step", 0) or 0),
        total_steps=int(st.get("total_steps", 0) or 0),
        epoch=float(st.get("epoch", 0) or 0),
        best_metric=best.get("metric"),
        best_value=best.get("value"),
        started=started,
        duration=(end - started) if (started and end) else None,
        extra={k: st[k] for k in ("tokens_per_s", "eta_s", "loss") if k in st},
    )


def is_run_dir(d: Path) -> bool:
    """A real run directory directly in a runs directory. Hidden names are skipped: a run being
    deleted is renamed to one first (lifecycle.delete_run), so a half-removed run never lists."""
    return (not d.name.startswith(".") and d.is_dir() and not d.is_symlink()
            and (d / "profile.toml").is_file())


def summarize_group(group: Any, now: float | None = None) -> RunSummary:
    """A group directory (drivers.base.GroupDir) as one row: its folds done / folds, the mean
    of its main metric (std in ``extra``), and its runs as ``members``."""
    now = time.time() if now is None else now
    st = group.read_status()
    info, summary = group.info(), group.summary()
    state, reason = group.effective_state(now, st)
    started = st.get("started") or st.get("created")
    end = now if state in ACTIVE_STATES else (st.get("ended") or st.get("updated"))
    main = summary.get("main_metric")
    entry = (summary.get("metrics") or {}).get(main) or {}
    members = [summarize(m, now) for m in group.members()]
    if info.get("kind") == "search":  # trials ended / asked for, the best trial's value
        best = st.get("best") or {}
        main, entry = info.get("metric"), {"mean": best.get("value")}
        summary = {"folds_done": st.get("step"), **summary}
        info = {**info, "folds": info.get("trials")}
    return RunSummary(
        id=group.id, path=str(group.path), name=info.get("name") or group.id,
        task=info.get("task", "?"), state=state, reason=reason or "",
        step=int(summary.get("folds_done", 0) or 0), total_steps=int(info.get("folds", 0) or 0),
        epoch=0.0, best_metric=main, best_value=entry.get("mean"), started=started,
        duration=(end - started) if (started and end) else None,
        extra={"std": entry.get("std"), "current": st.get("current")},
        kind=info.get("kind", "group"), members=members)


def list_runs(runs_dir: Path) -> list[RunSummary]:
    """Runs and groups (one row each; a group's runs are its ``members``), newest first."""
    from tunedeck.core.runs.drivers.base import GroupDir, is_group_dir

    if not runs_dir.is_dir():
        return []
    out = []
    for d in runs_dir.iterdir():
        if is_run_dir(d):
            out.append(summarize(RunDir(d)))
        elif is_group_dir(d):
            out.append(summarize_group(GroupDir(d)))
    out.sort(key=lambda r: r.started or 0, reverse=True)
    return out
