#!/usr/bin/env python
"""The long versions of the reliability tests (docs/reliability.md), printing a table.

    python scripts/reliability.py [--kills 20] [--seed 1] [--quick]

What it does, on tiny models (CPU, fp32, one thread), each trial in a forked worker process
that is killed for real:

* exact resume -- ``--kills`` trials: the worker is SIGKILLed at a random point (half at a
  random optimizer step through the test hook, half by an asynchronous ``kill -9`` after a
  random delay, which can land anywhere: mid-step, mid-evaluation, mid-checkpoint, mid-event),
  some trials twice; then ``tunedeck resume`` (in-process) finishes it. Outcome ``exact`` when
  the run has the uninterrupted run's step count, per-step losses after the resume point and
  bit-identical final weights.
* crash at every checkpoint write boundary (``tunedeck.core.engine.checkpoint.BOUNDARIES``) of a real
  run: the previous complete checkpoint must stay loadable, no partial one may be listed as
  complete, and the resume must clean up and still end bit-identical.
* disk full (ENOSPC) at every write boundary: state failed with a clear message, the last
  good checkpoint intact, and a resume with space again ends bit-identical.
* signals: SIGTERM/SIGINT at random steps, during evaluation, during data preparation, and a
  second signal while the stop checkpoint is written: state stopped, then an exact resume;
  SIGHUP: ignored.
* divergence: NaN injected at a random step: state diverged within one step, no checkpoint
  with non-finite weights.

Exit code 0 when every trial has the expected outcome.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
for _k in ("TUNEDECK_TEST_KILL_AT_STEP", "TUNEDECK_TEST_HOOKS"):
    os.environ.pop(_k, None)

import test_reliability_support as S  # noqa: E402  (the same harness the fast tests use)


class Trial:
    def __init__(self, group: str, scenario: str, injected: str):
        self.group, self.scenario, self.injected = group, scenario, injected
        self.resumed_from = "-"
        self.outcome = "?"
        self.ok = False
        self.detail = ""
        self.seconds = 0.0


def _quiet(fn):
    """Run ``fn`` with stdout/stderr (the CLI's progress lines) sent to /dev/null."""
    def run():
        devnull = os.open(os.devnull, os.O_WRONLY)
        saved = os.dup(1), os.dup(2)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            return fn()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(devnull)
            os.close(saved[0])
            os.close(saved[1])
    return run


class Workload:
    """One profile, its uninterrupted baseline, and fresh runs of it."""

    def __init__(self, root: Path, kind: str):
        self.kind = kind
        d = root / kind
        if kind == "cls":
            self.profile = S.cls_setup(d, n=160, epochs=3, gradient_accumulation_steps=2,
                                       batch_size=8, log_every_steps=3, save_every_steps=2,
                                       eval_every_steps=5, keep_checkpoints=2)
        else:
            self.profile = S.lm_setup(d, n=160, epochs=3, batch_size=8, log_every_steps=2,
                                      save_every_steps=3, keep_checkpoints=2)
        # The baseline runs in this process (so every import is warm in the forked trials),
        # then once more in a forked child: the two must already agree bit for bit.
        self.baseline = self.fresh_run()
        assert _quiet(self.worker(self.baseline))() == 0
        st = S.status(self.baseline)
        assert st["state"] == "finished", st
        self.total = st["total_steps"]
        self.losses = dict(S.step_losses(self.baseline))
        ref = self.fresh_run()
        t0 = time.perf_counter()
        outcome = S.fork_call(_quiet(self.worker(ref)))
        self.duration = time.perf_counter() - t0
        assert outcome == ("exit", 0), outcome
        ok, detail = self.compare(ref)
        assert ok, f"an uninterrupted forked run differs from the baseline: {detail}"

    def fresh_run(self) -> Path:
        from tunedeck.core.runs.lifecycle import load_profile as _load_profile
        from tunedeck.core.profile import dumps
        from tunedeck.core.runs.rundir import create_run

        p = _load_profile(str(self.profile), None)
        return create_run(S.runs_dir(self.profile), p.name, dumps(p)).path

    @staticmethod
    def worker(run: Path):
        from tunedeck.core.runs.worker import main

        return lambda: main([str(run)])

    def resume(self, run: Path) -> tuple[str, int]:
        return S.fork_call(_quiet(lambda: S.resume_fg(run)))

    def compare(self, run: Path) -> tuple[bool, str]:
        st = S.status(run)
        if st.get("state") != "finished":
            return False, f"state {st.get('state')}: {st.get('message', '')[:80]}"
        if st.get("step") != self.total:
            return False, f"{st.get('step')} steps, expected {self.total}"
        resumes = S.of_type(run, "run_resumed")
        start = resumes[-1]["step"] if resumes else 0
        evs = S.events(run)
        last = max((i for i, e in enumerate(evs) if e["type"] == "run_resumed"), default=0)
        after = [(e["data"]["step"], e["data"]["loss"]) for e in evs[last:] if e["type"] == "step"]
        bad = [s for s, loss in after if self.losses.get(s) != loss]
        if bad:
            return False, f"loss differs at steps {bad[:5]}"
        if not S.same_weights(self.baseline / "model", run / "model"):
            return False, "final weights differ"
        return True, f"{len(after)} steps re-checked after step {start}"


def _resumed_from(run: Path) -> str:
    r = S.of_type(run, "run_resumed")
    return ",".join(str(x["step"]) for x in r) if r else "0 (none)"


def exact_resume_trials(w: Workload, n: int, rng: random.Random) -> list[Trial]:
    trials = []
    for i in range(n):
        double = i % 5 == 4
        mode = "hook" if i % 2 == 0 else "async"
        t = Trial("exact resume", f"{w.kind}: SIGKILL{' x2' if double else ''} ({mode})", "")
        t0 = time.perf_counter()
        run = w.fresh_run()
        points = []
        for round_ in range(2 if double else 1):
            if mode == "hook":
                done = max(S.checkpoint_steps(run) or [0])
                if done + 1 > w.total - 1:
                    break
                step = rng.randint(done + 1, w.total - 1)
                out = S.fork_call(_quiet(w.worker(run) if round_ == 0 else lambda: S.resume_fg(run)),
                                  env={"TUNEDECK_TEST_KILL_AT_STEP": str(step)})
                points.append(f"step {step}")
            else:
                delay = rng.uniform(0.1, 0.95) * w.duration
                out = _kill_after(w.worker(run) if round_ == 0 else lambda: S.resume_fg(run), delay)
                logged = S.step_losses(run)
                points.append(f"{delay:.2f}s (last logged step {logged[-1][0] if logged else 0})")
            if out == ("exit", 0):
                points[-1] += " [finished first]"
        t.injected = "; ".join(points)
        if S.status(run).get("state") != "finished":
            out = w.resume(run)
        t.resumed_from = _resumed_from(run)
        t.ok, t.detail = w.compare(run)
        t.outcome = "exact" if t.ok else "MISMATCH"
        t.seconds = time.perf_counter() - t0
        trials.append(t)
    return trials


def _kill_after(fn, delay: float) -> tuple[str, int]:
    """Fork ``fn``; SIGKILL it after ``delay`` seconds unless it ended first."""
    import torch

    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            torch.set_num_threads(1)
            _quiet(fn)()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return ("exit", os.WEXITSTATUS(status))
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return ("signal", signal.SIGKILL)


def cli_trials(w: Workload, rng: random.Random) -> list[Trial]:
    """Through the real command line: ``tunedeck start`` (a detached worker in its own
    session), ``kill -9`` of that worker from outside, ``tunedeck resume`` (detached again)."""
    import subprocess

    env = dict(S.cli_env(w.profile.parent), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("TUNEDECK_TEST_KILL_AT_STEP", None)
    env.pop("TUNEDECK_TEST_HOOKS", None)
    trials = []
    for mode in ("hook", "external"):
        t = Trial("command line", f"{w.kind}: start, kill -9 ({mode}), resume", "")
        t0 = time.perf_counter()
        e = dict(env)
        if mode == "hook":
            step = rng.randint(3, w.total - 2)
            e["TUNEDECK_TEST_KILL_AT_STEP"] = str(step)
            t.injected = f"step {step}"
        out = subprocess.run(S.TUNEDECK + ["start", str(w.profile)], env=e, capture_output=True,
                             text=True, timeout=120)
        run = Path(out.stdout.strip().splitlines()[-1])
        target = rng.randint(4, w.total - 3)
        deadline = time.time() + 300
        from tunedeck.core.runs.rundir import RunDir

        rd = RunDir(run)
        time.sleep(1.0)
        while time.time() < deadline:
            st = S.status(run)
            if rd.effective_state()[0] not in ("starting", "running"):
                break
            if mode == "external" and st.get("pid") and S.step_losses(run) and \
                    S.step_losses(run)[-1][0] >= target:
                os.kill(int(st["pid"]), signal.SIGKILL)
                t.injected = f"kill -9 after logged step {S.step_losses(run)[-1][0]}"
                break
            time.sleep(0.05)
        time.sleep(0.5)
        listed = json.loads(subprocess.run(S.TUNEDECK + ["runs", "--json", "--runs-dir", str(run.parent)],
                                           env=env, capture_output=True, text=True).stdout)
        shown = next(r for r in listed if r["id"] == run.name)
        subprocess.run(S.TUNEDECK + ["resume", run.name, "--runs-dir", str(run.parent)], env=env,
                       capture_output=True, text=True, timeout=120)
        time.sleep(1.0)
        while time.time() < deadline and rd.effective_state()[0] in ("starting", "running"):
            time.sleep(0.2)
        ok, detail = w.compare(run)
        t.ok = ok and shown["state"] == "failed"
        t.resumed_from = _resumed_from(run)
        t.outcome = "exact" if t.ok else "MISMATCH"
        t.detail = f"shown as {shown['state']} while dead; {detail}"
        t.seconds = time.perf_counter() - t0
        trials.append(t)
    return trials


def crash_boundary_trials(w: Workload) -> list[Trial]:
    from tunedeck.core.engine import checkpoint as C

    trials = []
    step = 4  # saves at 2, 4, 6, ... with keep 2: the save at step 6 rotates step 2 out
    for label in C.BOUNDARIES:
        at = 6 if label == "rotate" else step
        t = Trial("crash boundary", f"{w.kind}: SIGKILL at checkpoint '{label}'", f"ckpt:{label}@{at}")
        t0 = time.perf_counter()
        run = w.fresh_run()
        out = S.fork_call(_quiet(w.worker(run)), env={"TUNEDECK_TEST_HOOKS": f"ckpt:{label}@{at}=KILL"})
        problems = []
        if out != ("signal", signal.SIGKILL):
            problems.append(f"not killed: {out}")
        listed = C.list_complete(run / "checkpoints")
        for p in (run / "checkpoints").iterdir():
            if p.name.startswith("step-") and not C.is_complete(p):
                problems.append(f"partial {p.name} left as step dir")
        if not listed:
            problems.append("no complete checkpoint left")
        else:
            try:
                C.load_train_state(listed[-1])
                S.weights(listed[-1])
            except Exception as e:  # noqa: BLE001
                problems.append(f"newest complete checkpoint unloadable: {e}")
        before = sorted(p.name for p in (run / "checkpoints").iterdir())
        w.resume(run)
        leftovers = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
        if leftovers:
            problems.append(f"leftovers after resume: {leftovers}")
        ok, detail = w.compare(run)
        t.resumed_from = _resumed_from(run)
        t.ok = ok and not problems
        t.outcome = "safe+exact" if t.ok else "FAILED"
        t.detail = "; ".join(problems) or f"left {', '.join(before)}; {detail}"
        t.seconds = time.perf_counter() - t0
        trials.append(t)
    return trials


def disk_full_trials(w: Workload) -> list[Trial]:
    from tunedeck.core.engine import checkpoint as C

    trials = []
    for label in C.BOUNDARIES:
        at = 6 if label == "rotate" else 4
        t = Trial("disk full", f"{w.kind}: ENOSPC at checkpoint '{label}'", f"ckpt:{label}@{at}")
        t0 = time.perf_counter()
        run = w.fresh_run()
        S.fork_call(_quiet(w.worker(run)), env={"TUNEDECK_TEST_HOOKS": f"ckpt:{label}@{at}=ENOSPC"})
        st = S.status(run)
        msg = st.get("message", "")
        problems = []
        if st.get("state") != "failed":
            problems.append(f"state {st.get('state')}")
        if "No space left on device" not in msg or "Traceback" in msg:
            problems.append(f"message: {msg[:80]}")
        if not C.list_complete(run / "checkpoints"):
            problems.append("no complete checkpoint left")
        w.resume(run)
        ok, detail = w.compare(run)
        t.resumed_from = _resumed_from(run)
        t.ok = ok and not problems
        t.outcome = "failed clearly+exact" if t.ok else "FAILED"
        t.detail = "; ".join(problems) or f"'{msg[:60]}...'; {detail}"
        t.seconds = time.perf_counter() - t0
        trials.append(t)
    return trials


def signal_trials(w: Workload, rng: random.Random) -> list[Trial]:
    cases = [(f"SIGTERM at step {s}", f"step:{s}=TERM", "stopped") for s in
             sorted(rng.sample(range(1, w.total), 3))]
    cases += [(f"SIGINT at step {s}", f"step:{s}=INT", "stopped") for s in
              sorted(rng.sample(range(1, w.total), 2))]
    if w.kind == "cls":
        cases.append(("SIGINT during evaluation", "eval@5=INT", "stopped"))
    cases += [
        ("SIGTERM during data preparation", "prepare=TERM", "stopped"),
        ("TERM, then TERM+INT mid-checkpoint", "step:3=TERM;ckpt:model@3=TERM;ckpt:before-marker@3=INT",
         "stopped"),
        ("SIGHUP at two steps", f"step:2=HUP;step:{w.total - 1}=HUP", "finished"),
    ]
    trials = []
    for name, hooks, want in cases:
        t = Trial("signals", f"{w.kind}: {name}", hooks)
        t0 = time.perf_counter()
        run = w.fresh_run()
        out = S.fork_call(_quiet(w.worker(run)), env={"TUNEDECK_TEST_HOOKS": hooks})
        st = S.status(run)
        problems = []
        if out != ("exit", 0) or st.get("state") != want:
            problems.append(f"exit {out}, state {st.get('state')}")
        if want == "stopped":
            w.resume(run)
        ok, detail = w.compare(run)
        t.resumed_from = _resumed_from(run)
        t.ok = ok and not problems
        t.outcome = f"{want}+exact" if t.ok else "FAILED"
        t.detail = "; ".join(problems) or detail
        t.seconds = time.perf_counter() - t0
        trials.append(t)
    return trials


def divergence_trials(w: Workload, rng: random.Random, n: int = 3) -> list[Trial]:
    trials = []
    for step in sorted(rng.sample(range(2, w.total), n)):
        t = Trial("divergence", f"{w.kind}: NaN loss", f"step:{step}=NAN")
        t0 = time.perf_counter()
        run = w.fresh_run()
        S.fork_call(_quiet(w.worker(run)), env={"TUNEDECK_TEST_HOOKS": f"step:{step}=NAN"})
        st = S.status(run)
        ckpts = S.checkpoint_steps(run)
        problems = []
        if st.get("state") != "diverged" or f"step {step}" not in st.get("message", ""):
            problems.append(f"state {st.get('state')}: {st.get('message', '')[:60]}")
        if ckpts and max(ckpts) >= step:
            problems.append(f"checkpoint at step {max(ckpts)} >= {step}")
        if not S.all_weights_finite(run):
            problems.append("non-finite checkpoint")
        t.ok = not problems
        t.outcome = "diverged" if t.ok else "FAILED"
        div = S.of_type(run, "run_diverged")
        at = div[-1]["step"] if div else "?"
        t.detail = "; ".join(problems) or f"diverged at step {at}, checkpoints {ckpts}"
        t.seconds = time.perf_counter() - t0
        trials.append(t)
    return trials


def print_table(trials: list[Trial]) -> None:
    cols = [("#", lambda i, t: str(i)), ("group", lambda i, t: t.group),
            ("scenario", lambda i, t: t.scenario), ("injected at", lambda i, t: t.injected),
            ("resumed from", lambda i, t: t.resumed_from), ("outcome", lambda i, t: t.outcome),
            ("s", lambda i, t: f"{t.seconds:.1f}"), ("detail", lambda i, t: t.detail)]
    rows = [[f(i, t) for _, f in cols] for i, t in enumerate(trials, 1)]
    rows = [[c if len(c) <= 70 else c[:67] + "..." for c in r] for r in rows]
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, (h, _) in enumerate(cols)]
    print("| " + " | ".join(h.ljust(w) for (h, _), w in zip(cols, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="exact-resume trials (default 20)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="fewer trials, cls workload only")
    ap.add_argument("--only", help="run only this group (exact, cli, crash, disk, signals, divergence)")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    rng = random.Random(a.seed)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tunedeck-reliability-") as tmp:
        os.environ["TUNEDECK_CACHE_DIR"] = str(Path(tmp) / "cache")
        cls = Workload(Path(tmp), "cls")
        lm = None if a.quick else Workload(Path(tmp), "lm")
        print(f"baselines: cls {cls.total} steps ({cls.duration:.1f}s)"
              + (f", lm {lm.total} steps ({lm.duration:.1f}s)" if lm else ""), flush=True)
        trials: list[Trial] = []
        want = (lambda g: a.only is None or a.only == g)
        n_cls = a.kills if a.quick else a.kills - a.kills // 4
        if want("exact"):
            trials += exact_resume_trials(cls, n_cls, rng)
            if lm:
                trials += exact_resume_trials(lm, a.kills - n_cls, rng)
        if want("cli") and not a.quick:
            trials += cli_trials(cls, rng)
        if want("crash"):
            trials += crash_boundary_trials(cls)
        if want("disk"):
            trials += disk_full_trials(cls)
        if want("signals"):
            trials += signal_trials(cls, rng)
            if lm:
                trials += signal_trials(lm, rng)[:3]
        if want("divergence"):
            trials += divergence_trials(cls, rng)
            if lm:
                trials += divergence_trials(lm, rng, n=2)
    print_table(trials)
    groups: dict[str, list[Trial]] = {}
    for t in trials:
        groups.setdefault(t.group, []).append(t)
    print()
    for g, ts in groups.items():
        print(f"{g:<15} {sum(t.ok for t in ts)}/{len(ts)} as promised")
    bad = [t for t in trials if not t.ok]
    print(f"total {len(trials) - len(bad)}/{len(trials)} in {time.perf_counter() - t_start:.0f}s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
