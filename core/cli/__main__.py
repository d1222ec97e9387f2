"""``python -m tunedeck.core.cli``: the headless CLI (the console script is tunedeck.tui.entry)."""

import sys

from tunedeck.core.cli import main

if __name__ == "__main__":  # a package walk imports this module too
    sys.exit(main())
