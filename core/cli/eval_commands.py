"""``tunedeck eval``: parse and print only (the work is tunedeck.core.eval.run_eval)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tunedeck.core.cli.common import runs_dir_of

SCALAR_ORDER = ("accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro",
                "eval_loss", "perplexity")


def cmd_eval(a: argparse.Namespace) -> int:
    from tunedeck.core.eval.predictions import check_eval_name
    from tunedeck.core.eval.run_eval import evaluate_run, top_errors
    from tunedeck.core.runs.rundir import find_run

    run = find_run(runs_dir_of(a), a.run)
    if a.name:
        check_eval_name(a.name)
    outcome = evaluate_run(run, data=Path(a.data) if a.data else None, split=a.split,
                           checkpoint=a.checkpoint, name=a.name, extra_metrics=a.metric or ())
    errors = top_errors(outcome, a.errors) if a.errors else []
    if a.json:
        scalars = {k: v for k, v in outcome.metrics.items() if k not in ("per_class",)}
        print(json.dumps({"eval_dir": str(outcome.path), "name": outcome.name,
                          "metrics": scalars, "errors": errors}))
        return 0
    print(format_metrics(outcome.metrics))
    if errors:
        print(format_errors(errors, classification=outcome.metrics.get("label_names") is not None))
    print(outcome.path)
    return 0


def format_metrics(metrics: dict[str, Any]) -> str:
    what = metrics.get("split") or metrics.get("data")
    lines = [f"{metrics['task']} on {what} ({metrics['rows']:,} rows), checkpoint "
             f"{metrics['checkpoint']}" + (f" (step {metrics['step']})" if metrics.get("step") else "")]
    keys = [k for k in SCALAR_ORDER if k in metrics]
    keys += sorted(k for k, v in metrics.items()
                   if isinstance(v, float) and k not in keys and k != "created")
    width = max((len(k) for k in keys), default=0)
    lines += [f"  {k:<{width}}  {metrics[k]:.4f}" for k in keys]
    per_class = metrics.get("per_class") or {}
    if per_class:
        lines.append(f"  {'class':<{width}}  precision  recall  f1      support")
        for label, s in per_class.items():
            lines.append(f"  {label:<{width}}  {s['precision']:.4f}     {s['recall']:.4f}  "
                         f"{s['f1']:.4f}  {s['support']}")
    return "\n".join(lines)


def format_errors(errors: list[dict[str, Any]], classification: bool) -> str:
    head = "most confidently wrong:" if classification else "highest loss:"
    lines = [head]
    for e in errors:
        where = f"{e['source']}:{e['row']}" if e.get("row") is not None else e["source"]
        text = _short(e["text"])
        if classification:
            lines.append(f"  {where}  gold {e['gold']}  predicted {e['predicted']} "
                         f"({e['probability']:.3f})  {text}")
        else:
            lines.append(f"  {where}  loss {e['loss']:.3f}  {text} -> {_short(e.get('predicted') or '')}")
    return "\n".join(lines)


def _short(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"
