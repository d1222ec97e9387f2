"""What every screen shares: access to the app's services, and errors shown, never raised."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from textual.screen import Screen

from tunedeck.core.errors import UserError

if TYPE_CHECKING:
    from tunedeck.tui.app import TunedeckApp
    from tunedeck.tui.services import Services


class BaseScreen(Screen[Any]):
    ready = False  # set when on_mount has run (tests and the benchmark wait for it)
    _polls: list[Any]

    def poll_every(self, seconds: float, callback: Callable[[], Any]) -> None:
        """A timer that runs only while this screen is on top.

        Textual repaints the screen under the top one whenever it handles a message (its
        timer), which would redraw the whole terminal every tick; and nobody sees it anyway.
        The screen catches up when it is shown again (``on_screen_resume``)."""
        if not hasattr(self, "_polls"):
            self._polls = []
        self._polls.append(self.set_interval(seconds, callback))

    def on_screen_suspend(self) -> None:
        for t in getattr(self, "_polls", []):
            t.pause()

    def on_screen_resume(self) -> None:
        for t in getattr(self, "_polls", []):
            t.resume()
        self.catch_up()

    def catch_up(self) -> None:
        """Bring the screen up to date after it was covered (subclasses)."""
    @property
    def tapp(self) -> "TunedeckApp":
        return self.app  # type: ignore[return-value]

    @property
    def services(self) -> "Services":
        return self.tapp.services

    @property
    def runs_dir(self) -> Path:
        return self.tapp.runs_dir

    def now(self) -> float:
        return self.services.clock()

    def show_error(self, message: str, title: str = "Error") -> None:
        self.tapp.show_error(message, title)

    def safely(self, fn: Callable[[], Any], what: str) -> Any:
        """Run ``fn``; a user error or a bug becomes a message in the app, not a traceback."""
        try:
            return fn()
        except UserError as e:
            self.show_error(str(e), what)
        except OSError as e:
            self.show_error(f"{e.strerror or e}: {e.filename or ''}".strip(": "), what)
        except Exception as e:  # a bug: say so, keep the app alive
            self.tapp.log_bug(e, traceback.format_exc())
            self.show_error(f"{type(e).__name__}: {e}\n(this is a bug in tunedeck)", what)
        return None
