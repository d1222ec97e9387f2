"""The try-it box: type a text, see the run's model answer it (the label distribution of a
classifier, or the generation of an LM). The model runs in a ``tunedeck serve-predict`` helper
process (``tunedeck.tui.tryit``), loaded once when the screen opens and stopped when it closes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Input, Static

from tunedeck.core.errors import UserError
from tunedeck.tui.screens.base import BaseScreen
from tunedeck.tui.tryit import TryItClient

BAR_WIDTH = 30


def distribution_text(reply: dict[str, Any], width: int = BAR_WIDTH) -> Text:
    """A classifier's answer as one bar per label, most probable first."""
    t = Text()
    t.append(f"{reply['label']}", style="bold green")
    t.append(f"  ({reply['probability']:.1%})\n\n")
    probs = sorted(reply["probabilities"].items(), key=lambda kv: -kv[1])
    name_w = min(20, max(len(k) for k, _ in probs))
    for name, p in probs:
        filled = int(round(p * width))
        t.append(f"{name[:name_w]:<{name_w}} ")
        t.append("█" * filled, style="green" if name == reply["label"] else "blue")
        t.append("·" * (width - filled), style="dim")
        t.append(f" {p:6.1%}\n")
    return t


class TryItScreen(BaseScreen):
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, run_path: Path, client: TryItClient | None = None) -> None:
        super().__init__(id="try-it-screen")
        self.run_path = Path(run_path)
        self.client = client or TryItClient(self.run_path)
        self.loaded = False
        self.last_reply: dict[str, Any] | None = None
        self.asking = False

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        yield Static(id="try-status")
        yield Input(placeholder="type a text, then enter", id="try-input")
        yield Static(id="try-answer")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"try {self.run_path.name}"
        self._status(f"Loading the model of {self.run_path.name} in a helper process …", "yellow")
        self.query_one(Input).focus()
        self._start()
        self.ready = True

    def _status(self, msg: str, style: str = "") -> None:
        if not self.is_mounted:  # a helper thread answering after the screen closed
            return
        self.query_one("#try-status", Static).update(Text(msg, style=style))

    @work(thread=True, group="try-it", exit_on_error=False)
    def _start(self) -> None:
        try:
            ready = self.client.start()
        except UserError as e:
            self.app.call_from_thread(self._status, f"Cannot load the model: {e}", "red")
            return
        self.app.call_from_thread(self._started, ready)

    def _started(self, ready: dict[str, Any]) -> None:
        self.loaded = True
        what = "label distribution" if ready.get("task") == "classification" else "generation"
        self._status(f"{ready.get('run_id')} ({ready.get('task')}) is loaded: type a text and "
                     f"press enter to see its {what}.", "green")

    @on(Input.Submitted, "#try-input")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if not self.loaded:
            self.notify("The model is still loading.", severity="warning")
            return
        if self.asking:
            return
        self.asking = True
        self._status("Thinking …", "yellow")
        self._ask(text)

    @work(thread=True, group="try-it", exit_on_error=False)
    def _ask(self, text: str) -> None:
        try:
            reply = self.client.ask(text)
        except UserError as e:
            reply = {"error": str(e)}
        self.app.call_from_thread(self._answered, text, reply)

    def _answered(self, text: str, reply: dict[str, Any]) -> None:
        self.asking = False
        if not self.is_mounted:
            return
        self.last_reply = reply
        answer = self.query_one("#try-answer", Static)
        if "error" in reply:
            self._status(f"Error: {reply['error']}", "red")
            answer.update("")
            return
        self._status(f"Answer for: {text[:60]}", "green")
        if "probabilities" in reply:
            answer.update(distribution_text(reply))
        else:
            gen = reply.get("generation") or ""
            answer.update(Text(gen) if gen.strip() else
                          Text("(empty: the model ended its answer at once; it may need more "
                               "training)", style="dim"))

    def action_back(self) -> None:
        self.app.pop_screen()

    def on_unmount(self) -> None:
        self.client.stop()
