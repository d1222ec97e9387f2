"""The ``tunedeck`` console script: no command, ``attach RUN`` or ``browse PATH`` open the TUI;
every other command is the headless CLI (``tunedeck.core.cli``). Parsing is torch-free, so the TUI starts
fast and core/ never has to import the UI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from tunedeck.core.cli import DEFAULT_RUNS_DIR, build_parser, dispatch

    args = build_parser().parse_args(argv)
    if getattr(args, "cmd", None) in (None, "attach", "browse"):
        from tunedeck.tui.app import main as tui_main

        return tui_main(runs_dir=str(args.runs_dir or DEFAULT_RUNS_DIR),
                        attach=getattr(args, "run", None), browse=getattr(args, "path", None))
    return dispatch(args)


if __name__ == "__main__":
    sys.exit(main())
