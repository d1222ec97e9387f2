"""The argument parser: one function per group of commands. Help texts live here only."""

from __future__ import annotations

import argparse

from tunedeck.core.cli.analysis_commands import cmd_errors, cmd_samples, cmd_serve_predict
from tunedeck.core.cli.common import DEFAULT_RUNS_DIR
from tunedeck.core.cli.compare_commands import cmd_compare
from tunedeck.core.cli.run_commands import cmd_logs, cmd_runs, cmd_start, cmd_train
from tunedeck.core.cli.eval_commands import cmd_eval
from tunedeck.core.cli.export_commands import add_export_command
from tunedeck.core.cli.tool_commands import cmd_doctor, cmd_predict, cmd_profile
from tunedeck.core.cli.cv_commands import cmd_cv, cmd_resume_any, cmd_stop_any
from tunedeck.core.cli.search_commands import cmd_search

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
  tunedeck compare RUN_A RUN_B                         # profile differences, metrics, curves
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
    _add_compare_command(sub)
    _add_tool_commands(sub)
    _add_eval_command(sub)
    add_export_command(sub, _with_runs_dir, RUN_HELP)
    _add_analysis_commands(sub)
    _add_tui_commands(sub)
    _add_data_commands(sub)
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
    p.add_argument("--node-rank", type=int, metavar="K", help=(
        "this machine's number in a several-machine run (distributed.node_rank; "
        "docs/distributed.md)"))
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
    p.set_defaults(fn=cmd_resume_any, json_errors=True)
    p = _with_runs_dir(sub.add_parser("stop", help="ask a run to checkpoint and stop",
                                     description="Ask a running worker to checkpoint at its next "
                                                 "step boundary and stop ('resume' continues it)."))
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                   help="wait up to SECONDS until it stopped and say at which step")
    p.set_defaults(fn=cmd_stop_any)
    _add_cv_command(sub)
    _add_search_command(sub)


def _add_search_command(sub: argparse._SubParsersAction) -> None:
    """search: hyperparameter search (Optuna) by a detached driver."""
    p = _with_runs_dir(sub.add_parser(
        "search", help="hyperparameter search (grid, random, bayes) by a detached driver",
        description="'search PROFILE' tries the profile's [search] space (or --space FILE) "
                    "with Optuna: trials are normal runs inside a study directory, one after "
                    "another, pruned at an evaluation when unpromising. 'tunedeck stop STUDY' "
                    "stops it, 'search --resume STUDY' continues, 'search show STUDY' lists the "
                    "trials best first with parameter importances, 'search best STUDY > "
                    "best.toml' writes the best trial's profile (comments kept). The study "
                    "directory is the last line of stdout."))
    p.add_argument("target", nargs="*", metavar="PROFILE | show STUDY | best STUDY")
    p.add_argument("--space", metavar="FILE", help="TOML file with the search space (replaces "
                   "the profile's [search.space])")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help=SET_HELP)
    p.add_argument("--resume", metavar="STUDY", help="continue a stopped or killed study")
    p.add_argument("--foreground", action="store_true", help="run the driver here instead of "
                   "detaching, printing each trial's progress and the results")
    p.add_argument("--json", action="store_true", help=JSON_HELP.format(
        fields='"group_dir", "group_id", "trials", "pid" (show/--foreground: the trials)'))
    p.set_defaults(fn=cmd_search, json_errors=True)


