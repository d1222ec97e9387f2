"""tunedeck's terminal UI (Textual). A viewer over run directories: it never trains and never
imports torch. Start it with ``tunedeck`` or ``python -m tui``; ``tunedeck.tui.app.main`` is the entry."""
