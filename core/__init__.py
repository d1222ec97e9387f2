"""tunedeck's UI-agnostic fine-tuning engine.

Importing ``core`` (and the torch-free modules ``tunedeck.core.profile``, ``tunedeck.core.runs.rundir``,
``tunedeck.core.runs.events``, ``tunedeck.core.errors``) never imports torch or textual: the TUI process
relies on that to start fast.
"""

__version__ = "0.1.0"