def _add_cv_command(sub: argparse._SubParsersAction) -> None:
    """cv: k-fold cross-validation by a detached driver."""
    p = _with_runs_dir(sub.add_parser(
        "cv", help="k-fold cross-validation: K runs on stratified folds, by a detached driver",
        description="Draw K stratified folds of the training rows (seeded; the test split stays "
                    "fixed), then train one normal run per fold, one after another, inside a group "
                    "directory, each validated on its held-out fold. A detached driver runs them "
                    "(closing the terminal does not stop it); 'tunedeck stop GROUP' checkpoints "
                    "and stops it, 'tunedeck cv --resume GROUP' continues. summary.json holds "
                    "each metric's mean, sample std and per-fold values. The group directory is "
                    "the last line of stdout."))
    p.add_argument("profile", nargs="?", help="the profile (TOML) to cross-validate")
    p.add_argument("--folds", type=int, metavar="K", help="number of folds (default: the "
                   "profile's cv.folds)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help=SET_HELP)
    p.add_argument("--resume", metavar="GROUP", help="continue a stopped or killed group "
                   "(its id, a unique prefix, or its directory)")
    p.add_argument("--foreground", action="store_true", help="run the driver here instead of "
                   "detaching, printing each fold's progress and the summary")
    p.add_argument("--json", action="store_true", help=JSON_HELP.format(
        fields='"group_dir", "group_id", "folds", "pid" (with --foreground: "state", "summary")'))
    p.set_defaults(fn=cmd_cv, json_errors=True)


def _add_watch_commands(sub: argparse._SubParsersAction) -> None:
    """runs, logs."""
    p = _with_runs_dir(sub.add_parser("runs", help="list runs (id, profile, task, state, step, best, started, duration)"))
    p.add_argument("--json", action="store_true", help="one JSON list, for scripts (a group's "
                   "runs under \"members\")")
    p.add_argument("--expand", action="store_true", help="list each group's runs (k-fold "
                   "folds) under its row")
    p.set_defaults(fn=cmd_runs)
    p = _with_runs_dir(sub.add_parser("logs", help="print a run's event log"))
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new events until the run ends (ctrl+c to leave)")
    p.set_defaults(fn=cmd_logs)


def _add_compare_command(sub: argparse._SubParsersAction) -> None:
    """compare."""
    p = _with_runs_dir(sub.add_parser(
        "compare", help="compare runs: profile differences, metrics side by side, curves",
        description="Compare two or more runs: the profile keys whose values differ (equal ones "
                    "are counted), the final and best validation metrics and any 'tunedeck eval' "
                    "results they share side by side with the best value marked *, and the "
                    "validation curves (step, value) of each run. Runs are columns A, B, ..."))
    p.add_argument("runs", nargs="+", metavar="RUN", help=RUN_HELP)
    p.add_argument("--json", action="store_true", help="the comparison as one JSON object")
    p.set_defaults(fn=cmd_compare, json_errors=True)


def _add_tool_commands(sub: argparse._SubParsersAction) -> None:
    """predict, profile, doctor."""
    p = _with_runs_dir(sub.add_parser(
        "predict", help="run the final model of a run on a text",
        description="Load RUN/model (the last step's weights, or the best evaluation's with "
                    "training.load_best_model_at_end; --checkpoint picks others) and print the "
                    "label and its probability (classification) or a continuation (causal LM, "
                    "seq2seq)."))
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("text", nargs="?", help="the input text (or --file)")
    p.add_argument("--file", metavar="FILE", help="predict every row of FILE (the profile's input "
                   "column) in batches, with a progress bar on stderr")
    p.add_argument("--out", metavar="OUT", help="with --file: where to write the input columns + "
                   "predicted/probability or generation (.csv, .tsv, .jsonl, .parquet)")
    p.add_argument("--checkpoint", default="final", metavar="final|best|step-N",
                   help="which weights (default final: RUN/model)")
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


def _add_analysis_commands(sub: argparse._SubParsersAction) -> None:
    """errors, samples, serve-predict."""
    p = _with_runs_dir(sub.add_parser(
        "errors", help="error analysis of a run's saved evaluation ('tunedeck eval' writes one)",
        description="Read RUN/evals/NAME/ and print, for a classifier, per-class precision/recall/"
                    "F1, the expected calibration error and the most confidently wrong examples; "
                    "for a causal LM or seq2seq run, the loss by input length and the worst "
                    "examples. The TUI shows the same with drill-down (key e)."))
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--eval", metavar="NAME", help="which evaluation (default: the newest)")
    p.add_argument("--top", type=int, default=10, metavar="K", help="examples per list (default 10)")
    p.add_argument("--json", action="store_true", help="the whole analysis as one JSON object")
    p.set_defaults(fn=cmd_errors)
    p = _with_runs_dir(sub.add_parser(
        "samples", help="generations of a run's model beside the references (greedy and sampled)",
        description="Load RUN/model and continue the first N prompts of a split of the run's data "
                    "(plain text: its first half), printing the reference, the greedy generation "
                    "and a sampled one (seeded)."))
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--split", default="validation", help="train, validation or test (default validation)")
    p.add_argument("--n", type=int, default=5, help="how many prompts (default 5)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (default 0.95)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="generation length cap (default 64)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--json", action="store_true", help="one JSON object with a 'samples' list")
    p.set_defaults(fn=cmd_samples, json_errors=True)
    p = _with_runs_dir(sub.add_parser(
        "serve-predict", help="load a run's model once and answer JSON lines (the TUI's try-it box)",
        description='Load RUN/model, print {"ready": true, ...}, then for each line '
                    '{"text": ...} on stdin print one line: {"label", "probability", '
                    '"probabilities"} (classification) or {"generation"}; a bad line gets '
                    '{"error": ...}. Ends when stdin closes.'))
    p.add_argument("run", help=RUN_HELP)
    p.set_defaults(fn=cmd_serve_predict)


def _add_eval_command(sub: argparse._SubParsersAction) -> None:
    """eval."""
    p = _with_runs_dir(sub.add_parser(
        "eval", help="evaluate a run's model on its test/validation split or a file",
        description="Evaluate a checkpoint of RUN on its own test (or validation) split, exactly "
                    "as training split it, or on a new data file read with the run's profile "
                    "(columns, cleaning). Writes RUN/evals/NAME/ (metrics.json, "
                    "predictions.parquet) and prints the metrics."))
    p.add_argument("run", help=RUN_HELP)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--data", metavar="FILE", help="a data file with the profile's columns")
    where.add_argument("--split", choices=["test", "validation"],
                       help="the run's own split (default: test)")
    p.add_argument("--checkpoint", default="final", metavar="final|best|step-N",
                   help="which weights: final (RUN/model, default), best (the best validation "
                        "evaluation's checkpoint) or step-N (RUN/checkpoints/step-N)")
    p.add_argument("--name", help="the folder under RUN/evals (default SPLIT-or-FILE-CHECKPOINT, "
                                  "e.g. test-final)")
    p.add_argument("--metric", action="append", metavar="NAME",
                   help="an extra metric besides [evaluation] metrics (rouge, sacrebleu, "
                        "exact_match, or a hub id online); repeatable")
    p.add_argument("--errors", type=int, default=0, metavar="N",
                   help="also print the N worst examples (most confidently wrong, or highest loss)")
    p.add_argument("--json", action="store_true", help=JSON_HELP.format(
        fields='"eval_dir", "name", "metrics", "errors"'))
    p.set_defaults(fn=cmd_eval, json_errors=True)


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    """data clean|split|convert|augment|stats|leakage|pull (options in data_commands)."""
    from tunedeck.core.cli.data_commands import add_data_parser

    add_data_parser(sub)


def _add_tui_commands(sub: argparse._SubParsersAction) -> None:
    """attach, browse: parsed here, run by the console script (tunedeck.tui.entry)."""
    p = _with_runs_dir(sub.add_parser("attach", help="open the TUI dashboard of a run"))
    p.add_argument("run", help=RUN_HELP)
    p.set_defaults(fn=None)  # the TUI: tunedeck.tui.entry
    p = _with_runs_dir(sub.add_parser("browse", help="open a data file in the TUI dataset browser"))
    p.add_argument("path", help="a data file (csv, tsv, json, jsonl, parquet, txt) or save_to_disk folder")
    p.set_defaults(fn=None)  # the TUI: tunedeck.tui.entry
