"""What the TUI asks of the outside world, in one injectable bundle.

The app never trains and never imports torch: starting and resuming runs (which check data and
models) and the doctor report are ``python -m tunedeck.core.cli ... --json`` subprocesses (no
shell); stopping and deleting are the torch-free ``tunedeck.core.runs.lifecycle`` functions,
called in process; machine stats come from psutil (and nvidia-ml-py when it is installed). Tests pass fakes for all of these, as memray's TUI tests
inject its data source.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from tunedeck.core.errors import RunError, UserError

if TYPE_CHECKING:
    from tunedeck.core.runs import lifecycle
    from tunedeck.core.runs.rundir import RunDir

CLI_TIMEOUT_S = 180


def _cli_env() -> dict[str, str]:
    """Environment for ``python -m tunedeck.core.cli`` (the same interpreter finds the package)."""
    return dict(os.environ)


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tunedeck.core.cli", *args]


def run_cli(args: list[str], timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run the tunedeck CLI without a shell, in its own session (a TUI crash never reaches it)."""
    try:
        return subprocess.run(
            cli_command(*args), capture_output=True, text=True, stdin=subprocess.DEVNULL,
            timeout=timeout, env=_cli_env(), start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        raise RunError(f"'tunedeck {' '.join(args)}' did not finish in {timeout:.0f}s") from None
    except OSError as e:
        raise RunError(f"cannot run the tunedeck CLI: {e}") from None


def _fail_message(args: list[str], proc: subprocess.CompletedProcess[str]) -> str:
    err = (proc.stderr or "").strip() or (proc.stdout or "").strip()
    if "No module named tunedeck.core.cli" in err or "No module named 'tunedeck.core.cli'" in err:
        return "the tunedeck CLI (tunedeck.core.cli) is not installed in this Python environment"
    lines = err.splitlines()
    if any(ln.startswith("Traceback") for ln in lines):
        # A bug in the CLI: show its last line, not the whole traceback.
        lines = lines[-1:]
    tail = "\n".join(lines[-12:]) or f"exit code {proc.returncode}"
    return f"'tunedeck {' '.join(args[:1])}' failed:\n{tail}"


def _json_result(proc: subprocess.CompletedProcess[str], args: list[str]) -> dict[str, Any]:
    """The one JSON object a ``--json`` command prints; its ``error`` becomes a RunError (the
    message the CLI would print); anything else that is not that object is the CLI failing."""
    try:
        data = json.loads((proc.stdout or "").strip())
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise RunError(_fail_message(args, proc))
    if "error" in data:
        raise RunError(str(data["error"]))
    if proc.returncode != 0:
        raise RunError(_fail_message(args, proc))
    return data


def _run_dir_of(data: dict[str, Any], args: list[str]) -> Path:
    p = Path(str(data.get("run_dir", "")))
    if not data.get("run_dir") or not p.is_dir():
        raise RunError(f"'tunedeck {args[0]}' reported run directory {p}, which does not exist")
    return p


def cli_start(profile: Path, runs_dir: Path) -> Path:
    """Start a detached run (``tunedeck start --json``); returns its run directory."""
    args = ["start", "--json", str(Path(profile).resolve()), "--runs-dir", str(Path(runs_dir).resolve())]
    return _run_dir_of(_json_result(run_cli(args), args), args)


def cli_resume(run_id: str, runs_dir: Path) -> Path:
    """Resume a run in a detached worker (``tunedeck resume --json``); returns its run directory."""
    args = ["resume", "--json", run_id, "--runs-dir", str(Path(runs_dir).resolve())]
    return _run_dir_of(_json_result(run_cli(args), args), args)


def cli_doctor() -> dict[str, Any]:
    args = ["doctor", "--json"]
    proc = run_cli(args, timeout=120)
    out = (proc.stdout or "").strip()
    start = out.find("{")
    if start >= 0:
        try:
            data = json.loads(out[start:])
            if isinstance(data, dict):
                return data
        except ValueError:
            pass
    raise UserError(_fail_message(args, proc))


def cli_search_show(group_path: Path) -> dict[str, Any]:
    """A study's trials, best first, and importances (``tunedeck search show STUDY --json``):
    the study lives in Optuna's storage, and Optuna stays out of the TUI process."""
    args = ["search", "show", str(Path(group_path).resolve()), "--json"]
    return _json_result(run_cli(args, timeout=60), args)


def cli_search_best(group_path: Path) -> dict[str, Any]:
    """The best trial's number, params and profile text (``tunedeck search best --json``)."""
    args = ["search", "best", str(Path(group_path).resolve()), "--json"]
    return _json_result(run_cli(args, timeout=60), args)


def cli_data_op(op: str, source: Path, options: list[str], dry_run: bool,
                progress: Callable[[int, int], None] | None = None,
                started: Callable[[subprocess.Popen[str]], None] | None = None) -> dict[str, Any]:
    """``tunedeck data OP SOURCE OPTIONS [--dry-run] --json``: its report (one JSON object on
    stdout); ``progress(done, total)`` for each ``progress DONE TOTAL`` line it writes on stderr.
    ``started`` gets the process (the screen stops it when the user leaves; the CLI writes to a
    temporary name, so a stopped operation leaves nothing half-written)."""
    import threading

    args = ["data", op, str(Path(source).resolve()), *options, "--json", *(["--dry-run"] if dry_run else [])]
    try:
        proc = subprocess.Popen(cli_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, env=_cli_env(), start_new_session=True)
    except OSError as e:
        raise RunError(f"cannot run the tunedeck CLI: {e}") from None
    if started is not None:
        started(proc)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read() if proc.stdout else ""), daemon=True)
    reader.start()
    other: list[str] = []
    for line in proc.stderr or []:  # progress lines as they come; anything else is kept for errors
        parts = line.split()
        if len(parts) == 3 and parts[0] == "progress" and parts[1].isdigit() and parts[2].isdigit():
            if progress is not None:
                progress(int(parts[1]), int(parts[2]))
        else:
            other.append(line)
    code = proc.wait()
    reader.join()
    done = subprocess.CompletedProcess(args, code, "".join(out), "".join(other))
    return _json_result(done, args)


