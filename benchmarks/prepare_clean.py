"""`tunedeck data clean` on a generated CSV: wall time and peak RSS (issue 13).

    python benchmarks/prepare_clean.py [--rows 1000000] [--near-dup 0.8]

Writes a seeded support-ticket-like CSV (every 10th row repeats an earlier text, every 7th is
upper-cased with stray spaces) to a temp folder, then runs the CLI in a child process and reads
the child's peak RSS from ``resource.getrusage(RUSAGE_CHILDREN)``.
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("the a card charged twice refund my account login password error app crash slow "
         "delivery late order item broken great thanks please help").split()


def text_of(n: int) -> str:
    rng = random.Random(n)
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 20))) + f" #{n}"


def generate(path: Path, rows: int) -> None:
    rng = random.Random(0)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        for i in range(rows):
            text = text_of(rng.randrange(i) if i % 10 == 9 else i)
            if i % 7 == 0:
                text = "  " + text.upper() + "   "
            w.writerow([i, text, ("billing", "tech", "shipping")[i % 3]])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--near-dup", type=float)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "tickets.csv"
        generate(src, a.rows)
        args = [sys.executable, "-m", "tunedeck.core.cli", "data", "clean", str(src),
                "--lowercase", "--strip-urls", "--json"]
        if a.near_dup:
            args += ["--near-dup", str(a.near_dup)]
        start = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True)
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if proc.returncode:
            sys.exit(proc.stderr)
        report = __import__("json").loads(proc.stdout)
        print(f"{a.rows:,} rows ({src.stat().st_size / 1e6:.0f} MB): {report['rows_out']:,} kept, "
              f"dropped {report['dropped']}; {wall:.1f} s, peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
