"""The tunedeck Textual app: a stateless viewer over run directories and profile files.

It never trains in its own process and never imports torch (``tests/tui`` checks both): runs
are started and resumed by ``python -m tunedeck.core.cli start/resume --json`` subprocesses (they
check data and models, which needs torch), watched through their run directories, and stopped
and deleted by ``tunedeck.core.runs.lifecycle`` (torch-free, in process). Quitting never touches
a run.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tunedeck.core.errors import UserError
from tunedeck.tui.screens.dialogs import MessageDialog
from tunedeck.tui.services import Services

START_SCREENS = ("runs", "dashboard", "datasets", "editor", "environment")


class TunedeckApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "tunedeck"
    BINDINGS = [
        Binding("f2", "environment", "Env", priority=True),
        Binding("ctrl+q", "quit", "Quit", priority=True, show=False),
        # On the dashboard (whose own "e" evaluates now): E opens error analysis, t the try-it box.
        Binding("E", "errors", "Errors", show=False),
        Binding("t", "try_it", "Try it", show=False),
    ]

    def __init__(self, runs_dir: Path | str = "runs", start_screen: str = "runs", *,
                 attach: str | None = None, browse: str | Path | None = None,
                 profile: str | Path | None = None, services: Services | None = None):
        super().__init__()
        self.runs_dir = Path(runs_dir).expanduser()
        self.services = services or Services()
        self.start_screen = start_screen
        self.attach_ref = attach
        self.browse_path = Path(browse).expanduser() if browse else None
        self.profile_path = Path(profile).expanduser() if profile else None
        self._scratch: Path | None = None
        self._profile_hint: dict[str, Any] | None = None
        self.first_paint_s: float | None = None
        self.bug_log = Path(tempfile.gettempdir()) / "tunedeck-tui-errors.log"

    # --- start-up --------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        # The runs screen is the bottom of the stack: every other screen returns to it.
        from tunedeck.tui.screens.runs import RunsScreen

        return RunsScreen()

    def on_mount(self) -> None:
        want = self.start_screen
        if self.attach_ref:
            want = "dashboard"
        elif self.browse_path:
            want = "datasets"
        elif self.profile_path and want == "runs":
            want = "editor"
        if want == "dashboard":
            self._attach(self.attach_ref)
        elif want == "datasets":
            self.open_dataset(self.browse_path)
        elif want == "editor":
            self.open_editor(path=self.profile_path)
        elif want == "environment":
            self.action_environment()
        self.call_after_refresh(self._painted)

    def _painted(self) -> None:
        self.first_paint_s = time.perf_counter()
        self._warm_up()

    @work(thread=True, group="warm-up", exit_on_error=False)
    def _warm_up(self) -> None:
        """Import the data and profile libraries once the first screen is up, so that opening
        the dataset browser or the editor later does not wait for them."""
        import tunedeck.core.data.batches  # noqa: F401  (the data layer, pyarrow.csv/parquet)
        import tunedeck.core.data.table_stats  # noqa: F401  (pyarrow.compute)
        import tunedeck.core.profile.io  # noqa: F401

    def _attach(self, ref: str | None) -> None:
        from tunedeck.core.runs.rundir import find_run

        if not ref:
            return
        try:
            run = find_run(self.runs_dir, ref)
        except UserError as e:
            self.show_error(str(e), "Attach")
            return
        self.open_dashboard(run.path)

    # --- navigation ------------------------------------------------------------------------

    def open_dashboard(self, run_path: Path) -> None:
        from tunedeck.tui.screens.dashboard import DashboardScreen

        top = self.screen
        if isinstance(top, DashboardScreen) and top.run.path == Path(run_path):
            return
        self.push_screen(DashboardScreen(Path(run_path)))

    def open_compare(self, run_paths: list[Path]) -> None:
        from tunedeck.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(run_paths))

    def open_study(self, group_path: Path) -> None:
        from tunedeck.tui.screens.study import StudyScreen

        self.push_screen(StudyScreen(Path(group_path)))

    def open_editor(self, path: Path | None = None, text: str | None = None,
                    suggested: str | None = None) -> None:
        from tunedeck.tui.screens.editor import EditorScreen

        self.push_screen(EditorScreen(path=path, text=text, suggested=suggested))

    def open_dataset(self, path: Path | None) -> None:
        from tunedeck.tui.screens.datasets import DatasetsScreen

        self.push_screen(DatasetsScreen(path))

    def open_errors(self, run_path: Path) -> None:
        from tunedeck.tui.screens.errors import ErrorsScreen

        self.push_screen(ErrorsScreen(Path(run_path)))

    def open_try_it(self, run_path: Path) -> None:
        from tunedeck.tui.screens.try_it import TryItScreen

        self.push_screen(TryItScreen(Path(run_path)))

    def _dashboard_run(self) -> Path | None:
        """The run of the dashboard on top, if that is what is shown."""
        from tunedeck.tui.screens.dashboard import DashboardScreen

        return self.screen.run.path if isinstance(self.screen, DashboardScreen) else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("errors", "try_it"):
            return self._dashboard_run() is not None
        return True

    def action_errors(self) -> None:
        path = self._dashboard_run()
        if path is not None:
            self.open_errors(path)

    def action_try_it(self) -> None:
        path = self._dashboard_run()
        if path is not None:
            self.open_try_it(path)

    def action_environment(self) -> None:
        from tunedeck.tui.screens.environment import EnvironmentScreen

        if isinstance(self.screen, EnvironmentScreen):
            return
        if self.screen.is_modal:
            return
        self.push_screen(EnvironmentScreen())

    async def action_quit(self) -> None:
        """Quit (runs keep going). Unsaved profile edits are the one thing quitting can lose: ask."""
        from tunedeck.tui.screens.dialogs import ConfirmDialog
        from tunedeck.tui.screens.editor import EditorScreen

        dirty = [s for s in self.screen_stack if isinstance(s, EditorScreen) and s.dirty()]
        if not dirty:
            self.exit()
            return
        names = ", ".join(str(s.path.name) if s.path else "a new profile" for s in dirty)

        def done(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(ConfirmDialog(f"Quit and discard unsaved changes to {names}?",
                                       "Runs keep going either way; only the edits are lost.",
                                       yes="Quit", danger=True), done)

    def go_back(self) -> None:
        from tunedeck.tui.screens.runs import RunsScreen

        if isinstance(self.screen, RunsScreen):
            return
        if len(self.screen_stack) > 1:
            self.pop_screen()

    # --- runs: start / resume (`tunedeck ... --json` subprocesses, in threads) ------------

    def launch(self, profile: Path) -> None:
        self.notify(f"Launching a run from {profile} …")
        self._launch_worker(Path(profile))

    @work(thread=True, group="cli", exit_on_error=False)
    def _launch_worker(self, profile: Path) -> None:
        try:
            run_path = self.services.start_run(profile, self.runs_dir)
        except UserError as e:
            self.call_from_thread(self.show_error, str(e), "Launch")
            return
        except Exception as e:
            self.call_from_thread(self._bug, e, traceback.format_exc(), "Launch")
            return
        self.call_from_thread(self._launched, run_path)

    def _launched(self, run_path: Path) -> None:
        self.notify(f"Started {Path(run_path).name}.")
        self.open_dashboard(Path(run_path))

    def resume_run(self, run_id: str, run_path: Path, open_dashboard: bool = True) -> None:
        self._resume_worker(run_id, Path(run_path), open_dashboard)

    @work(thread=True, group="cli", exit_on_error=False)
    def _resume_worker(self, run_id: str, run_path: Path, open_dashboard: bool) -> None:
        runs_dir = run_path.parent
        try:
            path = self.services.resume_run(run_id, runs_dir)
        except UserError as e:
            self.call_from_thread(self.show_error, str(e), "Resume")
            return
        except Exception as e:
            self.call_from_thread(self._bug, e, traceback.format_exc(), "Resume")
            return
        self.call_from_thread(self._resumed, path or run_path, open_dashboard)

    def _resumed(self, path: Path, open_dashboard: bool) -> None:
        self.notify(f"Resumed {Path(path).name}.")
        if open_dashboard:
            self.open_dashboard(Path(path))

    # --- errors ----------------------------------------------------------------------------

    def show_error(self, message: str, title: str = "Error") -> None:
        self.push_screen(MessageDialog(title, message))

    def log_bug(self, e: BaseException, tb: str) -> None:
        try:
            with open(self.bug_log, "a", encoding="utf-8") as f:
                f.write(f"--- {time.ctime()}\n{tb}\n")
        except OSError:
            pass

    def _bug(self, e: BaseException, tb: str, title: str) -> None:
        self.log_bug(e, tb)
        self.show_error(f"{type(e).__name__}: {e}\n(a bug in tunedeck; details in {self.bug_log})", title)

    # --- shared state ----------------------------------------------------------------------

    def scratch_dir(self) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="tunedeck-browse-"))
        return self._scratch

    def on_unmount(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def set_profile_hint(self, profile: Any) -> None:
        """Remember what the dataset screen takes from the profile in use: its column names,
        split fractions and ``data.encoding`` (a Latin-1 file opens the way training reads it)."""
        d = profile.data
        self._profile_hint = {"text_column": d.text_column, "label_column": d.label_column,
                              "split": list(d.split) if not (d.validation and d.test) else None,
                              "encoding": d.encoding}

    def profile_columns(self) -> dict[str, Any]:
        """Column names, split fractions and encoding from the profile in use (for the dataset
        screen)."""
        if self._profile_hint is None and self.profile_path is not None:
            try:
                from tunedeck.core.profile.io import load

                self.set_profile_hint(load(self.profile_path))
            except UserError:
                self._profile_hint = {}
        return self._profile_hint or {}

    # --- command palette -------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Environment", "tunedeck doctor: Python, torch, CUDA, GPUs, disk (F2)",
                            self.action_environment)
        yield SystemCommand("Runs", "Back to the list of runs", self._to_runs)
        yield SystemCommand("New profile", "Write a new training profile in the editor", self.open_editor)
        seen = set()
        for key, active in screen.active_bindings.items():
            b = active.binding
            # The screen's own keys (those in the footer), not every editing key of a widget.
            if not isinstance(active.node, Screen) or not b.show:
                continue
            if not b.description or not active.enabled or b.action in seen or b.action.startswith("app."):
                continue
            if b.action in ("environment", "quit", "command_palette"):
                continue
            seen.add(b.action)
            shown_key = b.key_display or key
            yield SystemCommand(b.description, f"{b.tooltip} ({shown_key})" if b.tooltip else f"key: {shown_key}",
                                partial(active.node.run_action, b.action))

    def _to_runs(self) -> None:
        from tunedeck.tui.screens.runs import RunsScreen

        while len(self.screen_stack) > 1 and not isinstance(self.screen, RunsScreen):
            self.pop_screen()


def main(runs_dir: str = "runs", attach: str | None = None, browse: str | None = None,
         profile: str | None = None, services: Services | None = None) -> int:
    """Run the TUI until the user quits; never stops or touches a run. Returns an exit code."""
    problem = _cannot_open(Path(runs_dir), attach, browse)
    if problem:
        print(f"tunedeck: {problem}", file=sys.stderr)
        return 2
    app = TunedeckApp(Path(runs_dir), attach=attach, browse=browse, profile=profile, services=services)
    app.run()
    code = app.return_code
    return int(code or 0)


def _cannot_open(runs_dir: Path, attach: str | None, browse: str | None) -> str | None:
    """What makes opening the app pointless, said at the shell (exit 2) instead of in the app."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return ("the TUI needs a terminal (stdin and stdout are not one here); over SSH use "
                "'ssh -t', and from scripts use the CLI: tunedeck runs, logs, stop, resume")
    if attach:
        from tunedeck.core.errors import RunError
        from tunedeck.core.runs.rundir import find_run

        try:
            find_run(runs_dir, attach)
        except RunError as e:
            return str(e)
    if browse and not Path(browse).exists():
        return f"browse: no such file or directory: {browse}"
    return None


def run(options: Any) -> int:
    """Entry point for the CLI: ``options`` is an argparse Namespace or a dict with runs_dir,
    attach, browse, profile (missing ones default)."""
    def get(name: str, default: Any = None) -> Any:
        if isinstance(options, dict):
            return options.get(name, default)
        return getattr(options, name, default)

    command = get("command") or get("cmd")
    attach = get("attach") or (get("run") if command == "attach" else None)
    browse = get("browse") or (get("path") if command == "browse" else None)
    profile = get("profile") if command in (None, "", "tui", "edit") else None
    return main(runs_dir=get("runs_dir") or "runs", attach=attach, browse=browse, profile=profile)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
