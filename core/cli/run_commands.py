"""Commands that start, follow and end runs: train, start, resume, stop, runs, logs. Each parses
nothing and decides nothing: it calls tunedeck.core.runs.lifecycle and prints the result."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from tunedeck.core.cli.common import format_duration, runs_dir_of, stdout_for_json


def _progress_printer(ev: Any) -> None:
    """A foreground run's progress: the protocol's description of each event (+ ETA on steps)."""
    from tunedeck.core.runs.protocol import describe_event

    line = describe_event(ev)
    if line is None:
        return
    if ev.type == "step" and ev.data.get("eta_s") is not None:
        line += f"  ETA {format_duration(ev.data.get('eta_s'))}"
    print(line, flush=True)


def cmd_train(a: argparse.Namespace) -> int:
    from tunedeck.core.runs.launch_checks import check_and_tokenize
    from tunedeck.core.runs.lifecycle import new_run_dir, profile_for_new_run

    prof = profile_for_new_run(a.profile, a.set, getattr(a, "runs_dir", None))
    print("preparing data ...", flush=True)
    prepared = check_and_tokenize(prof, log=lambda m: print(m, flush=True))
    return _train_here(new_run_dir(prof), prepared=prepared)


def _train_here(run: Any, **kwargs: Any) -> int:
    """Run the worker in this process with progress lines; the run directory is the last line."""
    from tunedeck.core.runs.worker import run_worker

    state = run_worker(run, echo=_progress_printer, **kwargs)
    _print_outcome(run, state)
    print(run.path)
    return 0 if state in ("finished", "stopped") else 1


def _print_outcome(run: Any, state: str) -> None:
    from tunedeck.core.fsutil import read_json

    if state == "finished":
        m = read_json(run.metrics_path) or {}
        keys = [k for k in ("accuracy", "f1_macro", "eval_loss", "perplexity") if k in m]
        print(f"finished: {m.get('split', 'test')} " + "  ".join(f"{k} {m[k]:.4f}" for k in keys))
        print(f"model: {run.model_dir}")
    else:
        print(f"{state}: {run.read_status().get('message', '')}", file=sys.stderr)


def cmd_start(a: argparse.Namespace) -> int:
    from tunedeck.core.runs.lifecycle import profile_for_new_run, runs_dir_flag, start_run
    from tunedeck.core.runs.rundir import RunDir

    with stdout_for_json(a.json):
        sets = list(a.set or [])
        if getattr(a, "node_rank", None) is not None:  # a machine of a several-machine run
            sets.append(f"distributed.node_rank={a.node_rank}")
        started = start_run(profile_for_new_run(a.profile, sets, getattr(a, "runs_dir", None)))
    if a.json:
        print(json.dumps(started.to_json()))
        return 0
    flag = runs_dir_flag(RunDir(started.run_dir))
    print(f"started worker pid {started.pid}; follow with 'tunedeck logs {started.run_id} -f{flag}' "
          f"or 'tunedeck attach {started.run_id}{flag}'")
    print(started.run_dir)
    return 0


def cmd_resume(a: argparse.Namespace) -> int:
    from tunedeck.core.runs.lifecycle import resume_run, runs_dir_flag
    from tunedeck.core.runs.rundir import find_run

    with stdout_for_json(a.json):
        run = find_run(runs_dir_of(a), a.run)
        resumed = resume_run(run, detach=not a.foreground)
    if a.json:
        print(json.dumps(resumed.to_json()))
        return 0
    where = (f"from its newest complete checkpoint, {resumed.from_checkpoint}"
             if resumed.from_checkpoint else
             "from the start: it has no complete checkpoint yet, so it trains again from "
             "step 0 in the same run directory")
    print(f"resuming {run.id} {where}", flush=True)
    if a.foreground:
        return _train_here(run, resume=True, prepared=resumed.prepared)
    print(f"resumed in worker pid {resumed.pid}; follow with 'tunedeck logs {run.id} -f"
          f"{runs_dir_flag(run)}'")
    print(run.path)
    return 0


def cmd_stop(a: argparse.Namespace) -> int:
    from tunedeck.core.runs.lifecycle import runs_dir_flag, stop_run
    from tunedeck.core.runs.rundir import find_run

    run = find_run(runs_dir_of(a), a.run)
    res = stop_run(run, wait_s=a.wait)
    if not res.requested:
        print(f"run {run.id} is not running ({res.state})")
        return 0
    if not a.wait:
        print(f"stop requested for {run.id}: it checkpoints and stops at the next step boundary")
        return 0
    if res.still_active:
        print(f"{run.id} is still {res.state} after {a.wait:g} s (a long evaluation or "
              "checkpoint?); it stops at its next step boundary", file=sys.stderr)
        return 1
    total = "?" if res.total_steps is None else res.total_steps
    print(f"{run.id} {res.state} at step {res.step}/{total}"
          + (f": {res.reason}" if res.reason and res.state != "stopped" else "")
          + (f"; 'tunedeck resume {run.id}{runs_dir_flag(run)}' continues it"
             if res.state == "stopped" else ""))
    return 0


def cmd_runs(a: argparse.Namespace) -> int:
    from tunedeck.core.runs.listing import list_runs

    runs = list_runs(runs_dir_of(a))
    if a.json:
        print(json.dumps([r.to_json() for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs in {runs_dir_of(a)}")
        return 0
    rows = [("ID", "PROFILE", "TASK", "STATE", "STEP", "BEST", "STARTED", "DURATION")]
    for r in runs:
        rows.append(_runs_row(r))
        if r.kind != "run" and getattr(a, "expand", False):  # a group's folds, indented
            rows.extend(_runs_row(m, indent="  ") for m in r.members)
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    for r in runs:
        if r.reason and r.state == "failed":
            print(f"note: {r.id}: {r.reason}")
    return 0


def _runs_row(r: Any, indent: str = "") -> tuple[str, ...]:
    """One line of `tunedeck runs`; a group (k-fold) shows folds done and mean ± std."""
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)) if r.started else "-"
    best = f"{r.best_metric} {r.best_value:.4f}" if r.best_value is not None else "-"
    step = f"{r.step}/{r.total_steps}"
    if r.kind != "run":
        std = r.extra.get("std")
        best += f" ± {std:.4f}" if std is not None and r.best_value is not None else ""
        step = f"{r.kind} {step} {'trials' if r.kind == 'search' else 'folds'}"
    return (indent + r.id, r.name, r.task, r.state, step, best, started, format_duration(r.duration))


def cmd_logs(a: argparse.Namespace) -> int:
    from tunedeck.core.runs.events import EventTail
    from tunedeck.core.runs.protocol import format_event_line, is_active
    from tunedeck.core.runs.rundir import find_run

    run = find_run(runs_dir_of(a), a.run)
    tail = EventTail(run.events_path)
    try:
        while True:
            for ev in tail.read_new():
                print(format_event_line(ev), flush=True)
            if not a.follow:
                break
            if not is_active(run.effective_state()[0]):
                for ev in tail.read_new():
                    print(format_event_line(ev), flush=True)
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    return 0


