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
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from tunedeck.core.errors import UserError

DEFAULT_RUNS_DIR = os.environ.get("TUNEDECK_RUNS_DIR", "runs")


def _runs_dir(args: argparse.Namespace) -> Path:
    return Path(args.runs_dir or DEFAULT_RUNS_DIR)


def _load_profile(path: str, sets: list[str] | None):
    from tunedeck.core.profile import load, resolve_paths

    prof = load(path, sets)
    return resolve_paths(prof, Path(path).resolve().parent)


def _profile_for_run(a: argparse.Namespace):
    """The profile a new run trains with. Where its run directory goes: the command line
    (``--runs-dir`` or ``--set output.runs_dir=...``), else ``$TUNEDECK_RUNS_DIR`` (where the TUI
    and ``tunedeck runs`` look), else the profile's ``output.runs_dir``."""
    prof = _load_profile(a.profile, a.set)
    flag = getattr(a, "runs_dir", None)
    on_command_line = any(s.split("=", 1)[0].strip() == "output.runs_dir" for s in a.set or [])
    target = flag or (None if on_command_line else os.environ.get("TUNEDECK_RUNS_DIR"))
    if target:
        target = str(Path(target).expanduser().resolve())
        prof = prof.model_copy(update={"output": prof.output.model_copy(update={"runs_dir": target})})
    return prof


def _fmt_duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"


def _progress_printer(ev: Any) -> None:
    d = ev.data
    if ev.type == "step":
        tps = d.get("tokens_per_s") or 0
        print(f"step {d['step']}/{d['total_steps']}  epoch {d.get('epoch', 0):.2f}  "
              f"loss {d['loss']:.4f}  lr {d['lr']:.2e}  {tps:,.0f} tok/s  "
              f"ETA {_fmt_duration(d.get('eta_s'))}", flush=True)
    elif ev.type == "eval":
        m = d.get("metrics", {})
        shown = "  ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float))
        print(f"eval [{d.get('split')}] step {d.get('step')}: {shown}", flush=True)
    elif ev.type == "checkpoint":
        print(f"checkpoint step {d['step']}", flush=True)
    elif ev.type == "log":
        print(f"[{d.get('level', 'info')}] {d.get('message', '')}", flush=True)
    elif ev.type in ("run_failed", "run_diverged", "run_stopped"):
        print(f"{ev.type.replace('run_', '')}: {d.get('error') or d.get('message', '')}", flush=True)
    elif ev.type == "run_started":
        print(f"training {d.get('task')} on {d.get('device')} ({d.get('precision')}), "
              f"{d.get('model_params', 0):,} parameters, data {d.get('dataset_sizes')}, "
              f"{d.get('total_steps')} steps", flush=True)


# --- commands ------------------------------------------------------------------------------

def _prepare_for_run(prof: Any, log: Any = None, tokenizer_dir: Path | None = None) -> Any:
    """What a run needs that a user can get wrong, done before any run directory exists: data
    (loaded, cleaned, split, tokenized: cached for the worker), tokenizer, model config, and a
    fresh model's build on the meta device. Raises a UserError (exit 2) on the first problem."""
    import transformers

    from tunedeck.core.engine.setup import prepare
    from tunedeck.core.models import build_config, check_model_builds

    prepared = prepare(prof, log=log or (lambda m: None), tokenizer_dir=tokenizer_dir)
    config = build_config(prof, prepared.tokenizer, prepared.task.config_overrides())
    check_model_builds(prof, getattr(transformers, prepared.task.auto_class), config)
    return prepared


def cmd_train(a: argparse.Namespace) -> int:
    from tunedeck.core.profile import dumps
    from tunedeck.core.runs.rundir import create_run

    prof = _profile_for_run(a)
    print("preparing data ...", flush=True)
    prepared = _prepare_for_run(prof, log=lambda m: print(m, flush=True))
    run = create_run(Path(prof.output.runs_dir), prof.name, dumps(prof), prof.task.type)
    return _train_here(run, prepared=prepared)


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


# What `start` (and `resume`) check before a worker exists, so that a malformed file or model is
# exit 2 with no run directory, while they still return in seconds. Measured here: the data layer
# prepares a 60 MB CSV in 2.2 s; tokenizing it (MiniLM) takes ~45 s more.
#   up to START_TOKENIZE_BYTES: everything `train` checks, tokenization included (its cache is the
#     worker's, so nothing is tokenized twice);
#   up to START_FULL_CHECK_BYTES: the data layer (load, clean, split), and the model's config;
#   bigger: the files exist and the model's config loads; the worker reports a bad file.
START_TOKENIZE_BYTES = 8 * 2**20
START_FULL_CHECK_BYTES = 64 * 2**20


