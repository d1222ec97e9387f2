"""The throughput benchmark runs end to end at its tiniest size (no timing asserts)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "throughput.py"


def test_smoke_prints_table_and_ratios(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", TUNEDECK_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--json", str(out_json)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]

    # A table with one row per peer, none of them failed.
    header = next(i for i, ln in enumerate(lines) if ln.startswith("| workload"))
    assert "useful tok/s" in lines[header] and "MFU" in lines[header]
    rows = [ln for ln in lines[header + 2:] if ln.startswith("|")]
    cols = [c.strip() for c in lines[header].split("|")]
    peers = {ln.split("|")[cols.index("peer")].strip() for ln in rows}
    assert peers == {"seed", "tuned", "engine"}, rows
    for ln in rows:
        tok_s = ln.split("|")[cols.index("useful tok/s")].strip()
        assert re.fullmatch(r"[\d.]+k?", tok_s), ln  # a number, not an error message

    # The header says what machine and settings the numbers come from.
    head = lines[0]
    assert "torch threads" in head and "flags:" in head and "at fp32" in head, head
    # Ratios of the engine to each peer, then the parity line last (medians, equal precision).
    ratios = lines[-2]
    assert ratios.startswith("ratios: "), ratios
    assert re.search(r"engine/seed=[\d.]+x", ratios) and re.search(r"engine/tuned=[\d.]+x", ratios)
    assert re.fullmatch(r"engine/tuned \(fp32\): bert [\d.]+×", lines[-1]), lines[-1]
    # Engine and tuned processed the same rows: one whole epoch of the same sample.
    cells = {ln.split("|")[cols.index("peer")].strip(): ln.split("|") for ln in rows}
    assert cells["engine"][cols.index("prec")].strip() == cells["tuned"][cols.index("prec")].strip()

    data = json.loads(out_json.read_text())
    assert {r["peer"] for r in data["results"]} == {"seed", "tuned", "engine"}
    assert all(r["error"] is None and r["useful_tok_s"] > 0 for r in data["results"])
    by_peer = {r["peer"]: r for r in data["results"]}
    # A whole epoch each: the same useful tokens over the run (rates differ, counts do not).
    eng, tun = by_peer["engine"], by_peer["tuned"]
    assert eng["useful_tok_s"] / eng["padded_tok_s"] > 0 and eng["steps"] > 0 and tun["steps"] > 0
    assert eng["extra"]["useful_tokens"] == tun["extra"]["useful_tokens"]
