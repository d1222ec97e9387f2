"""k-fold cross-validation on the command line: ``tunedeck cv PROFILE --folds K`` and
``tunedeck cv --resume GROUP``, plus `stop`/`resume` given a group. Parse and print only: the
work is tunedeck.core.runs.drivers.cv."""

from __future__ import annotations

import argparse
import json

from tunedeck.core.cli.common import runs_dir_of, stdout_for_json
from tunedeck.core.errors import RunError


def cmd_cv(a: argparse.Namespace) -> int:
    from tunedeck.core.runs.drivers.base import find_group
    from tunedeck.core.runs.drivers.cv import resume_cv, start_cv
    from tunedeck.core.runs.lifecycle import profile_for_new_run

    if bool(a.profile) == bool(a.resume):
        raise RunError("give a PROFILE to start k-fold cross-validation, or --resume GROUP "
                       "to continue one (not both)")
    with stdout_for_json(a.json):
        if a.resume:
            if a.folds is not None or a.set:
                raise RunError("--resume GROUP continues the group as it was started; "
                               "--folds and --set apply to a new one")
            started = resume_cv(find_group(runs_dir_of(a), a.resume), detach=not a.foreground)
        else:
            prof = profile_for_new_run(a.profile, a.set, getattr(a, "runs_dir", None))
            started = start_cv(prof, a.folds, detach=not a.foreground)
    if a.json and not a.foreground:
        print(json.dumps(started.to_json()))
        return 0
    return _report(started, a)


def _report(started, a: argparse.Namespace) -> int:
    from tunedeck.core.runs.drivers.base import GroupDir
    from tunedeck.core.runs.lifecycle import runs_dir_flag

    group = GroupDir(started.group_dir)
    flag = runs_dir_flag(group)
    verb = "resumed" if a.resume else "started"
    if started.pid is not None:
        print(f"{verb} {started.count}-fold cross-validation in driver pid {started.pid}; "
              f"'tunedeck runs --expand{flag}' shows its folds, 'tunedeck stop {group.id}{flag}' "
              "stops it")
        print(group.path)
        return 0
    return _run_here(group, a)


def _run_here(group, a: argparse.Namespace) -> int:
    """--foreground: the driver in this process, with each fold's progress lines."""
    from tunedeck.core.cli.run_commands import _progress_printer
    from tunedeck.core.runs.drivers.cv import run_cv

    state = run_cv(group, echo=None if a.json else _progress_printer)
    summary = group.summary()
    if a.json:
        print(json.dumps({"group_dir": str(group.path), "group_id": group.id, "state": state,
                          "summary": summary}))
    else:
        print_summary(summary, state, group.read_status().get("message", ""))
        print(group.path)
    return 0 if state in ("finished", "stopped") else 1


def print_summary(summary: dict, state: str, message: str = "") -> None:
    from tunedeck.core.runs.drivers.cv_summary import format_mean_std

    k = summary.get("folds", 0)
    print(f"{state}: {summary.get('folds_done', 0)}/{k} folds, evaluated on "
          f"{summary.get('evaluated_on') or '-'}; mean ± sample std (ddof=1)"
          + (f"; {message}" if message and state != "finished" else ""))
    for name, entry in summary.get("metrics", {}).items():
        values = " ".join("-" if v is None else f"{v:.4f}" for v in entry.get("values", []))
        print(f"  {name:<20} {format_mean_std(entry):<20} folds: {values}")


def cmd_stop_any(a: argparse.Namespace) -> int:
    """`tunedeck stop` for a run or a group (the driver and its current fold)."""
    from tunedeck.core.cli.run_commands import cmd_stop
    from tunedeck.core.runs.drivers.base import find_group, looks_like_group, stop_group

    if not looks_like_group(runs_dir_of(a), a.run):
        return cmd_stop(a)
    group = find_group(runs_dir_of(a), a.run)
    res = stop_group(group, wait_s=a.wait)
    if not res.requested:
        print(f"group {group.id} is not running ({res.state})")
        return 0
    what, cmd = (("trials", "search") if group.info().get("kind") == "search"
                 else ("folds", "cv"))
    if not a.wait:
        print(f"stop requested for group {group.id}: its current {what[:-1]} checkpoints and "
              "stops")
        return 0
    if res.still_active:
        print(f"group {group.id} is still {res.state} after {a.wait:g} s")
        return 1
    print(f"group {group.id} {res.state} with {res.step}/{res.total_steps} {what} done; "
          f"'tunedeck {cmd} --resume {group.id}' continues it")
    return 0


def cmd_resume_any(a: argparse.Namespace) -> int:
    """`tunedeck resume GROUP` is `tunedeck cv --resume GROUP`."""
    from tunedeck.core.cli.run_commands import cmd_resume
    from tunedeck.core.runs.drivers.base import find_group, looks_like_group

    if not looks_like_group(runs_dir_of(a), a.run):
        return cmd_resume(a)
    if find_group(runs_dir_of(a), a.run).info().get("kind") == "search":
        from tunedeck.core.cli.search_commands import cmd_search

        args = argparse.Namespace(**vars(a))
        args.target, args.resume, args.space, args.set = [], a.run, None, None
        return cmd_search(args)
    cv_args = argparse.Namespace(**vars(a))
    cv_args.profile, cv_args.resume, cv_args.folds, cv_args.set = None, a.run, None, None
    return cmd_cv(cv_args)