def _preflight_data(prof: Any, tokenizer_dir: Path | None = None) -> tuple[Any, str | None]:
    """Checks before a detached start or a resume (see START_TOKENIZE_BYTES). Returns (the
    engine's prepared data when it went through everything, else None; the data fingerprint
    when the data layer ran, else None)."""
    from tunedeck.core.errors import DataError
    from tunedeck.core.models import resolve_model_path

    size = 0
    for key in ("train", "validation", "test"):
        p = getattr(prof.data, key)
        if not p:
            continue
        path = Path(p)
        if not path.exists():
            raise DataError(f"data.{key}: no such file {path}; fix the path in the profile")
        if path.is_file():
            size += path.stat().st_size
        elif path.is_dir():
            size += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        else:
            raise DataError(f"data.{key}: {path} is not a regular file or directory")
    if size <= START_TOKENIZE_BYTES:
        # Loading and splitting are repeated by the worker (seconds); the tokenization is not:
        # the worker reads the cache this fills.
        prepared = _prepare_for_run(prof, tokenizer_dir=tokenizer_dir)
        return prepared, prepared.data_fingerprint
    fingerprint = None
    if size <= START_FULL_CHECK_BYTES:
        from tunedeck.core.data import prepare

        fingerprint = prepare(prof).fingerprint  # a malformed file is exit 2 here, in seconds
    resolve_model_path(prof.model.name)  # a local model path that is not a model: exit 2 now
    if prof.model.config is None:  # an uncached hub model offline, say
        from transformers import AutoConfig

        from tunedeck.core.models import hf_load

        hf_load(AutoConfig, prof.model.name, "config", revision=prof.model.revision,
                trust_remote_code=prof.model.trust_remote_code)
    return None, fingerprint


def cmd_start(a: argparse.Namespace) -> int:
    from tunedeck.core.runs.launch import start_detached
    from tunedeck.core.profile import dumps
    from tunedeck.core.runs.rundir import create_run

    prof = _profile_for_run(a)
    _preflight_data(prof)
    run = create_run(Path(prof.output.runs_dir), prof.name, dumps(prof), prof.task.type)
    pid = start_detached(run)
    flag = _runs_dir_flag(run)
    print(f"started worker pid {pid}; follow with 'tunedeck logs {run.id} -f{flag}' or "
          f"'tunedeck attach {run.id}{flag}'")
    print(run.path)
    return 0


def cmd_resume(a: argparse.Namespace) -> int:
    from tunedeck.core.engine.checkpoint import list_complete
    from tunedeck.core.runs.rundir import find_run

    run = find_run(_runs_dir(a), a.run)
    _check_resumable(run)  # fail fast, before the data is loaded
    prepared = _check_resume_data(run)
    # The lock covers only check -> "starting" -> launch -> the worker holding run.lock: a second
    # `resume` typed at once waits seconds here, then is told the run is running.
    with run.launch_lock():
        _check_resumable(run)
        done = list_complete(run.checkpoints_dir)
        where = (f"from its newest complete checkpoint, {done[-1].name}" if done else
                 "from the start: it has no complete checkpoint yet, so it trains again from "
                 "step 0 in the same run directory")
        run.take_requests()  # dropped: e.g. the stop that ended it, if its signal won the race
        run.write_status(state="starting", heartbeat=time.time())
        print(f"resuming {run.id} {where}", flush=True)
        if not a.foreground:
            from tunedeck.core.runs.launch import start_detached

            pid = start_detached(run, resume=True)
            code = _wait_for_worker(run, pid)
    if a.foreground:
        return _train_here(run, resume=True, prepared=prepared)
    if code:
        print(f"the worker (pid {pid}) exited at once with code {code}; see {run.log_path}",
              file=sys.stderr)
        return 1
    print(f"resumed in worker pid {pid}; follow with 'tunedeck logs {run.id} -f{_runs_dir_flag(run)}'")
    print(run.path)
    return 0


def _check_resumable(run: Any) -> None:
    from tunedeck.core.errors import RunError

    state, _ = run.effective_state()
    flag = _runs_dir_flag(run)
    if state in ("running", "starting"):
        stopping = run.control_dir.is_dir() and any(run.control_dir.iterdir())
        hint = (f" (a stop was asked: 'tunedeck stop {run.id} --wait 60{flag}' waits for it)"
                if stopping else "")
        raise RunError(f"run {run.id} is {state}; stop it first ('tunedeck stop {run.id}{flag}')"
                       f"{hint}")
    if state == "finished":
        raise RunError(f"run {run.id} already finished; start a new run to train more")


def _runs_dir_flag(run: Any) -> str:
    """` --runs-dir DIR` for printed follow-up commands when the run is not in the default runs
    directory (a hint copied and pasted must find the run)."""
    d = Path(run.path).resolve().parent
    if d == Path(DEFAULT_RUNS_DIR).resolve():
        return ""
    import shlex

    return f" --runs-dir {shlex.quote(str(d))}"


def _check_resume_data(run: Any) -> Any:
    """The run's own (frozen) profile: its data files must still exist; small data is prepared
    here (exit 2 on a problem), with the run's own tokenizer, and must be the data the run
    started with. Returns the prepared data (None for big data: the worker prepares it)."""
    from tunedeck.core.errors import DataError
    from tunedeck.core.profile import load
    from tunedeck.core.runs.worker import check_same_data

    prof = load(run.profile_path)
    try:
        prepared, fingerprint = _preflight_data(prof, tokenizer_dir=run.path / "tokenizer")
    except DataError as e:
        raise DataError(f"{e} (run {run.id} trains on the files its frozen profile names, "
                        f"{run.profile_path}: restore them there)") from None
    if fingerprint:
        check_same_data(run, fingerprint)
    return prepared


