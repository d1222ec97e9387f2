"""``python -m tui [--runs-dir DIR] [attach RUN | browse PATH | edit PROFILE]``."""

from __future__ import annotations

import argparse
import sys


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tui", description="The tunedeck terminal app.")
    p.add_argument("--runs-dir", default="runs", help="where run directories are (default: runs)")
    sub = p.add_subparsers(dest="command")
    a = sub.add_parser("attach", help="open the dashboard of a run (id, id prefix or path)")
    a.add_argument("run")
    b = sub.add_parser("browse", help="open a data file or save_to_disk folder in the browser")
    b.add_argument("path")
    e = sub.add_parser("edit", help="open a profile in the editor")
    e.add_argument("profile")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    ns = parse(argv)
    from tunedeck.tui.app import main as app_main

    return app_main(runs_dir=ns.runs_dir, attach=getattr(ns, "run", None),
                    browse=getattr(ns, "path", None), profile=getattr(ns, "profile", None))


if __name__ == "__main__":
    sys.exit(main())
