"""``tunedeck export RUN --merged OUT``: a run's model as full weights that plain
``transformers`` loads (``AutoModelFor*.from_pretrained(OUT)``), with its tokenizer. A LoRA
run's adapter is folded into its frozen base (PEFT ``merge_and_unload``); a full fine-tune's
weights are written as they are. Parse and print only: the loading is ``run_model``'s."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from tunedeck.core.cli.common import runs_dir_of
from tunedeck.core.errors import UserError


def add_export_command(sub: argparse._SubParsersAction, with_runs_dir, run_help: str) -> None:
    p = with_runs_dir(sub.add_parser(
        "export", help="write a run's model as merged full weights (a LoRA adapter folded in)",
        description="Load a checkpoint of RUN and write full weights + tokenizer to OUT, which "
                    "plain transformers loads with AutoModelFor*.from_pretrained(OUT). A LoRA "
                    "run's adapter is merged into its frozen base (PEFT merge_and_unload). OUT "
                    "must not exist yet (or be an empty folder); it is written aside and "
                    "renamed into place."))
    p.add_argument("run", help=run_help)
    p.add_argument("--merged", required=True, metavar="OUT",
                   help="the folder to write the merged model into")
    p.add_argument("--checkpoint", default="final", metavar="final|best|step-N",
                   help="which weights (default final: RUN/model)")
    p.add_argument("--json", action="store_true", help='print {"out", "params", "lora", '
                   '"checkpoint"}')
    p.set_defaults(fn=cmd_export, json_errors=True)


def cmd_export(a: argparse.Namespace) -> int:
    from tunedeck.core.runs.rundir import find_run

    out = Path(a.merged).expanduser().resolve()
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise UserError(f"export --merged {a.merged}: it already exists and is not an empty "
                        f"folder; pick a new folder (nothing is overwritten)")
    run = find_run(runs_dir_of(a), a.run)
    report = export_merged(run, out, a.checkpoint)
    if a.json:
        print(json.dumps(report))
    else:
        how = "LoRA adapter merged into its base" if report["lora"] else "full weights"
        print(f"wrote {out} ({how}; {report['params']:,} parameters, {report['checkpoint']}); "
              f"load it with transformers.{report['auto_class']}.from_pretrained")
    return 0


def export_merged(run, out: Path, checkpoint: str) -> dict:
    """Merged weights + tokenizer into ``out``, written aside then renamed."""
    from tunedeck.core.engine.adapters import is_adapter_model, merged
    from tunedeck.core.eval.run_model import load_run_model

    rm = load_run_model(run, checkpoint)
    lora = is_adapter_model(rm.model)
    model = merged(rm.model.to("cpu"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(str(tmp))
        rm.tokenizer.save_pretrained(str(tmp))
        if out.is_dir():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), "params": sum(p.numel() for p in model.parameters()), "lora": lora,
            "checkpoint": rm.checkpoint, "auto_class": rm.task.auto_class}