def _wait_for_worker(run: Any, pid: int, timeout: float = 120.0) -> int:
    """Until the new worker holds run.lock (0), or has exited before that (its exit code)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if run.worker_alive() is True:
            return 0
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0
        if done:
            return os.waitstatus_to_exitcode(status) or 0
        time.sleep(0.1)
    return 0


def cmd_stop(a: argparse.Namespace) -> int:
    from tunedeck.core.runs.rundir import find_run

    run = find_run(_runs_dir(a), a.run)
    state, _ = run.effective_state()
    if state not in ("running", "starting"):
        print(f"run {run.id} is not running ({state})")
        return 0
    run.request("stop")
    run.signal_worker()
    if not a.wait:
        print(f"stop requested for {run.id}: it checkpoints and stops at the next step boundary")
        return 0
    deadline = time.time() + a.wait
    while time.time() < deadline and run.effective_state()[0] in ("running", "starting"):
        time.sleep(0.2)
    state, reason = run.effective_state()
    st = run.read_status()
    if state in ("running", "starting"):
        print(f"{run.id} is still {state} after {a.wait:g} s (a long evaluation or checkpoint?); "
              "it stops at its next step boundary", file=sys.stderr)
        return 1
    print(f"{run.id} {state} at step {st.get('step', 0)}/{st.get('total_steps', '?')}"
          + (f": {reason}" if reason and state != "stopped" else "")
          + (f"; 'tunedeck resume {run.id}{_runs_dir_flag(run)}' continues it"
             if state == "stopped" else ""))
    return 0


def cmd_runs(a: argparse.Namespace) -> int:
    from tunedeck.core.runs.rundir import list_runs

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


def format_event(ev: Any) -> str:
    ts = time.strftime("%H:%M:%S", time.localtime(ev.time))
    d = ev.data
    if ev.type == "step":
        body = (f"step {d.get('step')}/{d.get('total_steps')} loss {d.get('loss', float('nan')):.4f} "
                f"lr {d.get('lr', 0):.2e} {d.get('tokens_per_s', 0):,.0f} tok/s")
    elif ev.type == "eval":
        m = d.get("metrics", {})
        body = f"eval [{d.get('split')}] step {d.get('step')}: " + " ".join(
            f"{k}={v:.4f}" for k, v in m.items() if isinstance(v, (int, float)))
    elif ev.type == "log":
        body = f"{d.get('level', 'info')}: {d.get('message', '')}"
    else:
        body = " ".join(f"{k}={v}" for k, v in d.items() if not isinstance(v, (dict, list)))
    return f"{ts} #{ev.seq:<5} {ev.type:<12} {body}"


def cmd_logs(a: argparse.Namespace) -> int:
    from tunedeck.core.runs.events import EventTail
    from tunedeck.core.runs.rundir import find_run

    run = find_run(_runs_dir(a), a.run)
    tail = EventTail(run.events_path)
    try:
        while True:
            for ev in tail.read_new():
                print(format_event(ev), flush=True)
            if not a.follow:
                break
            if run.effective_state()[0] not in ("running", "starting"):
                for ev in tail.read_new():
                    print(format_event(ev), flush=True)
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
            from tunedeck.core.data import prepare

            data_summary = _data_summary(prepare(prof).stats)
        print(f"{a.profile}: ok ({prof.task.type}, model {prof.model.name})")
        if data_summary:
            print(data_summary)
        else:
            missing = [f"data.{k} = {getattr(prof.data, k)}" for k in ("train", "validation", "test")
                       if getattr(prof.data, k) and not Path(getattr(prof.data, k)).exists()]
            if missing:
                print(f"note: no such file: {', '.join(missing)}; fix the path before training")
        if a.preflight:
            from tunedeck.core.preflight import format_preflight, preflight_report

            rep = preflight_report(prof)
            print(format_preflight(rep))
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
    p.set_defaults(fn=cmd_start)
    p = with_runs_dir(sub.add_parser(
        "resume", help="continue a stopped/failed run from its newest checkpoint",
        description="Continue a stopped, failed or killed run from its newest complete "
                    "checkpoint, in the same run directory and event log (from step 0 when it has "
                    "none). A finished run is not resumed: start a new one."))
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--foreground", action="store_true", help="train here instead of detaching")
    p.set_defaults(fn=cmd_resume)
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
    """Run a parsed headless command; user errors become one message and exit code 2."""
    fn = getattr(args, "fn", None)
    if fn is None:
        print("tunedeck: the TUI (no command, attach, browse) starts from the `tunedeck` "
              "command, not `python -m tunedeck.core.cli`", file=sys.stderr)
        return 2
    try:
        return fn(args) or 0
    except UserError as e:
        print(f"tunedeck: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tunedeck logs RUN | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
