"""Hyperparameter search on the command line: ``tunedeck search PROFILE [--space FILE]``,
``search --resume STUDY``, ``search show STUDY`` and ``search best STUDY``. Parse and print
only: the work is tunedeck.core.runs.drivers.search (+ search_study, search_space)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tunedeck.core.cli.common import format_duration, runs_dir_of, stdout_for_json
from tunedeck.core.errors import RunError

ACTIONS = ("show", "best")


def cmd_search(a: argparse.Namespace) -> int:
    words = list(a.target or [])
    if words and words[0] in ACTIONS and len(words) == 2 and not a.resume:
        return cmd_show(a, words[1]) if words[0] == "show" else cmd_best(a, words[1])
    if len(words) > 1 or bool(words) == bool(a.resume):
        raise RunError("give a PROFILE to start a search, --resume STUDY to continue one, or "
                       "'show STUDY' / 'best STUDY' for its results")
    from tunedeck.core.runs.drivers.base import find_group
    from tunedeck.core.runs.drivers.search import resume_search, start_search, with_space_file
    from tunedeck.core.runs.lifecycle import profile_for_new_run

    with stdout_for_json(a.json):
        if a.resume:
            if a.space or a.set:
                raise RunError("--resume STUDY continues the study as it was started; --space "
                               "and --set apply to a new one")
            started = resume_search(find_group(runs_dir_of(a), a.resume), detach=not a.foreground)
        else:
            prof = with_space_file(profile_for_new_run(words[0], a.set,
                                                       getattr(a, "runs_dir", None)), a.space)
            text = Path(words[0]).read_text(encoding="utf-8")
            started = start_search(prof, text, detach=not a.foreground)
    if a.json and not a.foreground:
        print(json.dumps(started.to_json()))
        return 0
    return _report(started, a)


def _report(started, a: argparse.Namespace) -> int:
    from tunedeck.core.runs.drivers.base import GroupDir
    from tunedeck.core.runs.drivers.search import run_search
    from tunedeck.core.runs.lifecycle import runs_dir_flag

    group = GroupDir(started.group_dir)
    flag = runs_dir_flag(group)
    if started.pid is not None:
        print(f"{'resumed' if a.resume else 'started'} a search of {started.count} trials in "
              f"driver pid {started.pid}; 'tunedeck search show {group.id}{flag}' shows its "
              f"trials, 'tunedeck stop {group.id}{flag}' stops it")
        print(group.path)
        return 0
    from tunedeck.core.cli.run_commands import _progress_printer

    with stdout_for_json(a.json):  # the trials' progress lines must not end up in the JSON
        state = run_search(group, echo=None if a.json else _progress_printer)
    if a.json:
        print(json.dumps({"group_dir": str(group.path), "group_id": group.id, "state": state,
                          **_results(group)}))
    else:
        _print_results(group)
        print(group.path)
    return 0 if state in ("finished", "stopped") else 1


def _results(group) -> dict:
    from tunedeck.core.runs.drivers.search_study import importances, open_study, trial_rows

    study = open_study(group.path, group.info())
    rows = trial_rows(study)
    return {"study": study.study_name, "direction": study.direction.name.lower(),
            "metric": group.info().get("metric"), "trials": rows,
            "importances": importances(study)}


def _print_results(group) -> None:
    from tunedeck.core.runs.protocol import format_number

    res = _results(group)
    state = group.effective_state()[0]
    counts = {}
    for r in res["trials"]:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    print(f"study {res['study']} ({state}): {res['metric']} ({res['direction']}); "
          + ", ".join(f"{n} {s}" for s, n in counts.items()))
    print(f"{'#':>3}  {'state':<9} {res['metric']:>10}  {'time':>7}  params")
    for r in res["trials"]:
        params = "  ".join(f"{k.split('.')[-1]}={format_number(v, 3)}"
                           for k, v in r["params"].items())
        print(f"{r['number']:>3}  {r['state']:<9} {format_number(r['value']):>10}  "
              f"{format_duration(r['duration_s']):>7}  {params}")
    if res["importances"]:
        print("importance: " + "  ".join(f"{k} {v:.2f}" for k, v in res["importances"].items()))


def cmd_show(a: argparse.Namespace, ref: str) -> int:
    from tunedeck.core.runs.drivers.base import find_group

    group = _study(find_group(runs_dir_of(a), ref))
    if a.json:
        print(json.dumps({"group_dir": str(group.path), "group_id": group.id,
                          "state": group.effective_state()[0], **_results(group)}))
    else:
        _print_results(group)
    return 0


def cmd_best(a: argparse.Namespace, ref: str) -> int:
    from tunedeck.core.runs.drivers.base import find_group
    from tunedeck.core.runs.drivers.search_study import best_profile_text

    group = _study(find_group(runs_dir_of(a), ref))
    number, params, text = best_profile_text(group)
    if a.json:
        print(json.dumps({"trial": number, "params": params, "profile": text}))
    else:
        print(text, end="")
    return 0


def _study(group):
    if group.info().get("kind") != "search":
        raise RunError(f"{group.id} is not a search study")
    return group
