#!/usr/bin/env python
"""Where a step's time goes: torch.profiler over one whole epoch of a peer of throughput.py.

  python benchmarks/profile_peers.py --workload bert --peers engine,tuned [--precision fp32]

For each peer: wall and process CPU time of the peer (model build and setup included), total
self CPU time of torch ops, the gap between them (host-side Python: setup, batch assembly, the
loop's bookkeeping, the Trainer's callbacks), and the top ops by self CPU time. Findings are in benchmarks/README.md ("Profile").
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_throughput():
    spec = importlib.util.spec_from_file_location("throughput", HERE / "throughput.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["throughput"] = mod
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="bert", choices=["bert", "lm", "sms"])
    ap.add_argument("--peers", default="engine,tuned")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--top", type=int, default=18)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    tp = load_throughput()
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(a.threads)
    tp.quiet_libraries()
    wl = tp.workloads("quick", "tiny")[a.workload]
    rows = tp.sample_rows(tp.make_rows(wl, tp.model_vocab(wl), 42), a.rows, 42)
    cfg = tp.Config(precision=a.precision)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        tp.run_peer(lambda: tp.run_engine(wl, rows, "warm-up", cfg, tmp), wl, "warm-up", False)
        for peer in a.peers.split(","):
            fn = tp.peer_fn(wl, rows, peer, cfg, tmp)
            t0, c0 = time.perf_counter(), time.process_time()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                res = fn()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            events = prof.key_averages()
            ops = sum(e.self_cpu_time_total for e in events) / 1e6
            print(f"\n## {wl.name} {peer} ({a.precision}): {tp.fmt_k(res.useful_tok_s)} useful "
                  f"tok/s, {res.steps} steps; peer wall {wall:.2f}s, process CPU {cpu:.2f}s "
                  f"(model build and setup included), self CPU in torch ops {ops:.2f}s, "
                  f"outside them {cpu - ops:.2f}s")
            print(events.table(sort_by="self_cpu_time_total", row_limit=a.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
