"""k-fold cross-validation: ``tunedeck cv PROFILE --folds K`` and ``tunedeck cv --resume GROUP``.

`start_cv` reads the data as training does, draws the folds (cv_folds), writes the group
directory (data files, base profile, group.json) under a temp name and renames it into place,
then starts the driver detached (``python -m tunedeck.core.runs.drivers.cv GROUP``) or runs it
here. The driver trains the folds one after another, each a normal run directory
``GROUP/fold-N`` trained in the driver's process by ``worker.run_worker``: a stop reaches the
fold's worker as SIGTERM (it checkpoints), and a killed driver leaves a fold that
`resume_run` continues from its newest checkpoint. After every fold, summary.json.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from tunedeck.core.errors import ProfileError, RunError
from tunedeck.core.fsutil import atomic_write_json, atomic_write_text
from tunedeck.core.runs.drivers.base import (GroupStart, DriverContext, GroupDir, launch, prepare_resume,
                                             driver_main, run_driver)
from tunedeck.core.runs.drivers.cv_summary import fold_run, write_summary
from tunedeck.core.runs.rundir import RunDir, new_run_id

DRIVER_MODULE = "tunedeck.core.runs.drivers.cv"


def folds_for(prof: Any, folds: int | None) -> int:
    """K from --folds, else the profile's cv.folds; at least 2."""
    k = prof.cv.folds if folds is None else folds
    if k < 2:
        where = "--folds" if folds is not None else "cv.folds in the profile"
        raise ProfileError(f"k-fold cross-validation needs at least 2 folds ({where} is {k}); "
                           "pass --folds K or set [cv] folds = K", path="cv.folds")
    if k > 100:
        raise ProfileError(f"--folds {k}: at most 100 folds", path="cv.folds")
    return k


def create_group(prof: Any, k: int) -> GroupDir:
    """The group directory with its folds' data, written aside and renamed into place (never
    half a group in a listing). DataError (nothing written) when K does not fit the data."""
    from tunedeck.core.profile import dumps
    from tunedeck.core.runs.drivers.cv_folds import plan_folds, write_fold_files

    plan = plan_folds(prof, k)
    runs_dir = Path(prof.output.runs_dir).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    gid = new_run_id(f"{prof.name}-cv{k}")
    tmp = runs_dir / f".{gid}.creating"
    try:
        tmp.mkdir()
        files = write_fold_files(plan, tmp / "data")
        base = prof.model_copy(update={"cv": prof.cv.model_copy(update={"folds": k})})
        atomic_write_text(tmp / "base_profile.toml", dumps(base))
        atomic_write_json(tmp / "group.json", {
            "kind": "cv", "name": prof.name, "task": prof.task.type, "folds": k,
            "members": [f"fold-{i}" for i in range(1, k + 1)], "seed": prof.training.seed,
            "stratified": plan.stratified, "pool_rows": plan.pool.num_rows,
            "fold_rows": plan.fold_counts(),
            "test_rows": plan.test.num_rows if plan.test is not None else 0,
            "files": files, "created": time.time()})
        GroupDir(tmp).write_status(state="starting", heartbeat=time.time(), created=time.time(),
                                   kind="cv", name=prof.name, task=prof.task.type, step=0,
                                   total_steps=k)
        os.rename(tmp, runs_dir / gid)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_summary(runs_dir / gid, k)
    return GroupDir(runs_dir / gid)


def start_cv(prof: Any, folds: int | None = None, detach: bool = True) -> GroupStart:
    """Check the profile like `start`, write the group, start its driver (detached)."""
    from tunedeck.core.runs.lifecycle import check_start

    k = folds_for(prof, folds)
    check_start(prof)
    group = create_group(prof, k)
    pid = launch(group, DRIVER_MODULE) if detach else None
    return GroupStart(group.path, group.id, "folds", k, pid)


def resume_cv(group: GroupDir, detach: bool = True) -> GroupStart:
    """Continue a stopped or killed group: finished folds are kept, an interrupted fold resumes
    from its newest checkpoint, the rest run."""
    k = int(group.info().get("folds") or 0)
    if group.info().get("kind") != "cv" or k < 2:
        raise RunError(f"{group.path}: not a k-fold group (group.json has no 'folds')")
    prepare_resume(group)
    pid = launch(group, DRIVER_MODULE, resume=True) if detach else None
    return GroupStart(group.path, group.id, "folds", k, pid)


# --- the driver --------------------------------------------------------------------------

def run_cv(group: GroupDir, echo: Callable[[Any], None] | None = None) -> str:
    """The driver: every fold to an end, in order; returns the group's end state."""
    return run_driver(group, lambda ctx: _run_folds(ctx, echo))


def _run_folds(ctx: DriverContext, echo: Callable[[Any], None] | None) -> tuple[str, str]:
    from tunedeck.core.profile import load

    group = ctx.group
    info = group.info()
    k = int(info["folds"])
    base = load(group.profile_path)
    has_test = bool(info.get("files", {}).get("test"))
    resume_hint = f"'tunedeck cv --resume {group.id}' continues it"
    for i in range(1, k + 1):
        done = write_summary(group.path, k)["folds_done"]
        ctx.status(step=done, total_steps=k, current=f"fold-{i}")
        if ctx.stop_asked():
            return "stopped", f"stopped before fold {i}/{k}; {resume_hint}"
        print(f"fold {i}/{k}: {fold_run(group.path, i).path}", flush=True)
        state = run_fold(group, base, i, has_test, echo)
        done = write_summary(group.path, k)["folds_done"]
        ctx.status(step=done)
        if state == "stopped":
            return "stopped", f"stopped in fold {i}/{k} (checkpointed); {resume_hint}"
        if state != "finished":
            reason = fold_run(group.path, i).read_status().get("message", "")
            return "failed", (f"fold {i}/{k} ended {state}: {reason}; "
                              f"'tunedeck cv --resume {group.id}' retries it")
    ctx.status(current=None)
    return "finished", ""


def run_fold(group: GroupDir, base: Any, i: int, has_test: bool,
             echo: Callable[[Any], None] | None) -> str:
    """Fold ``i`` to an end state: started when new, kept when finished, else resumed from its
    newest complete checkpoint exactly as `tunedeck resume` does."""
    from tunedeck.core.runs.drivers.cv_folds import fold_profile
    from tunedeck.core.runs.lifecycle import resume_run
    from tunedeck.core.runs.worker import run_worker

    run = fold_run(group.path, i)
    if not run.status_path.is_file():
        _create_fold_run(run, fold_profile(base, group.path, i, has_test))
        return run_worker(run, echo=echo)
    state, _ = run.effective_state()
    if state == "finished":
        return state
    resumed = resume_run(run, detach=False)
    print(f"fold {i}: resuming from {resumed.from_checkpoint or 'step 0'}", flush=True)
    return run_worker(run, resume=True, prepared=resumed.prepared, echo=echo)


def _create_fold_run(run: RunDir, prof: Any) -> None:
    from tunedeck.core.profile import dumps

    run.path.mkdir(exist_ok=True)  # exists: a driver killed between mkdir and status.json
    atomic_write_text(run.profile_path, dumps(prof))
    run.write_status(state="starting", heartbeat=time.time(), created=time.time(), step=0,
                     name=prof.name, task=prof.task.type)


def main(argv: list[str] | None = None) -> int:
    return driver_main("cv", DRIVER_MODULE, run_cv, argv)


if __name__ == "__main__":
    sys.exit(main())
