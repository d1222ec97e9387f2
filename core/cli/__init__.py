"""The headless CLI: ``tunedeck COMMAND ...`` (``python -m tunedeck.core.cli``).

``tunedeck`` with no command, ``attach`` and ``browse`` open the TUI: the console script is
``tunedeck.tui.entry:main``, which parses with this package's parser and hands everything else to
``dispatch``. core/ itself never imports the UI.

The CLI parses and prints only: what a command does lives in core (runs.lifecycle for starting,
resuming and stopping). parser.py holds the arguments and help texts; run_commands.py and
tool_commands.py print. Every user error is one message on stderr and exit code 2. Heavy imports
(torch, transformers) happen only inside the commands that need them, so ``tunedeck`` (the TUI)
and ``tunedeck runs`` start fast.
"""

from __future__ import annotations

import argparse
import json
import sys

from tunedeck.core.cli.common import DEFAULT_RUNS_DIR
from tunedeck.core.cli.parser import build_parser
from tunedeck.core.errors import UserError

__all__ = ["DEFAULT_RUNS_DIR", "build_parser", "dispatch", "main"]


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser().parse_args(argv))


def dispatch(args: argparse.Namespace) -> int:
    """Run a parsed headless command; user errors become one message and exit code 2 (as one
    JSON object on stdout for ``start/resume --json``)."""
    fn = getattr(args, "fn", None)
    if fn is None:
        print("tunedeck: the TUI (no command, attach, browse) starts from the `tunedeck` "
              "command, not `python -m tunedeck.core.cli`", file=sys.stderr)
        return 2
    try:
        return fn(args) or 0
    except UserError as e:
        code = getattr(e, "exit_code", 2)
        if getattr(args, "json_errors", False) and getattr(args, "json", False):
            kind = "user" if code == 2 else "worker"
            print(json.dumps({"error": str(e), "kind": kind}), flush=True)
        else:
            print(f"tunedeck: {e}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tunedeck logs RUN | head`
        sys.stderr.close()
        return 0
