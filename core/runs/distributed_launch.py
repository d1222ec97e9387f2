"""Distributed runs: the supervisor (``python -m tunedeck.core.runs.distributed_launch RUN_DIR``)
that ``start``/``resume`` launch detached instead of the worker when the profile's
``[distributed]`` asks for more than one process or machine (docs/distributed.md).

It holds the run's lock on machine 0 (so ``runs`` shows it alive and a second ``resume``
waits), starts torch's launcher (``python -m torch.distributed.run``: one worker per process,
``--max-restarts 0``, so the launcher's agent ends the surviving ranks as soon as one dies),
forwards a stop signal to every rank (they agree at the next step boundary and checkpoint
together), and records the outcome: when a rank dies (kill -9, the kernel's out-of-memory
killer, a crash) the run ends ``failed`` naming the rank and why, from the ranks' exit files
and the launcher's failure summary. On machines 1 .. nodes-1 it keeps that machine's own run
directory's status (the run's events and files are on machine 0).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tunedeck.core.engine import distributed as D
from tunedeck.core.errors import ProfileError
from tunedeck.core.runs.rundir import HEARTBEAT_S, RunDir, RunLock

MONITOR_INTERVAL_S = 0.5  # how often the launcher's agent looks at its ranks


# --- what to launch -------------------------------------------------------------------------

def visible_gpus() -> int:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_processes(section: Any) -> int:
    """Processes on this machine: a number, or 'auto' = the visible GPUs (1 without one)."""
    if section.processes == "auto":
        return max(1, visible_gpus())
    return int(section.processes)


def check_distributed(prof: Any) -> None:
    """The pre-flight's distributed part: a ProfileError naming the field and the fix."""
    d = prof.distributed
    if d.strategy == "fsdp" and d.nodes > 1:
        # Each rank writes its DCP shard into its own machine's run directory, but the run's
        # checkpoints live on machine 0: a checkpoint would lack the other machines' shards.
        raise ProfileError(
            f"distributed.strategy = 'fsdp' with nodes = {d.nodes}: sharded checkpoints need "
            "every rank to write into machine 0's run directory, which the other machines do "
            "not have; use strategy = 'fsdp' on one machine, or strategy = 'ddp' across "
            "machines (docs/distributed.md)")
    if isinstance(d.processes, int) and d.processes > 1:
        gpus = visible_gpus()
        if 0 < gpus < d.processes:
            raise ProfileError(
                f"distributed.processes = {d.processes}, but {gpus} GPU(s) are visible: one "
                f"process per GPU; set processes = 'auto' or at most {gpus}")


def supervisor_command(run: RunDir, resume: bool) -> list[str] | None:
    """The supervisor's command line, or None for a single process (the worker's own)."""
    from tunedeck.core.profile import load

    section = load(run.profile_path).distributed
    if resolve_processes(section) == 1 and section.nodes == 1:
        return None
    cmd = [sys.executable, "-m", "tunedeck.core.runs.distributed_launch", str(run.path)]
    return cmd + (["--resume"] if resume else [])


def launcher_command(run: RunDir, section: Any, processes: int, resume: bool) -> list[str]:
    """torchrun with the profile's values. One machine: a private rendezvous on a free port
    (``--standalone``: two runs at once never race for one port); several: machine 0's address
    and port."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}",
           "--max-restarts=0", f"--monitor-interval={MONITOR_INTERVAL_S}"]
    if section.nodes == 1:
        cmd.append("--standalone")
    else:
        cmd += [f"--nnodes={section.nodes}", f"--node-rank={section.node_rank}",
                f"--master-addr={section.main_address}", f"--master-port={section.main_port}"]
    cmd += ["-m", "tunedeck.core.runs.worker", str(run.path)]
    return cmd + (["--resume"] if resume else [])


# --- the outcome ----------------------------------------------------------------------------

_FAILURE = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank:\s*\d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)")


def launcher_failures(output: str) -> dict[int, int]:
    """{rank: exit code} from torchrun's failure summary (a negative code: killed by signal)."""
    return {int(r): int(c) for r, c in _FAILURE.findall(output)}


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def diagnose(code: int, output: str, dist_dir: Path) -> tuple[int, str] | None:
    """(rank, why) of the rank whose failure ended the run, or None when none failed. A rank
    that left no exit file died without a word (killed); else a rank that failed, rank 0 last
    (its own message is already the run's)."""
    import json

    if code == 0:
        return None
    exits: dict[int, dict[str, Any]] = {}
    started = []
    for f in dist_dir.iterdir():
        m = re.match(r"^rank-(\d+)\.(pid|exit)$", f.name)
        if not m:
            continue
        if m.group(2) == "pid":
            started.append(int(m.group(1)))
            continue
        try:
            exits[int(m.group(1))] = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    codes = launcher_failures(output)
    for r in sorted(started):
        if r not in exits:
            c = codes.get(r)
            how = (f"killed by {_signal_name(c)}" if c is not None and c < 0
                   else f"exited with code {c}" if c is not None else "died")
            hint = " (kill -9, or the kernel's out-of-memory killer)" if c == -9 else ""
            return r, f"{how}{hint} without reporting"
    failed = sorted((r for r, e in exits.items() if e.get("state") == "failed"),
                    key=lambda r: r == 0)  # another rank's failure first: rank 0's is known
    if failed:
        r = failed[0]
        return r, f"failed: {exits[r].get('message') or 'see worker.log'}"
    if started and set(started) <= set(exits):
        return None  # every rank said how it ended and none failed (stopped, diverged)
    if codes:
        r = min(codes)
        return r, f"exited with code {codes[r]}"
    return -1, f"the launcher exited with code {code} before every rank started; see worker.log"


