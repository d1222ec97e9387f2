"""A one-line text widget that repaints only itself when its text changes."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class TextLine(Widget):
    """A fixed-height line of text. Unlike Static.update, changing it repaints only itself (no
    layout pass over the screen): the dashboard changes these lines on every redraw."""

    DEFAULT_CSS = "TextLine { height: 1; }"

    def __init__(self, id: str | None = None):
        super().__init__(id=id)
        self._text = Text()

    def set(self, text: Text) -> None:
        if text != self._text:
            self._text = text
            self.refresh()

    def render(self) -> Text:
        return self._text
