"""Starting workers. One function builds the command, one starts it detached. A profile asking
for several processes or machines ([distributed]) gets the supervisor of
``distributed_launch`` instead, which starts torch's launcher and one worker per rank."""

from __future__ import annotations

import os
import subprocess
import sys

from tunedeck.core.runs.rundir import RunDir


def worker_command(run: RunDir, resume: bool = False) -> list[str]:
    from tunedeck.core.runs.distributed_launch import supervisor_command

    supervised = supervisor_command(run, resume)
    if supervised is not None:
        return supervised
    cmd = [sys.executable, "-m", "tunedeck.core.runs.worker", str(run.path)]
    return cmd + (["--resume"] if resume else [])


def start_detached(run: RunDir, resume: bool = False) -> int:
    """Start the worker in a new session (own process group), stdin from /dev/null, output to
    worker.log; it survives the terminal that started it hanging up. Returns its pid."""
    log = open(run.log_path, "ab")
    try:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        proc = subprocess.Popen(worker_command(run, resume), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                                env=env)
    finally:
        log.close()
    return proc.pid
