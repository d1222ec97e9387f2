"""A distributed run's ranks other than 0: the same TrainingRun, writing nothing into the run
directory (rank 0 writes events, status, checkpoints and model/). How the rank ended goes to
its ``rank-K.exit`` file for the supervisor (runs/distributed_launch.py), which names the rank
in the run's end state when it is the one that failed."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

from tunedeck.core.engine import distributed as D
from tunedeck.core.engine.state import StopRequested
from tunedeck.core.errors import UserError
from tunedeck.core.runs.events import EventWriter
from tunedeck.core.runs.rundir import RunDir


def run_other_rank(run: RunDir, resume: bool, flag: Any) -> str:
    """Train as rank K > 0; returns the end state, recorded in ``rank-K.exit``."""
    from tunedeck.core.runs.training_run import TrainingRun

    events = EventWriter(Path(os.devnull))
    state, message = "failed", ""
    try:
        state, message = TrainingRun(run, resume, None, events, lambda **kw: None,
                                     flag).execute()
    except UserError as e:
        message = str(e)
    except (StopRequested, KeyboardInterrupt):
        state, message = "stopped", "stopped before training started"
    except BaseException as e:  # noqa: BLE001 - the supervisor reports it with the rank
        message = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
    finally:
        events.close()
    D.record_exit(state, message)
    return state