# --- stop and delete: tunedeck.core.runs.lifecycle, imported at first use ---------------
# (it pulls in the launch and run-directory modules, ~10 ms that start-up does not need)

def stop_run(run: RunDir, wait_s: float = 0.0, poll_s: float = 0.2) -> lifecycle.StopResult:
    """``tunedeck.core.runs.lifecycle.stop_run`` (control request + signal, as ``tunedeck stop``)."""
    from tunedeck.core.runs.lifecycle import stop_run as _stop_run

    return _stop_run(run, wait_s, poll_s)


def delete_run(run: RunDir, runs_dir: Path | None = None) -> lifecycle.DeleteResult:
    """``tunedeck.core.runs.lifecycle.delete_run`` (refuses a live run, then removes it)."""
    from tunedeck.core.runs.lifecycle import delete_run as _delete_run

    return _delete_run(run, runs_dir)


# --- machine stats ------------------------------------------------------------------------

class SysInfo:
    """CPU/RAM via psutil; GPUs through core.runs.gpu_stats (nvidia-ml-py when it imports and
    finds a driver; the worker's heartbeat writes the same readings into status.json)."""

    def __call__(self, pid: int | None = None) -> dict[str, Any]:
        import psutil

        from tunedeck.core.runs.gpu_stats import gpu_stats

        vm = psutil.virtual_memory()
        out: dict[str, Any] = {
            "cpu_percent": psutil.cpu_percent(interval=None),
            "ram_used_gb": (vm.total - vm.available) / 1e9,
            "ram_total_gb": vm.total / 1e9,
            "gpus": gpu_stats(),
        }
        if pid:
            try:
                p = psutil.Process(pid)
                out["worker_rss_gb"] = p.memory_info().rss / 1e9
                out["worker_cpu_percent"] = p.cpu_percent(interval=None)
            except (psutil.Error, OSError):
                pass
        return out


@dataclass
class Services:
    clock: Callable[[], float] = time.time
    sysinfo: Callable[..., dict[str, Any]] = field(default_factory=SysInfo)
    doctor: Callable[[], dict[str, Any]] = cli_doctor
    start_run: Callable[[Path, Path], Path] = cli_start
    resume_run: Callable[[str, Path], Path] = cli_resume
    stop_run: Callable[..., lifecycle.StopResult] = stop_run
    delete_run: Callable[..., lifecycle.DeleteResult] = delete_run
    search_show: Callable[[Path], dict[str, Any]] = cli_search_show
    search_best: Callable[[Path], dict[str, Any]] = cli_search_best
    data_op: Callable[..., dict[str, Any]] = cli_data_op
    events_poll_s: float = 0.25
    runs_poll_s: float = 1.0
    sys_poll_s: float = 2.0
    study_poll_s: float = 3.0
