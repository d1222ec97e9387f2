"""The argument parser: one function per group of commands. Help texts live here only."""

from __future__ import annotations

import argparse

from tunedeck.core.cli.common import DEFAULT_RUNS_DIR
from tunedeck.core.cli.run_commands import (cmd_logs, cmd_resume, cmd_runs, cmd_start, cmd_stop,
                                            cmd_train)
from tunedeck.core.cli.tool_commands import cmd_doctor, cmd_predict, cmd_profile

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
    _add_launch_commands(sub)
    _add_watch_commands(sub)
    _add_tool_commands(sub)
    _add_tui_commands(sub)
    return ap


def _with_runs_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--runs-dir", default=argparse.SUPPRESS,
                   help="runs directory (default: $TUNEDECK_RUNS_DIR, else ./runs)")
    return p


def _add_launch_commands(sub: argparse._SubParsersAction) -> None:
    """train, start, resume, stop."""
    p = _with_runs_dir(sub.add_parser(
        "train", help="train in the foreground, printing progress",
        description="Prepare the data and model (a problem is exit 2 with no run directory), then "
                    "train here, one progress line per log interval. The run directory is the "
                    "last line of stdout. The run goes to --runs-dir, else $TUNEDECK_RUNS_DIR, "
                    "else the profile's output.runs_dir."))
    p.add_argument("profile", help="the profile (TOML) to train")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help=SET_HELP)
    p.set_defaults(fn=cmd_train)
    p = _with_runs_dir(sub.add_parser(
        "start", help="start a detached training worker and return",
        description="Check the profile, data and model like 'train' does, then start the training "
                    "in a detached worker (its own session: closing the terminal or an SSH drop "
                    "does not stop it) and return. The run directory is the last line of stdout."))
    p.add_argument("profile", help="the profile (TOML) to train")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help=SET_HELP)
    p.add_argument("--json", action="store_true", help=JSON_HELP.format(
        fields='"run_dir", "run_id", "pid"'))
    p.set_defaults(fn=cmd_start, json_errors=True)
    p = _with_runs_dir(sub.add_parser(
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
    p = _with_runs_dir(sub.add_parser("stop", help="ask a run to checkpoint and stop",
                                     description="Ask a running worker to checkpoint at its next "
                                                 "step boundary and stop ('resume' continues it)."))
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                   help="wait up to SECONDS until it stopped and say at which step")
    p.set_defaults(fn=cmd_stop)


def _add_watch_commands(sub: argparse._SubParsersAction) -> None:
    """runs, logs."""
    p = _with_runs_dir(sub.add_parser("runs", help="list runs (id, profile, task, state, step, best, started, duration)"))
    p.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    p.set_defaults(fn=cmd_runs)
    p = _with_runs_dir(sub.add_parser("logs", help="print a run's event log"))
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new events until the run ends (ctrl+c to leave)")
    p.set_defaults(fn=cmd_logs)


def _add_tool_commands(sub: argparse._SubParsersAction) -> None:
    """predict, profile, doctor."""
    p = _with_runs_dir(sub.add_parser(
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
    p = _with_runs_dir(sub.add_parser("doctor", help="check the environment (Python, torch/CUDA, GPUs, disk, hub)"))
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(fn=cmd_doctor)


def _add_tui_commands(sub: argparse._SubParsersAction) -> None:
    """attach, browse: parsed here, run by the console script (tunedeck.tui.entry)."""
    p = _with_runs_dir(sub.add_parser("attach", help="open the TUI dashboard of a run"))
    p.add_argument("run", help=RUN_HELP)
    p.set_defaults(fn=None)  # the TUI: tunedeck.tui.entry
    p = _with_runs_dir(sub.add_parser("browse", help="open a data file in the TUI dataset browser"))
    p.add_argument("path", help="a data file (csv, tsv, json, jsonl, parquet, txt) or save_to_disk folder")
    p.set_defaults(fn=None)  # the TUI: tunedeck.tui.entry
