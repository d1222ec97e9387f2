"""Commands that look at what a run learned: errors (error analysis of a saved evaluation),
samples (generations beside references) and serve-predict (the TUI's try-it box helper)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from tunedeck.core.cli.common import runs_dir_of, stdout_for_json
from tunedeck.core.errors import UserError


def cmd_errors(a: argparse.Namespace) -> int:
    from tunedeck.core.eval import error_analysis as ea
    from tunedeck.core.runs.rundir import find_run

    run = find_run(runs_dir_of(a), a.run)
    names = ea.list_evals(run.path)
    if not names:
        raise UserError(f"run {run.id} has no saved evaluation; run 'tunedeck eval {run.id}' first")
    if a.eval and a.eval not in names:
        raise UserError(f"--eval {a.eval}: run {run.id} has no such evaluation (it has: "
                        f"{', '.join(names)})")
    report = ea.summary(ea.load_eval(run.path, a.eval or names[0]), k=a.top)
    if a.json:
        print(json.dumps(report))
    else:
        print("\n".join(_errors_text(report)))
    return 0


def _errors_text(r: dict[str, Any]) -> list[str]:
    lines = [f"{r['eval']}: {r['task']}, {r['rows']:,} rows (checkpoint {r['checkpoint']})"]
    if r["task"] == "classification":
        lines.append("per class:      precision  recall     f1  support")
        lines += [f"  {c['label'][:12]:<12} {c['precision']:>9.3f} {c['recall']:>7.3f} "
                  f"{c['f1']:>6.3f} {c['support']:>8,}" for c in r["per_class"]]
        ece = r["calibration"]["ece"]
        lines.append(f"calibration: ECE {ece:.4f}" if ece is not None else "calibration: -")
        lines.append("most confidently wrong:")
        lines += [_example_line(e, f"{e['gold']} -> {e['predicted']} p={e['probability']:.3f}")
                  for e in r["confidently_wrong"]]
        return lines
    lines.append("loss by input length (tokens):")
    lines += [f"  {b['low']:>5}-{b['high']:<5} {b['count']:>6,} rows  loss {b['mean_loss']:.4f}"
              for b in r["length_buckets"]]
    lines.append("worst by loss:")
    lines += [_example_line(e, f"loss {e['loss']:.3f}") for e in r["worst_by_loss"]]
    return lines


def _example_line(e: dict[str, Any], what: str) -> str:
    where = f"{e['source']}:{e['row']}" if e.get("row") is not None else str(e.get("source") or "")
    text = " ".join(str(e.get("text") or "").split())
    return f"  {what}  {where}  {text[:70]}"


def cmd_samples(a: argparse.Namespace) -> int:
    from tunedeck.core.eval.run_model import load_run_model
    from tunedeck.core.eval.samples import SampleSettings, sample_generations
    from tunedeck.core.runs.rundir import find_run

    run = find_run(runs_dir_of(a), a.run)
    settings = SampleSettings(n=a.n, temperature=a.temperature, top_p=a.top_p,
                              max_new_tokens=a.max_new_tokens, seed=a.seed)
    settings.check()  # before the model loads: a typo costs no wait
    with stdout_for_json(a.json):
        samples = sample_generations(load_run_model(run), a.split, settings)
    if a.json:
        print(json.dumps({"run_id": run.id, "split": a.split, "temperature": a.temperature,
                          "top_p": a.top_p, "max_new_tokens": a.max_new_tokens,
                          "samples": samples}))
        return 0
    for i, s in enumerate(samples, 1):
        where = f" (row {s['row']})" if s.get("row") is not None else ""
        print(f"[{i}]{where} prompt:    {s['prompt']}")
        print(f"    reference: {s['reference']}")
        print(f"    greedy:    {s['greedy']}")
        print(f"    sampled:   {s['sampled']}  (temperature {a.temperature}, top-p {a.top_p})")
    return 0


def cmd_serve_predict(a: argparse.Namespace) -> int:
    """Load the model once, then answer one JSON line per JSON line read, until stdin closes."""
    from tunedeck.core.eval.run_model import load_run_model
    from tunedeck.core.runs.rundir import find_run

    out = sys.stdout
    with stdout_for_json(True):  # only answers go to stdout; library chatter to stderr
        try:
            rm = load_run_model(find_run(runs_dir_of(a), a.run))
        except UserError as e:
            _reply(out, {"error": str(e), "fatal": True})
            return 2
        _reply(out, {"ready": True, "run_id": rm.run.id, "task": rm.task.type})
        serve_lines(rm, sys.stdin, out)
    return 0


def serve_lines(rm: Any, lines: TextIO, out: TextIO) -> None:
    """One reply line per request line: ``predict.answer`` ({"continuation"} sent as
    {"generation"}), or {"error"}."""
    from tunedeck.core.predict import answer

    for line in lines:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            text = req.get("text") if isinstance(req, dict) else None
            if not isinstance(text, str) or not text.strip():
                raise ValueError('each line must be a JSON object with a non-empty "text"')
            reply = answer(rm, text)
            if "continuation" in reply:
                reply = {"generation": reply["continuation"]}
        except ValueError as e:
            reply = {"error": str(e)}
        except Exception as e:  # the helper stays up: one bad input is one error line
            reply = {"error": f"{type(e).__name__}: {e}"}
        _reply(out, reply)


def _reply(out: TextIO, obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj) + "\n")
    out.flush()
