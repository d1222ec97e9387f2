"""The home screen: every run under the runs directory, live."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Header, Static

from tunedeck.core.runs.drivers.base import GroupDir, is_group_dir, stop_group
from tunedeck.core.runs.listing import RunSummary, is_run_dir, summarize, summarize_group
from tunedeck.core.runs.protocol import ACTIVE_STATES, FINAL_STATES, can_resume
from tunedeck.core.runs.rundir import RunDir
from tunedeck.tui import fmt
from tunedeck.tui.screens.base import BaseScreen
from tunedeck.tui.screens.dialogs import ConfirmDialog, PromptDialog


@dataclass
class RunRow:
    summary: RunSummary
    stale: bool  # status.json says running, but the worker is gone or hung
    children: list["RunRow"] = field(default_factory=list)  # a group's runs (k-fold folds)
    parent: str | None = None  # a group's run: the group's path

    @property
    def shown_state(self) -> str:
        return "stale" if self.stale else self.summary.state

    @property
    def is_group(self) -> bool:
        return self.summary.kind != "run"


def group_row(group: GroupDir, now: float) -> RunRow:
    """A group (k-fold) as one row, its runs as children (shown when it is expanded)."""
    raw = group.read_status().get("state")
    s = summarize_group(group, now)
    children = []
    for m in s.members:
        m_raw = RunDir(Path(m.path)).read_status().get("state")
        children.append(RunRow(m, m_raw in ACTIVE_STATES and m.state not in ACTIVE_STATES,
                               parent=s.path))
    return RunRow(s, raw in ACTIVE_STATES and s.state not in ACTIVE_STATES, children)


def scan_runs(runs_dir: Path, now: float) -> list[RunRow]:
    """Like tunedeck.core.runs.listing.list_runs, with an injectable clock, the stale flag, and
    a row (not an exception) for a damaged run."""
    if not runs_dir.is_dir():
        return []
    rows = []
    try:
        entries = list(runs_dir.iterdir())
    except OSError:
        return []
    for d in entries:
        try:
            if is_group_dir(d):
                rows.append(group_row(GroupDir(d), now))
                continue
            if not is_run_dir(d):
                continue
            run = RunDir(d)
            raw = run.read_status().get("state")
        except OSError:
            continue
        try:
            s = summarize(run, now)
        except Exception as e:  # a damaged status.json must not take the list down
            s = RunSummary(id=run.id, path=str(run.path), name=run.id, task="?", state="failed",
                           reason=f"status.json unreadable ({type(e).__name__}: {e})", step=0,
                           total_steps=0, epoch=0.0, best_metric=None, best_value=None,
                           started=None, duration=None)
            raw = None
        rows.append(RunRow(s, raw in ACTIVE_STATES and s.state not in ACTIVE_STATES))
    rows.sort(key=lambda r: (r.summary.started or 0, r.summary.id), reverse=True)
    return rows


def state_text(state: str) -> Text:
    return Text(f"{fmt.STATE_ICON.get(state, '?')} {state}", style=fmt.STATE_STYLE.get(state, ""))


def group_unit(s: Any) -> str:
    return "trials" if s.kind == "search" else "folds"


def group_detail(r: RunRow, width: int) -> Text:
    """Two lines for a k-fold group: state and folds, then each metric's mean ± std (sample,
    ddof=1) over the finished folds, with the main metric's per-fold values."""
    s = r.summary
    summary = GroupDir(Path(s.path)).summary()
    t = Text()
    t.append(s.id, style="bold")
    t.append(f"  {s.kind} · {s.step}/{s.total_steps} {group_unit(s)} done · ", style="dim")
    t.append("stale" if r.stale else s.state, style=fmt.STATE_STYLE.get(s.state, ""))
    if s.reason:
        t.append(f": {s.reason}", style="red" if s.state == "failed" else "")
    t.append("\n")
    if s.kind == "search":
        best = (f"best {fmt.METRIC_SHORT.get(s.best_metric, s.best_metric)} "
                f"{fmt.num(s.best_value)}  " if s.best_value is not None else "no trial done yet  ")
        t.append(best)
        t.append(f"'tunedeck search show {s.id}' lists the trials; → or enter shows them",
                 style="dim")
        return t
    metrics = summary.get("metrics") or {}
    main = summary.get("main_metric")
    shown = [k for k in (main, "f1_macro", "eval_loss", "perplexity") if k in metrics]
    for k in dict.fromkeys(shown):
        e = metrics[k]
        std = "" if e.get("std") is None else f" ± {fmt.num(e['std'])}"
        t.append(f"{fmt.METRIC_SHORT.get(k, k)} {fmt.num(e['mean'])}{std}  ")
    if main in metrics:
        values = " ".join("–" if v is None else fmt.num(v) for v in metrics[main]["values"])
        t.append(f"(folds: {values})", style="dim")
    if not metrics:
        t.append("no fold finished yet; → or enter shows the folds", style="dim")
    return t


