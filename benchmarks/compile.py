#!/usr/bin/env python
"""Eager against torch.compile (inductor) in the engine: whole epochs, compile time included
and excluded (issue 14).

For each workload of throughput.py (--quick sizes by default) and each mode (training.compile =
"off", "on"), one engine run of two epochs over the same fixed sample of rows:

  epoch 1   includes every graph compile (each rung of the width ladder compiles on first use)
  epoch 2   the same rows in another order, every shape compiled already: compile excluded

  python benchmarks/compile.py --workloads bert,lm --rows 256

Printed: epoch times, useful tok/s of epoch 2, the compile overhead (compiled epoch 1 - epoch 2),
the number of graphs, and the break-even (training time after which compiling has paid), or
"never" when compiled steps are not faster. Uses the same row samples and models as
throughput.py; one torch thread by default on CPU, like throughput.py --quick.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load_throughput() -> Any:
    spec = importlib.util.spec_from_file_location("throughput", HERE / "throughput.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["throughput"] = mod
    spec.loader.exec_module(mod)
    return mod


def two_epochs(tp: Any, wl: Any, rows: Any, cfg: Any, mode: str, tmp: Path) -> dict[str, Any]:
    """One engine run of 2 epochs; wall and process-CPU seconds of each, graphs compiled."""
    import torch

    from tunedeck.core.engine.inputs import TrainingInputs
    from tunedeck.core.engine.loop import TrainingLoop
    from tunedeck.core.profile.io import dumps
    from tunedeck.core.runs.events import EventWriter
    from tunedeck.core.runs.rundir import create_run
    from tunedeck.core.tasks import make_task

    marks: list[tuple[float, float]] = []

    class EpochClock(TrainingLoop):
        def _begin(self) -> bool:
            early = super()._begin()
            marks.append(tp.clock())
            return early

        def _end_epoch(self) -> bool:
            marks.append(tp.clock())
            return super()._end_epoch()

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    profile = tp.engine_profile(wl, cfg, mode, epochs=2)
    labels = ["0", "1"] if wl.task == "classification" else None
    inputs = TrainingInputs(profile, make_task(wl.task, labels), tp.pad_tokenizer(),
                            tp.tokenized_set(wl, rows), None, None, labels)
    run = create_run(tmp / "runs", "compile", dumps(profile))
    events = EventWriter(run.events_path)
    loop = EpochClock(inputs, run, events)
    loop.build(tp.build_model(wl, cfg.seed))
    loop.train()
    marks.append(tp.clock())
    events.close()
    (w0, c0), (w1, c1), (w2, c2) = marks[0], marks[1], marks[-1]
    graphs = int(torch._dynamo.utils.counters["stats"].get("unique_graphs", 0))
    return {"mode": mode, "e1_s": w1 - w0, "e2_s": w2 - w1, "e1_cpu": c1 - c0,
            "e2_cpu": c2 - c1, "tokens": int(rows.lengths.sum()), "graphs": graphs,
            "shapes": len(loop.shapes.shapes()) if loop.shapes is not None else 0}


def report(name: str, eager: dict[str, Any], comp: dict[str, Any], cpu: bool) -> list[str]:
    """Two table rows. The gain per epoch once compiled is measured in process CPU-seconds on a
    CPU (one torch thread; wall time on a shared box swings with other jobs) and in wall seconds
    on a GPU; the compile overhead is wall time (inductor compiles in worker processes)."""
    tok = eager["tokens"]
    overhead = comp["e1_s"] - comp["e2_s"]
    key = "e2_cpu" if cpu else "e2_s"
    gain = eager[key] - comp[key]  # seconds saved per epoch once compiled
    even = (f"after {overhead / gain * eager[key] / 60:.0f} min of eager training"
            if gain > 0 else "never (compiled epochs are slower)")
    rows = []
    for mode, r in (("eager", eager), ("compiled", comp)):
        rows.append(f"| {name} | {mode} | {r['e1_s']:.1f} | {r['e2_s']:.1f} | {r['e2_cpu']:.1f} | "
                    f"{tok / r['e2_cpu'] / 1000:.1f}k | "
                    + (f"{r['graphs']} for {r['shapes']} shapes | {even} |" if r is comp
                       else "- | - |"))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="bert,lm")
    ap.add_argument("--rows", type=int, default=256, help="fixed sample of rows per workload")
    ap.add_argument("--size", default="quick", choices=["quick", "full", "smoke"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    tp = load_throughput()
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    tp.quiet_libraries()
    cfg = tp.Config(precision=a.precision)
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else tp.cpu_header()
    print(f"# tunedeck compile — {dev} — {torch.get_num_threads()} torch threads — torch "
          f"{torch.__version__} — {a.precision} — 2 epochs per mode", flush=True)
    lines = ["| workload | mode | epoch 1 s (incl. compile) | epoch 2 s (excl.) | epoch 2 CPU-s "
             "| useful tok/CPU-s, epoch 2 | graphs | break-even |", "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as td:
        for key in a.workloads.split(","):
            wl = tp.workloads(a.size, "tiny")[key]
            rows = tp.sample_rows(tp.make_rows(wl, tp.model_vocab(wl), 42), a.rows, 42)
            res = {}
            for mode in ("off", "on"):
                t0 = time.perf_counter()
                res[mode] = two_epochs(tp, wl, rows, cfg, mode, Path(td))
                print(f"# {wl.name} compile={mode}: {res[mode]} ({time.perf_counter() - t0:.0f}s,"
                      f" load {os.getloadavg()[0]:.1f})", flush=True)
            lines += report(wl.name, res["off"], res["on"], not torch.cuda.is_available())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