class Supervisor:
    def __init__(self, run: RunDir, resume: bool):
        from tunedeck.core.profile import load

        self.run, self.resume = run, resume
        self.section = load(run.profile_path).distributed
        self.processes = resolve_processes(self.section)
        self.main_node = self.section.node_rank == 0
        self.dist_dir = run.path / ".dist"
        self.proc: subprocess.Popen[str] | None = None
        self.stopping = False
        self._beat = threading.Event()

    def execute(self) -> int:
        lock = RunLock(self.run)
        lock.acquire()  # held for every rank: `runs` sees the run alive, `resume` waits
        try:
            shutil.rmtree(self.dist_dir, ignore_errors=True)
            self.dist_dir.mkdir()
            self._write_status(state="running" if not self.main_node else None)
            signal.signal(signal.SIGTERM, self._forward_stop)
            signal.signal(signal.SIGINT, self._forward_stop)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            if not self.main_node:
                threading.Thread(target=self._heartbeat, daemon=True).start()
            code, output = self._launch()
            self._record(code, output)
            return code
        finally:
            self._beat.set()
            lock.release()

    def _launch(self) -> tuple[int, str]:
        env = dict(os.environ, **{D.DIST_DIR_ENV: str(self.dist_dir),
                                  D.SUPERVISOR_ENV: str(os.getpid()),
                                  "PYTHONUNBUFFERED": "1"})
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.processes)))
        cmd = launcher_command(self.run, self.section, self.processes, self.resume)
        print("tunedeck supervisor: " + " ".join(cmd), flush=True)
        tail: collections.deque[str] = collections.deque(maxlen=400)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env,
                                     preexec_fn=_end_with_parent)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # into worker.log; the tail holds the failure summary
            sys.stdout.write(line)
            sys.stdout.flush()
            tail.append(line)
        return self.proc.wait(), "".join(tail)

    def _forward_stop(self, signum: int, frame: Any) -> None:
        """`stop`: SIGTERM to every rank (each sets its stop flag; the ranks agree at the next
        step boundary and checkpoint together). Before any rank started: to the launcher."""
        self.stopping = True
        pids = []
        for f in self.dist_dir.glob("rank-*.pid"):
            try:
                import json

                pids.append(int(json.loads(f.read_text(encoding="utf-8"))["pid"]))
            except (OSError, ValueError, KeyError):
                continue
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        if not pids and self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def _heartbeat(self) -> None:
        while not self._beat.wait(HEARTBEAT_S):
            try:
                self.run.write_status(heartbeat=time.time())
            except OSError:
                pass

    def _write_status(self, **fields: Any) -> None:
        fields = {k: v for k, v in fields.items() if v is not None}
        note = {"processes": self.processes, "nodes": self.section.nodes,
                "node_rank": self.section.node_rank, "strategy": self.section.strategy}
        self.run.write_status(pid=os.getpid(), host=socket.gethostname(), heartbeat=time.time(),
                              distributed=note, **fields)

    def _record(self, code: int, output: str) -> None:
        """The run's end state when the ranks could not say it themselves."""
        found = diagnose(code, output, self.dist_dir)
        st = self.run.read_status()
        if not self.main_node:
            state = "failed" if found else "finished"
            why = (f"rank {found[0]} {found[1]}" if found and found[0] >= 0 else
                   found[1] if found else "")
            self._write_status(state=state, ended=time.time(), message=(
                f"machine {self.section.node_rank} of {self.section.nodes}; the run's events "
                f"and model are on machine 0" + (f"; {why}" if why else "")))
            return
        if found is None and st.get("state") in ("finished", "stopped", "diverged", "pruned"):
            return
        if self.stopping and (found is None or found[0] < 0 or "SIGTERM" in found[1]):
            self._write_status(state="stopped", ended=time.time(), message=(
                f"stopped before training started; 'tunedeck resume {self.run.id}' continues it"))
            return
        if found is not None and found[0] == 0 and st.get("state") == "failed":
            # Rank 0 failed first and said why (a user error, a bug with its traceback).
            self._emit_failed(st.get("message") or found[1], 0, st)
            return
        self._fail(found, st)

    def _fail(self, found: tuple[int, str] | None, st: dict[str, Any]) -> None:
        from tunedeck.core.engine.checkpoint import list_complete

        last = list_complete(self.run.checkpoints_dir)
        then = (f"'tunedeck resume {self.run.id}' continues from {last[-1].name}" if last
                else f"'tunedeck resume {self.run.id}' starts it again from step 0")
        who = (f"rank {found[0]} of {self.processes * self.section.nodes} {found[1]}"
               if found and found[0] >= 0 else found[1] if found else
               "the ranks ended without a final state")
        message = f"{who}; the other ranks were stopped; {then}"
        self._emit_failed(message, found[0] if found else None, st)
        self._write_status(state="failed", message=message, ended=time.time())

    def _emit_failed(self, message: str, rank: int | None, st: dict[str, Any]) -> None:
        """The run's one run_failed event (the ranks log theirs as errors)."""
        from tunedeck.core.runs.events import EventWriter

        events = EventWriter(self.run.events_path)
        try:
            events.emit("run_failed", error=message, rank=rank, step=int(st.get("step") or 0))
        finally:
            events.close()


def _end_with_parent() -> None:
    """In the launcher's process: SIGTERM when the supervisor dies (kill -9 of it), so its
    agent ends the ranks rather than leave them training a run nobody holds."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the ranks then end at their next collective with a dead peer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tunedeck.core.runs.distributed_launch")
    ap.add_argument("run_dir")
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args(argv)
    return Supervisor(RunDir(Path(a.run_dir)), a.resume).execute()


if __name__ == "__main__":
    sys.exit(main())