class RunsScreen(BaseScreen):
    BINDINGS = [
        Binding("enter", "open", "Open", priority=True, tooltip="Open the dashboard of the selected run"),
        Binding("n", "new_run", "New", tooltip="Start a run from a profile file (detached; survives quitting)"),
        Binding("r", "resume", "Resume", tooltip="Resume the selected stopped/failed run from its newest checkpoint"),
        Binding("s", "stop", "Stop", tooltip="Ask the selected run to checkpoint and stop (asks first)"),
        Binding("space", "toggle_mark", "Mark", key_display="␣", show=False, tooltip="Mark or unmark the selected run for comparing"),
        # c compares once two runs are marked, and clones otherwise (the first enabled binding wins).
        Binding("c", "compare", "Compare", tooltip="Compare the marked runs: profiles, metrics, curves"),
        Binding("c", "clone", "Clone", tooltip="Copy the selected run's profile into the editor"),
        Binding("d", "delete", "Delete", tooltip="Delete the selected finished/stopped/failed run (asks first)"),
        Binding("p", "edit_profile", "Edit", tooltip="Open or write a training profile"),
        Binding("b", "browse", "Data", tooltip="Browse a dataset file or folder"),
        Binding("e", "errors", "Errors", tooltip="Error analysis of the selected run's saved evaluations"),
        Binding("t", "try_it", "Try", show=False, tooltip="Type a text and see the selected run's model answer it"),
        Binding("q", "app.quit", "Quit", tooltip="Leave tunedeck; runs keep going"),
        Binding("o", "open_study", "Study", show=False, tooltip="Open the selected search study: trials, curves, best profile"),
        Binding("right", "expand", "Expand", show=False, priority=True),
        Binding("left", "collapse", "Collapse", show=False, priority=True),
        Binding("home", "first_run", "First", show=False, priority=True),
        Binding("end", "last_run", "Last", show=False, priority=True),
    ]

    def __init__(self) -> None:
        super().__init__(id="runs-screen")
        self.rows: list[RunRow] = []  # as shown: expanded groups followed by their runs
        self.expanded: set[str] = set()  # paths of the groups shown open
        self._shown: list[tuple[Any, ...]] = []
        self._shown_ids: list[str] = []
        self._wide: bool | None = None
        self._empty_shown = False
        self._detail_key: tuple[Any, ...] | None = None
        self.marked: list[str] = []  # run ids marked for comparing, in the order marked

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        yield Static(id="runs-empty")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="run-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"runs in {self.runs_dir}"
        self.refresh_runs_now()
        self.poll_every(self.services.runs_poll_s, self.poll_runs)
        self.query_one(DataTable).focus()
        self.ready = True

    def catch_up(self) -> None:
        if self.ready:
            self.refresh_runs_now()

    # --- data ------------------------------------------------------------------------------

    def refresh_runs_now(self) -> None:
        self.apply_rows(scan_runs(self.runs_dir, self.now()))

    @work(thread=True, exclusive=True, group="runs-scan", exit_on_error=False)
    def poll_runs(self) -> None:
        rows = scan_runs(self.runs_dir, self.now())
        self.app.call_from_thread(self.apply_rows, rows)

    def _row_cells(self, r: RunRow, wide: bool) -> tuple[Any, ...]:
        s = r.summary
        step = f"{s.step:,}/{s.total_steps:,}" if s.total_steps else (f"{s.step:,}" if s.step else "–")
        name = self._id_cell(s.id)
        if r.is_group:
            step = f"{s.step}/{s.total_steps} {group_unit(s)}"
            name = Text(("▾ " if s.path in self.expanded else "▸ ") + s.id, style="bold")
        elif r.parent is not None:
            name = Text("   ") + self._id_cell(s.id)
        cells: list[Any] = [name, state_text(r.shown_state)]
        if wide:
            cells.append(fmt.task_short(s.task))
        cells.append(Text(step, justify="right"))
        if wide:
            cells.append(Text(f"{s.epoch:.2f}" if s.epoch else "–", justify="right"))
        best = fmt.best(s.best_metric, s.best_value)
        if r.is_group and s.best_value is not None and s.extra.get("std") is not None:
            best += f"±{s.extra['std']:.3f}"  # 3 decimals: the row must fit 80 columns
        cells.append(best)
        if wide:
            cells.append(fmt.when(s.started))
        cells.append(Text(fmt.duration(s.duration), justify="right"))
        return tuple(cells)

    def _columns(self, wide: bool) -> list[str]:
        if wide:
            return ["Run", "State", "Task", "Step", "Epoch", "Best", "Started", "Time"]
        return ["Run", "State", "Step", "Best", "Time"]

    def shown_rows(self, rows: list[RunRow]) -> list[RunRow]:
        """Runs and groups, each expanded group followed by its runs."""
        out = []
        for r in rows:
            if r.parent is not None:
                continue  # re-added under its group (``rows`` may be the shown list)
            out.append(r)
            if r.is_group and r.summary.path in self.expanded:
                out.extend(r.children)
        return out

    def apply_rows(self, rows: list[RunRow]) -> None:
        if not self.is_mounted:
            return
        rows = self.shown_rows(rows)
        table = self.query_one(DataTable)
        wide = self.size.width >= 110
        current = self.selected()
        cur_id = current.summary.path if current else None  # fold-1 is in every group: path
        self.rows = rows
        cells = [self._row_cells(r, wide) for r in rows]
        key = [tuple(str(c) for c in row) for row in cells]
        ids = [r.summary.path for r in rows]
        if wide != self._wide:
            self._wide = wide
            table.clear(columns=True)
            table.add_columns(*self._columns(wide))
            self._shown, self._shown_ids = [], []
        if key != self._shown:
            if ids == self._shown_ids:
                # Same runs in the same order: touch only the cells that changed (a running
                # run's step and time change every second; rebuilding the table would flicker).
                for i, (old, new, row) in enumerate(zip(self._shown, key, cells)):
                    for j, (a, b) in enumerate(zip(old, new)):
                        if a != b:
                            table.update_cell_at(Coordinate(i, j), row[j], update_width=True)
            else:
                table.clear()
                for r, row in zip(rows, cells):
                    table.add_row(*row, key=r.summary.path)
                if cur_id in ids:
                    table.move_cursor(row=ids.index(cur_id), animate=False)
            self._shown, self._shown_ids = key, ids
        empty = self.query_one("#runs-empty", Static)
        if rows:
            empty.display = False
        elif not empty.display or not self._empty_shown:
            self._empty_shown = True
            empty.display = True
            empty.update(Text.assemble(
                ("No runs yet", "bold"), f" in {self.runs_dir}",
                ("" if self.runs_dir.is_dir() else
                 ("\n(no such directory: a first run creates it; a typo? "
                  "--runs-dir or $TUNEDECK_RUNS_DIR picks another)", "yellow")),
                "\n\n",
                ("n", "bold"), "  start a run from a profile file\n",
                ("p", "bold"), "  write or edit a profile\n",
                ("b", "bold"), "  browse a dataset\n",
                ("F2", "bold"), " check the environment (GPU, torch, disk)\n",
            ))
        self.update_detail()

    def on_resize(self) -> None:
        if self._wide is not None and (self.size.width >= 110) != self._wide:
            self.apply_rows(self.rows)

    def selected(self) -> RunRow | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None or table.row_count == 0:
            return None
        i = table.cursor_row
        return self.rows[i] if 0 <= i < len(self.rows) else None

    @on(DataTable.RowHighlighted)
    def update_detail(self) -> None:
        detail = self.query_one("#run-detail", Static)
        r = self.selected()
        key = None if r is None else (r.summary, r.stale)
        if key == self._detail_key:
            return
        bkey = None if r is None else (r.summary.id, r.summary.state, r.stale)
        if self._detail_key is None or bkey != (self._detail_key[0].id, self._detail_key[0].state,
                                                self._detail_key[1]):
            self.refresh_bindings()  # which keys apply depends on the selected run's state
        self._detail_key = key
        if r is None:
            detail.update("")
            return
        if r.is_group:
            detail.update(group_detail(r, self.size.width))
            return
        s = r.summary
        t = Text()
        t.append(s.id, style="bold")
        # Two lines of room: the path only when it fits on the first (the status line matters more).
        head = f"  {s.task} · {s.path}"
        fits = len(s.id) + len(head) <= max(0, self.size.width - 2)
        t.append((head if fits else f"  {s.task}") + "\n", style="dim")
        if r.stale:
            t.append("STALE: ", style="bold red")
            t.append(f"{s.reason}. Press r to resume from the newest checkpoint.", style="red")
        elif s.state in ("failed", "diverged"):
            t.append(f"{s.state}: ", style="bold red")
            t.append(s.reason or "see worker.log (open the dashboard, press w)", style="red")
        elif s.state in ACTIVE_STATES:
            eta = s.extra.get("eta_s")
            t.append(f"{s.state}", style="green")
            if eta is not None:
                t.append(f" · ETA {fmt.duration(eta)}")
            if "loss" in s.extra:
                t.append(f" · loss {fmt.num(s.extra['loss'])}")
        else:
            t.append(s.state, style=fmt.STATE_STYLE.get(s.state, ""))
            if s.reason:
                t.append(f": {s.reason}")
        detail.update(t)

    # --- actions ---------------------------------------------------------------------------

    def action_first_run(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            table.move_cursor(row=0)

    def action_last_run(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            table.move_cursor(row=table.row_count - 1)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        r = self.selected() if self.is_mounted else None
        # A key that cannot apply to the selected run is hidden (not a dead key in the footer).
        if r is not None and r.is_group and action in ("clone", "delete", "toggle_mark",
                                                       "errors", "try_it"):
            return False  # a group is not a run: these apply to its folds (expand it)
        if action == "compare":
            return len(self.marked) >= 2
        if action == "clone":
            return r is not None and len(self.marked) < 2
        if action in ("open", "toggle_mark", "errors", "try_it"):
            return r is not None
        if action == "stop":
            return r is not None and r.summary.state in ACTIVE_STATES
        if action == "resume":
            return r is not None and can_resume(r.summary.state)
        if action == "delete":
            return r is not None and r.summary.state in FINAL_STATES
        return True

    def _id_cell(self, run_id: str) -> Text:
        if run_id not in self.marked:
            return Text(run_id)
        from tunedeck.tui.screens.compare import run_letter

        # The letter the compare screen gives this run (A, B, ... in the order marked).
        return Text.assemble((f"{run_letter(self.marked.index(run_id))} ", "bold reverse"), run_id)

    def action_toggle_mark(self) -> None:
        r = self.selected()
        if r is None:
            return
        rid = r.summary.id
        if rid in self.marked:
            self.marked.remove(rid)
        else:
            self.marked.append(rid)
        self.apply_rows(self.rows)
        self.refresh_bindings()
        table = self.query_one(DataTable)
        if table.cursor_row is not None and table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)  # mark the next one with the next space

    def action_compare(self) -> None:
        # Folds of a collapsed group are not among the shown rows but stay marked.
        paths = {x.summary.id: Path(x.summary.path)
                 for r in self.rows for x in (r, *getattr(r, "children", ()))}
        self.marked = [m for m in self.marked if m in paths]  # deleted meanwhile
        if len(self.marked) < 2:
            self.notify("Mark two or more runs with space first.", severity="warning")
            return
        self.tapp.open_compare([paths[m] for m in self.marked])

    def action_errors(self) -> None:
        r = self.selected()
        if r is not None:
            self.tapp.open_errors(Path(r.summary.path))

    def action_try_it(self) -> None:
        r = self.selected()
        if r is not None:
            self.tapp.open_try_it(Path(r.summary.path))

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        r = self.selected()
        if r is not None and r.summary.kind == "search":
            self.action_open_study()  # right/left expand a study to its trials
        elif r is not None and r.is_group:
            self._set_expanded(r, r.summary.path not in self.expanded)
        elif r is not None:
            self.tapp.open_dashboard(Path(r.summary.path))

    def action_open_study(self) -> None:
        r = self.selected()
        if r is not None and r.summary.kind != "search" and r.parent is not None:
            r = next((g for g in self.rows if g.summary.path == r.parent), None)  # a trial
        if r is not None and r.summary.kind == "search":
            self.tapp.open_study(Path(r.summary.path))

    def action_expand(self) -> None:
        r = self.selected()
        if r is not None and r.is_group:
            self._set_expanded(r, True)

    def action_collapse(self) -> None:
        r = self.selected()
        group = r if r is not None and r.is_group else next(
            (g for g in self.rows if r is not None and g.summary.path == r.parent), None)
        if group is not None:
            self._set_expanded(group, False)

    def _set_expanded(self, group: RunRow, on: bool) -> None:
        path = group.summary.path
        (self.expanded.add if on else self.expanded.discard)(path)
        self.apply_rows(self.rows)
        table = self.query_one(DataTable)
        at = [r.summary.path for r in self.rows].index(path)
        table.move_cursor(row=at, animate=False)  # collapsing from a fold lands on its group

    def action_stop(self) -> None:
        r = self.selected()
        if r is None or r.summary.state not in ACTIVE_STATES:
            self.notify("That run is not running.", severity="warning")
            return
        if r.is_group:
            self._stop_group(GroupDir(Path(r.summary.path)))
            return
        run = RunDir(Path(r.summary.path))

        def done(yes: bool | None) -> None:
            # The same stop as `tunedeck stop`: a control file and SIGTERM, so the worker sees it
            # in every phase (data preparation and model load included), not only between steps.
            if yes and self.safely(lambda: self.services.stop_run(run), "Stop run") is not None:
                self.notify(f"Asked {run.id} to save a checkpoint and stop.")

        self.app.push_screen(ConfirmDialog(
            f"Stop {run.id}?",
            "The worker saves a checkpoint and exits; resume it later with r.",
            yes="Stop", danger=True), done)

    def action_resume(self) -> None:
        r = self.selected()
        if r is None:
            return
        if r.summary.state in ACTIVE_STATES:
            self.notify("That run is still running.", severity="warning")
            return
        self.notify(f"Resuming {r.summary.id} …")
        # A group resumes through `tunedeck resume GROUP` (= cv --resume): its list, not a dashboard.
        self.tapp.resume_run(r.summary.id, Path(r.summary.path), open_dashboard=not r.is_group)

    def _stop_group(self, group: GroupDir) -> None:
        def done(yes: bool | None) -> None:
            # As `tunedeck stop GROUP`: the driver starts no further fold, the current one
            # checkpoints and stops.
            if yes and self.safely(lambda: stop_group(group), "Stop group") is not None:
                self.notify(f"Asked {group.id} to checkpoint its fold and stop.")

        self.app.push_screen(ConfirmDialog(
            f"Stop {group.id}?", "The current fold saves a checkpoint and the driver exits; "
            "resume the group later with r.", yes="Stop", danger=True), done)

    def action_clone(self) -> None:
        r = self.selected()
        if r is None:
            return
        run = RunDir(Path(r.summary.path))
        text = self.safely(lambda: run.profile_path.read_text(encoding="utf-8"), "Clone profile")
        if text is not None:
            self.tapp.open_editor(text=text, suggested=f"{r.summary.name}.toml")

    def action_delete(self) -> None:
        r = self.selected()
        if r is None:
            return
        run = RunDir(Path(r.summary.path))
        if r.summary.state not in FINAL_STATES or run.worker_alive():
            self.notify("Only finished, stopped or failed runs can be deleted; stop it first.",
                        severity="error")
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.delete_run(run)

        self.app.push_screen(ConfirmDialog(
            f"Delete {run.id}?",
            f"Removes {run.path} with its checkpoints and model. This cannot be undone.",
            yes="Delete", danger=True), done)

    def delete_run(self, run: RunDir) -> None:
        # lifecycle.delete_run looks again (a worker may have come back meanwhile) and removes
        # only a real directory directly inside the runs directory.
        if self.safely(lambda: self.services.delete_run(run, self.runs_dir), "Delete run") is not None:
            self.notify(f"Deleted {run.id}.")
        self.refresh_runs_now()

    def action_new_run(self) -> None:
        def done(path: str | None) -> None:
            if path:
                self.tapp.launch(Path(path))

        self.app.push_screen(PromptDialog("Start a run from which profile?", placeholder="path/to/profile.toml",
                                          picker=True, suffixes=(".toml",)), done)

    def action_edit_profile(self) -> None:
        def done(path: str | None) -> None:
            if path is None:
                return
            if path:
                self.tapp.open_editor(path=Path(path))
            else:
                self.tapp.open_editor()

        self.app.push_screen(PromptDialog("Open which profile? (empty: write a new one)",
                                          placeholder="path/to/profile.toml", picker=True,
                                          suffixes=(".toml",)), done)

    def action_browse(self) -> None:
        def done(path: str | None) -> None:
            if path:
                self.tapp.open_dataset(Path(path))

        self.app.push_screen(PromptDialog(
            "Browse which data file or folder?", placeholder="data.csv, data.jsonl, a save_to_disk folder …",
            picker=True, dirs_ok=True), done)
