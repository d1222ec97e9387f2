"""The headless CLI: ``tunedeck COMMAND ...`` (``python -m tunedeck.core.cli``).

``tunedeck`` with no command, ``attach`` and ``browse`` open the TUI: the console script is
``tunedeck.tui.entry:main``, which parses with this module's parser and hands everything else to
``dispatch``. core/ itself never imports the UI.

Every user error is one message on stderr and exit code 2. Heavy imports (torch, transformers)
happen only inside the commands that need them, so ``tunedeck`` (the TUI) and ``tunedeck runs``
start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from tunedeck.core.errors import UserError
from tunedeck.core.runs import lifecycle as _lifecycle  # torch-free at import

DEFAULT_RUNS_DIR = _lifecycle.DEFAULT_RUNS_DIR
# Profiles load the same way for every command (tests and scripts import this name).
_load_profile = _lifecycle.load_profile


def _runs_dir(args: argparse.Namespace) -> Path:
    return Path(args.runs_dir or DEFAULT_RUNS_DIR)


def _fmt_duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"


def _progress_printer(ev: Any) -> None:
    """A foreground run's progress: the protocol's description of each event (+ ETA on steps)."""
    from tunedeck.core.runs.protocol import describe_event

    line = describe_event(ev)
    if line is None:
        return
    if ev.type == "step" and ev.data.get("eta_s") is not None:
        line += f"  ETA {_fmt_duration(ev.data.get('eta_s'))}"
    print(line, flush=True)


@contextlib.contextmanager
def _stdout_for_json(json_mode: bool) -> Iterator[None]:
    """In --json mode stdout carries one JSON object only: anything a library prints while the
    command works goes to stderr."""
    if not json_mode:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


# --- commands ------------------------------------------------------------------------------

def cmd_train(a: argparse.Namespace) -> int:
    from tunedeck.core.runs.lifecycle import check_and_tokenize, new_run_dir, profile_for_new_run

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

    with _stdout_for_json(a.json):
        started = start_run(profile_for_new_run(a.profile, a.set, getattr(a, "runs_dir", None)))
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

    with _stdout_for_json(a.json):
        run = find_run(_runs_dir(a), a.run)
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

    run = find_run(_runs_dir(a), a.run)
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

    runs = list_runs(_runs_dir(a))
    if a.json:
        print(json.dumps([r.to_json() for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs in {_runs_dir(a)}")
        return 0
    rows = [("ID", "PROFILE", "TASK", "STATE", "STEP", "BEST", "STARTED", "DURATION")]
    for r in runs:
        best = f"{r.best_metric} {r.best_value:.4f}" if r.best_value is not None else "-"
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)) if r.started else "-"
        rows.append((r.id, r.name, r.task, r.state, f"{r.step}/{r.total_steps}", best, started,
                     _fmt_duration(r.duration)))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    for r in runs:
        if r.reason and r.state == "failed":
            print(f"note: {r.id}: {r.reason}")
    return 0


def cmd_logs(a: argparse.Namespace) -> int:
    from tunedeck.core.runs.events import EventTail
    from tunedeck.core.runs.protocol import format_event_line, is_active
    from tunedeck.core.runs.rundir import find_run

    run = find_run(_runs_dir(a), a.run)
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


def cmd_predict(a: argparse.Namespace) -> int:
    from tunedeck.core.predict import predict
    from tunedeck.core.runs.rundir import find_run

    run = find_run(_runs_dir(a), a.run)
    if not a.text.strip():
        raise UserError("predict: the text is empty; pass the text to classify or continue")
    out = predict(run, a.text)
    if a.json:
        print(json.dumps(out))
    elif "label" in out:
        print(f"{out['label']}\t{out['probability']:.4f}")
    elif out["continuation"].strip():
        print(out["continuation"])
    else:  # stdout stays empty (scripts read it); people are told why
        print("(empty continuation: the model ended its answer at once; it may need more "
              "training)", file=sys.stderr)
    return 0


def _data_summary(stats: dict[str, Any]) -> str:
    """The data layer's stats as a few readable lines."""
    lines = ["data:"]
    for key, f in (stats.get("files") or {}).items():
        dropped = [f"{f[k]:,} {k.removeprefix('dropped_')}" for k in ("dropped_empty", "dropped_duplicate")
                   if f.get(k)]
        cols = ", ".join(f"{k}={v}" for k, v in (f.get("columns") or {}).items())
        lines.append(f"  {key}: {f.get('path')} ({f.get('format')}; {cols}): {f.get('rows_read', 0):,} "
                     f"rows read, {f.get('rows_kept', 0):,} kept"
                     + (f" (dropped {', '.join(dropped)})" if dropped else ""))
    sizes = stats.get("sizes") or {}
    carved = stats.get("carved_from_train") or []
    lines.append("  splits: " + ", ".join(f"{k} {v:,}" + (" (from train)" if k in carved else "")
                                          for k, v in sizes.items()))
    for split, counts in (stats.get("label_counts") or {}).items():
        lines.append(f"  labels in {split}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return "\n".join(lines)


def cmd_profile(a: argparse.Namespace) -> int:
    from tunedeck.core.profile import dumps, new_profile

    if a.profile_cmd == "new":
        sys.stdout.write(dumps(new_profile(a.task, a.name)))
        return 0
    if a.profile_cmd == "check":
        prof = _load_profile(a.profile, a.set)
        # Everything asked for is checked before anything is called "ok".
        data_summary = None
        if a.data:
            from tunedeck.core.data import read_splits

            data_summary = _data_summary(read_splits(prof).stats)
        print(f"{a.profile}: ok ({prof.task.type}, model {prof.model.name})")
        if data_summary:
            print(data_summary)
        else:
            missing = [f"data.{k} = {getattr(prof.data, k)}" for k in ("train", "validation", "test")
                       if getattr(prof.data, k) and not Path(getattr(prof.data, k)).exists()]
            if missing:
                print(f"note: no such file: {', '.join(missing)}; fix the path before training")
        if a.preflight:
            from tunedeck.core.engine.memory_estimate import format_memory_report, memory_report

            rep = memory_report(prof)
            print(format_memory_report(rep))
            if not rep.get("fits", True):
                return 2
        return 0
    if a.profile_cmd == "docs":
        from tunedeck.core.profile.fields import markdown

        sys.stdout.write(markdown())
        return 0
    raise AssertionError(a.profile_cmd)


def cmd_doctor(a: argparse.Namespace) -> int:
    from tunedeck.core.doctor import format_report, report

    rep = report(Path(a.runs_dir or DEFAULT_RUNS_DIR))
    print(json.dumps(rep, indent=2) if a.json else format_report(rep))
    return 0


# --- parser --------------------------------------------------------------------------------

RUN_HELP = "a run id, a unique prefix of one, or a run directory ('tunedeck runs' lists them)"
SET_HELP = ("override a profile key for this run, e.g. --set training.epochs=2 (TOML value; "
            "repeatable; validated like the file)")
JSON_HELP = ("print one JSON object, for programs: {fields}; on an error "
             '{{"error": MESSAGE, "kind": "user"}} (exit 2) or "kind": "worker" (exit 1)')
EPILOG = """examples:
  tunedeck profile new --task classification > p.toml   # a complete starting profile
  tunedeck profile check p.toml --data --preflight     # validate, load the data, size memory
  tunedeck train p.toml --set training.epochs=2        # foreground; last line = run directory
  tunedeck start p.toml && tunedeck                    # detached worker, then watch it in the TUI
  tunedeck runs                                        # every run, its state and best metric
  tunedeck logs RUN -f                                 # the event log, followed
  tunedeck stop RUN --wait 60; tunedeck resume RUN     # checkpoint and stop; continue later
  tunedeck predict RUN "my card was charged twice"     # uses RUN/model (the final weights)

User errors print one message naming the file, line or key and exit with code 2."""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tunedeck", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fine-tune language models from the terminal. With no command, opens the TUI.")
    ap.add_argument("--runs-dir", help=f"runs directory (default {DEFAULT_RUNS_DIR!r}, or $TUNEDECK_RUNS_DIR)")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")

    def with_runs_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--runs-dir", default=argparse.SUPPRESS,
                       help="runs directory (default: $TUNEDECK_RUNS_DIR, else ./runs)")
        return p

    p = with_runs_dir(sub.add_parser(
        "train", help="train in the foreground, printing progress",
        description="Prepare the data and model (a problem is exit 2 with no run directory), then "
                    "train here, one progress line per log interval. The run directory is the "
                    "last line of stdout. The run goes to --runs-dir, else $TUNEDECK_RUNS_DIR, "
                    "else the profile's output.runs_dir."))
    p.add_argument("profile", help="the profile (TOML) to train")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help=SET_HELP)
    p.set_defaults(fn=cmd_train)
    p = with_runs_dir(sub.add_parser(
        "start", help="start a detached training worker and return",
        description="Check the profile, data and model like 'train' does, then start the training "
                    "in a detached worker (its own session: closing the terminal or an SSH drop "
                    "does not stop it) and return. The run directory is the last line of stdout."))
    p.add_argument("profile", help="the profile (TOML) to train")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help=SET_HELP)
    p.add_argument("--json", action="store_true", help=JSON_HELP.format(
        fields='"run_dir", "run_id", "pid"'))
    p.set_defaults(fn=cmd_start, json_errors=True)
    p = with_runs_dir(sub.add_parser(
        "resume", help="continue a stopped/failed run from its newest checkpoint",
        description="Continue a stopped, failed or killed run from its newest complete "
                    "checkpoint, in the same run directory and event log (from step 0 when it has "
                    "none). A finished run is not resumed: start a new one."))
    p.add_argument("run", help=RUN_HELP)
    how = p.add_mutually_exclusive_group()
    how.add_argument("--foreground", action="store_true", help="train here instead of detaching")
    how.add_argument("--json", action="store_true", help=JSON_HELP.format(
        fields='"run_dir", "run_id", "pid", "from_checkpoint" (null: from step 0)'))
    p.set_defaults(fn=cmd_resume, json_errors=True)
    p = with_runs_dir(sub.add_parser("stop", help="ask a run to checkpoint and stop",
                                     description="Ask a running worker to checkpoint at its next "
                                                 "step boundary and stop ('resume' continues it)."))
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                   help="wait up to SECONDS until it stopped and say at which step")
    p.set_defaults(fn=cmd_stop)
    p = with_runs_dir(sub.add_parser("runs", help="list runs (id, profile, task, state, step, best, started, duration)"))
    p.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    p.set_defaults(fn=cmd_runs)
    p = with_runs_dir(sub.add_parser("logs", help="print a run's event log"))
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new events until the run ends (ctrl+c to leave)")
    p.set_defaults(fn=cmd_logs)
    p = with_runs_dir(sub.add_parser(
        "predict", help="run the final model of a run on a text",
        description="Load RUN/model (the last step's weights, or the best evaluation's with "
                    "training.load_best_model_at_end) and print the label and its probability "
                    "(classification) or a continuation (causal LM, seq2seq)."))
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("text", help="the input text")
    p.add_argument("--json", action="store_true", help="print the prediction as JSON")
    p.set_defaults(fn=cmd_predict)
    p = sub.add_parser("profile", help="write, check or document profiles")
    ps = p.add_subparsers(dest="profile_cmd", required=True, metavar="new|check|docs")
    q = ps.add_parser("new", help="print a complete starting profile")
    q.add_argument("--task", choices=["classification", "causal-lm", "seq2seq"], default="classification",
                   help="the kind of fine-tuning (default: classification)")
    q.add_argument("--name", help="the profile's name (run ids start with it)")
    q = ps.add_parser("check", help="validate a profile")
    q.add_argument("profile", help="the profile (TOML) to check")
    q.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help=SET_HELP)
    q.add_argument("--data", action="store_true", help="also load and prepare the data")
    q.add_argument("--preflight", action="store_true",
                   help="estimate memory against the device and say what to change if it won't fit")
    ps.add_parser("docs", help="print the profile reference (markdown)")
    p.set_defaults(fn=cmd_profile)
    p = with_runs_dir(sub.add_parser("doctor", help="check the environment (Python, torch/CUDA, GPUs, disk, hub)"))
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(fn=cmd_doctor)
    p = with_runs_dir(sub.add_parser("attach", help="open the TUI dashboard of a run"))
    p.add_argument("run", help=RUN_HELP)
    p.set_defaults(fn=None)  # the TUI: tunedeck.tui.entry
    p = with_runs_dir(sub.add_parser("browse", help="open a data file in the TUI dataset browser"))
    p.add_argument("path", help="a data file (csv, tsv, json, jsonl, parquet, txt) or save_to_disk folder")
    p.set_defaults(fn=None)  # the TUI: tunedeck.tui.entry
    return ap


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser().parse_args(argv))


def dispatch(args: argparse.Namespace) -> int:
    """Run a parsed headless command; user errors become one message and exit code 2 (as one
    JSON object on stdout for ``start/resume --json``)."""
    fn = getattr(args, "fn", None)
    if fn is None:
        print("tunedeck: the TUI (no command, attach, browse) starts from the `tunedeck` "
              "command, not `python -m tunedeck.core.cli`", file=sys.stderr)
        return 2
    try:
        return fn(args) or 0
    except UserError as e:
        code = getattr(e, "exit_code", 2)
        if getattr(args, "json_errors", False) and getattr(args, "json", False):
            kind = "user" if code == 2 else "worker"
            print(json.dumps({"error": str(e), "kind": kind}), flush=True)
        else:
            print(f"tunedeck: {e}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tunedeck logs RUN | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
