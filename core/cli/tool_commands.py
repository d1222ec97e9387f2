"""Commands around runs rather than of them: predict (a run's model on a text), profile
(new / check / docs) and doctor."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tunedeck.core.cli.common import DEFAULT_RUNS_DIR, runs_dir_of
from tunedeck.core.errors import UserError
from tunedeck.core.runs.lifecycle import load_profile


def cmd_predict(a: argparse.Namespace) -> int:
    from tunedeck.core.predict import predict
    from tunedeck.core.runs.rundir import find_run

    run = find_run(runs_dir_of(a), a.run)
    if a.file:
        return _predict_file(run, a)
    if a.out:
        raise UserError("predict: --out needs --file (the file of inputs to predict)")
    if a.text is None or not a.text.strip():
        raise UserError("predict: the text is empty; pass the text to classify or continue, or "
                        "--file FILE --out OUT for a whole file")
    out = predict(run, a.text, a.checkpoint)
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


def _predict_file(run: Any, a: argparse.Namespace) -> int:
    from tunedeck.core.eval.batch_predict import predict_file

    if a.text is not None:
        raise UserError("predict: give either a text or --file, not both")
    if not a.out:
        raise UserError("predict --file: name the output with --out (e.g. --out preds.csv; "
                        ".csv, .tsv, .jsonl or .parquet)")
    n = predict_file(run, Path(a.file), Path(a.out), checkpoint=a.checkpoint)
    if a.json:
        print(json.dumps({"rows": n, "out": str(Path(a.out).resolve())}))
    else:
        print(f"{n:,} rows predicted: {a.out}")
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
                     + (f" (dropped {', '.join(dropped)})" if dropped else "")
                     + (f"; a packed corpus of {f['documents']:,} document(s), nothing dropped"
                        if f.get("packed") else ""))
    sizes = stats.get("sizes") or {}
    carved = stats.get("carved_from_train") or []
    unit = " (documents or contiguous parts)" if (stats.get("files") or {}).get("train", {}).get("packed") else ""
    lines.append("  splits: " + ", ".join(f"{k} {v:,}" + (" (from train)" if k in carved else "")
                                          for k, v in sizes.items()) + unit)
    for split, counts in (stats.get("label_counts") or {}).items():
        lines.append(f"  labels in {split}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return "\n".join(lines)


def cmd_profile(a: argparse.Namespace) -> int:
    from tunedeck.core.profile import dumps, new_profile

    if a.profile_cmd == "new":
        sys.stdout.write(dumps(new_profile(a.task, a.name)))
        return 0
    if a.profile_cmd == "check":
        prof = load_profile(a.profile, a.set)
        from tunedeck.core.runs.launch_checks import check_eval_metrics, check_quantization

        check_eval_metrics(prof)
        check_quantization(prof)
        # Everything asked for is checked before anything is called "ok".
        data_summary = None
        if a.data:
            from tunedeck.core.data import read_splits

            from tunedeck.core.prepare.leakage import format_leakage, split_leakage

            splits = read_splits(prof)
            data_summary = _data_summary(splits.stats)
            if splits.stats.get("prepare"):
                from tunedeck.core.prepare.pipeline import format_prepare

                data_summary += "\n  " + format_prepare(splits.stats["prepare"]).replace("\n", "\n  ")
            leaks = split_leakage(splits.splits)  # texts in more than one split: a warning
            if leaks is not None:
                data_summary += "\n  " + format_leakage(leaks).replace("\n", "\n  ")
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


