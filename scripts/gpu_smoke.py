"""GPU smoke test: the CUDA paths the CPU suite cannot reach, each a real (tiny) run through the CLI.

    python3 scripts/gpu_smoke.py [--out DIR]      # on a machine with a CUDA GPU; ~2-3 minutes

Runs, each a fresh tiny model from [model.config] on generated data (nothing downloads):
bf16 autocast (precision "auto"), fp16 with the loss scaler, torch.compile, a causal LM, a
SIGKILL mid-run then `resume --foreground`, load_best_model_at_end, and `predict`; with more
than one GPU visible, DDP over all of them (docs/distributed.md): the loss curve against one GPU
at the same global batch, the tokens/s scaling, and kill -9 of a rank then `resume`. Prints a
table (state, steps, first/last logged loss, tokens/s, device, precision, seconds) and writes it
as JSON; exits 1 if any check failed. Part of the prepared device call, scripts/gpu_check.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BERT = {"model_type": "bert", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
        "intermediate_size": 1024, "vocab_size": 2000, "max_position_embeddings": 256}
GPT = {"model_type": "gpt2", "n_embd": 256, "n_layer": 4, "n_head": 4, "vocab_size": 2000,
       "n_positions": 256}
WORDS = {"billing": "charged refund invoice card payment twice fee".split(),
         "shipping": "parcel delivery late courier package tracking box".split(),
         "account": "password login email locked profile reset username".split(),
         "technical": "crash error bug update screen freezes install".split()}
FILLER = "hello please thanks the my a i it is was and today again help".split()


def write_data(d: Path, rng: random.Random) -> tuple[Path, Path]:
    cls = d / "tickets.csv"
    with open(cls, "w", encoding="utf-8") as f:
        f.write("text,label\n")
        for _ in range(3000):
            lab = rng.choice(sorted(WORDS))
            words = rng.choices(WORDS[lab], k=rng.randint(2, 6)) + rng.choices(FILLER, k=rng.randint(4, 60))
            rng.shuffle(words)
            f.write(" ".join(words) + f",{lab}\n")
    lm = d / "pairs.jsonl"
    with open(lm, "w", encoding="utf-8") as f:
        for _ in range(2000):
            a, b = rng.randint(0, 99), rng.randint(0, 99)
            f.write(json.dumps({"prompt": f"add {a} and {b}", "response": f"{a} plus {b} is {a + b}"}) + "\n")
    return cls, lm


def profile(d: Path, name: str, task: str, data: Path, **training) -> Path:
    import tomli_w

    t = {"max_steps": 120, "batch_size": 32, "max_length": 128, "learning_rate": 1e-3,
         "log_every_steps": 10, "eval_every_steps": 40, "warmup_ratio": 0.05}
    t.update(training)
    doc = {"name": name, "task": {"type": task},
           "model": {"config": BERT if task == "classification" else GPT},
           "data": {"train": str(data)}, "training": t, "output": {"runs_dir": str(d / "runs")}}
    if task != "classification":
        doc["data"].update(prompt_column="prompt", response_column="response")
    p = d / f"{name}.toml"
    p.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return p


def cli(args: list[str], env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunedeck.core.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout, env={**os.environ, **(env or {})})


def summarize(run: Path) -> dict:
    evs = [json.loads(ln) for ln in (run / "events.jsonl").read_text().splitlines() if ln.strip()]
    steps = [e["data"] for e in evs if e["type"] == "step"]
    started = next((e["data"] for e in evs if e["type"] == "run_started"), {})
    status = json.loads((run / "status.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}
    return {"state": status.get("state"), "step": status.get("step"), "total": status.get("total_steps"),
            "loss_first": steps[0]["loss"] if steps else None,
            "loss_last": steps[-1]["loss"] if steps else None,
            "tok_s": max((s.get("tokens_per_s") or 0) for s in steps[len(steps) // 2:]) if steps else None,
            "mfu": steps[-1].get("mfu") if steps else None,
            "device": started.get("device"), "precision": started.get("precision"),
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
            "message": status.get("message", ""), "run": str(run)}


def start_and_wait(prof: Path, *sets: str, env: dict[str, str] | None = None,
                   timeout: float = 900) -> Path | None:
    """`tunedeck start` (honours [distributed]) and wait for the run to end."""
    from tunedeck.core.runs.rundir import RunDir

    argv = ["start", str(prof)]
    for s in sets:
        argv += ["--set", s]
    p = cli(argv, env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    if p.returncode != 0 or not lines:
        print(p.stderr[-800:], file=sys.stderr)
        return None
    run = RunDir(Path(lines[-1]))
    deadline = time.time() + timeout
    while time.time() < deadline and run.effective_state()[0] in ("starting", "running"):
        time.sleep(1)
    return run.path


def distributed_case(d: Path, cls: Path, check, gpus: int, steps: int = 120) -> None:
    """DDP on every GPU against one GPU, same global batch; then kill -9 of rank 1 and resume."""
    from tunedeck.core.runs.events import read_all

    # dropout 0: one process and N draw different dropout masks; the rest must match.
    prof = profile(d, "ddp", "classification", cls, precision="fp32", log_every_steps=10,
                   save_every_steps=steps // 3, batch_size=64, max_steps=steps, eval_every_steps=0,
                   dropout=0.0)
    runs, secs = {}, {}
    for n in (1, gpus):
        t0 = time.time()
        runs[n] = start_and_wait(prof, f"distributed.processes={n}")
        secs[n] = round(time.time() - t0, 1)
    one, many = (summarize(runs[n]) if runs[n] else {} for n in (1, gpus))
    curve = [{e.data["step"]: e.data["loss"] for e in read_all(runs[n] / "events.jsonl")
              if e.type == "step"} if runs[n] else {} for n in (1, gpus)]
    diff = max((abs(curve[0][k] - curve[1][k]) for k in curve[0] if k in curve[1]), default=None)
    scaling = (many.get("tok_s") or 0) / one["tok_s"] if one.get("tok_s") else None
    check(f"DDP on {gpus} GPUs follows 1 GPU's loss curve (same global batch)",
          one.get("state") == many.get("state") == "finished" and sorted(curve[0]) == sorted(curve[1])
          and diff is not None and diff < 2e-2, max_abs_loss_diff=diff,
          tok_s_1=one.get("tok_s"), tok_s_n=many.get("tok_s"), scaling=scaling, secs=secs)
    kill_rank_then_resume(prof, gpus, check, steps)


def kill_rank_then_resume(prof: Path, gpus: int, check, steps: int) -> None:
    import signal

    from tunedeck.core.runs.rundir import RunDir

    p = cli(["start", str(prof), "--set", f"distributed.processes={gpus}", "--set",
             f"training.max_steps={3 * steps}"])
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    run = RunDir(Path(lines[-1])) if p.returncode == 0 and lines else None
    deadline = time.time() + 600
    while run and time.time() < deadline and int(run.read_status().get("step") or 0) < steps // 2:
        time.sleep(0.2)
    pid_file = run.path / ".dist" / "rank-1.pid" if run else None
    if not pid_file or not pid_file.exists():
        check("kill -9 of a rank ends the run failed, naming it", False, note="no rank-1.pid")
        return
    os.kill(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)
    t0 = time.time()
    while time.time() - t0 < 120 and "rank 1" not in run.read_status().get("message", ""):
        time.sleep(0.1)
    took = round(time.time() - t0, 2)
    message = run.read_status().get("message", "")
    r = cli(["resume", run.id, "--runs-dir", str(run.path.parent)])
    while r.returncode == 0 and run.effective_state()[0] in ("starting", "running"):
        time.sleep(1)
    check("kill -9 of a rank ends the run failed naming it; resume finishes it",
          "rank 1" in message and run.read_status().get("state") == "finished",
          seconds_to_failed=took, message=message[:200], resumed=run.read_status().get("state"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or ".")
    ap.add_argument("--cpu", action="store_true",
                    help="dry run of this script on a CPU (fewer steps, GPU-only checks skipped)")
    ap.add_argument("--distributed-cpu", type=int, default=0, metavar="N",
                    help="with --cpu: only the distributed case, with N gloo processes")
    a = ap.parse_args()
    import torch

    if a.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    elif not torch.cuda.is_available():
        print("no CUDA GPU visible: this smoke test is for the GPU paths", file=sys.stderr)
        return 2
    rng = random.Random(0)
    d = Path(tempfile.mkdtemp(prefix="tunedeck-gpu-"))
    cls, lm = write_data(d, rng)
    rows: list[dict] = []

    def check(name: str, ok: bool, **info) -> None:
        rows.append({"check": name, "ok": bool(ok), **info})
        print(f"{'ok  ' if ok else 'FAIL'} {name}: " + json.dumps(info, default=str)[:400], flush=True)

    gpus = torch.cuda.device_count() if not a.cpu else a.distributed_cpu
    if gpus > 1:  # first: the newest part, and the one most worth the device time
        distributed_case(d, cls, check, gpus, steps=24 if a.cpu else 120)
    if a.cpu and a.distributed_cpu:
        return _finish(rows, Path(a.out))

    def train(name: str, prof: Path, *sets: str, env: dict[str, str] | None = None) -> tuple[dict, float]:
        argv = ["train", str(prof)]
        for s in sets:
            argv += ["--set", s]
        t0 = time.time()
        p = cli(argv, env=env)
        secs = time.time() - t0
        run_line = [ln for ln in p.stdout.splitlines() if ln.strip()]
        run = Path(run_line[-1]) if run_line and Path(run_line[-1]).is_dir() else None
        if run is None:
            check(name, False, rc=p.returncode, stderr=p.stderr[-800:])
            return {}, secs
        return summarize(run), secs

    def trained(s: dict) -> bool:
        return (s.get("state") == "finished" and s.get("loss_last") is not None
                and s["loss_last"] < s["loss_first"] and (a.cpu or "cuda" in str(s.get("device"))))

    s, secs = train("cls-auto", profile(d, "cls-auto", "classification", cls))
    check("classification, precision auto (bf16 autocast) on the GPU",
          trained(s) and (a.cpu or s["precision"] == "bf16"),
          secs=round(secs, 1), **s)
    base_tok = s.get("tok_s")
    if not a.cpu:  # fp16 autocast and compile are GPU matters
        s, secs = train("cls-fp16", profile(d, "cls-fp16", "classification", cls, precision="fp16"))
        check("classification, fp16 with the loss scaler", trained(s), secs=round(secs, 1), **s)
        s, secs = train("cls-compile", profile(d, "cls-compile", "classification", cls, compile=True,
                                               max_steps=200))
        check("classification, torch.compile", trained(s), secs=round(secs, 1),
              tok_s_vs_eager=(s.get("tok_s") or 0) / base_tok if base_tok else None, **s)
    s, secs = train("lm", profile(d, "lm", "causal-lm", lm))
    check("causal LM (response-only loss), bf16", trained(s) and "perplexity" in s.get("metrics", {}),
          secs=round(secs, 1), **s)
    if s.get("run"):
        p = cli(["predict", s["run"], "add 3 and 4", "--runs-dir", str(d / "runs")])
        check("predict (causal LM) on the GPU-trained model", p.returncode == 0, out=p.stdout.strip()[:200])

    # SIGKILL after step 50 (checkpoints every 20), then resume in the foreground.
    prof = profile(d, "killed", "classification", cls, save_every_steps=20)
    killed = cli(["train", str(prof)], env={"TUNEDECK_TEST_KILL_AT_STEP": "50"})
    s_killed = {"state": f"process exit {killed.returncode}"}
    runs = sorted((d / "runs").glob("killed-*"))
    if runs:
        p = cli(["resume", runs[-1].name, "--foreground", "--runs-dir", str(d / "runs")])
        s = summarize(runs[-1])
        check("SIGKILL at step 50, resume from step-40 to the end", s["state"] == "finished"
              and s["step"] == s["total"] and "from its newest complete checkpoint, step-40" in p.stdout,
              killed_state=s_killed.get("state"), **s)
    else:
        check("SIGKILL at step 50, resume", False, note="no run directory")

    s, secs = train("best", profile(d, "best", "classification", cls, load_best_model_at_end=True,
                                    eval_every_steps=20))
    m = json.loads((Path(s["run"]) / "metrics.json").read_text()) if s.get("run") else {}
    check("load_best_model_at_end", s.get("state") == "finished"
          and m.get("weights_step") in (m.get("best", {}).get("step"), m.get("steps")),
          weights_step=m.get("weights_step"), best=m.get("best"))
    p = cli(["predict", s.get("run", ""), "my card was charged twice", "--runs-dir", str(d / "runs")])
    check("predict (classifier)", p.returncode == 0 and "billing" in p.stdout, out=p.stdout.strip())
    p = cli(["doctor", "--json"])
    try:
        gpus = json.loads(p.stdout).get("gpus")
    except ValueError:
        gpus = None
    if not a.cpu:
        check("doctor sees the GPU with bf16", bool(gpus) and all(g.get("bf16") for g in gpus), gpus=gpus)

    return _finish(rows, Path(a.out))


def _finish(rows: list[dict], out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_smoke.json").write_text(json.dumps(rows, indent=2, default=str))
    failed = [r["check"] for r in rows if not r["ok"]]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} GPU smoke checks passed"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
