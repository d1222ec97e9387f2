"""Error analysis of a run's saved evaluation (``RUN/evals/<name>/``, written by
``tunedeck eval``): what the model gets wrong, and how sure it was.

Classification: the confusion matrix (arrow keys over cells, enter lists that cell's examples),
the most confidently wrong and least confident right examples, per-class scores and the
calibration table with its ECE. Causal LM / seq2seq: loss by input length and the worst examples.
Everything is read with pyarrow by ``tunedeck.core.eval.error_analysis`` (torch-free).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from tunedeck.core.errors import UserError
from tunedeck.core.eval import error_analysis as ea
from tunedeck.tui.screens.base import BaseScreen
from tunedeck.tui.widgets.confusion_matrix import ConfusionMatrix

CLS_TABS = [("matrix", "Matrix"), ("wrong", "Sure but wrong"), ("unsure", "Unsure but right"),
            ("classes", "Per class"), ("calibration", "Calibration")]
LM_TABS = [("lengths", "Loss by length"), ("worst", "Worst by loss"), ("rouge", "Worst ROUGE-L")]


def _where(e: dict[str, Any]) -> str:
    src = Path(str(e.get("source") or "")).name
    return f"{src}:{e['row']}" if e.get("row") is not None else src or "–"


def _one_line(text: Any, width: int = 200) -> str:
    return " ".join(str(text or "").split())[:width]


def _p(x: Any) -> Text:
    return Text("–" if x is None else f"{float(x):.3f}", justify="right")


class ErrorsScreen(BaseScreen):
    BINDINGS = [
        Binding("v", "next_eval", "Next eval", tooltip="Show the run's next saved evaluation"),
        Binding("1", "tab(0)", "Matrix", show=False),
        Binding("2", "tab(1)", "Tab 2", show=False),
        Binding("3", "tab(2)", "Tab 3", show=False),
        Binding("4", "tab(3)", "Tab 4", show=False),
        Binding("5", "tab(4)", "Tab 5", show=False),
        Binding("l", "fix_label", "Fix label",
                tooltip="Label the selected example again, in its data file (the annotation screen)"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, run_path: Path) -> None:
        super().__init__(id="errors-screen")
        self.run_path = Path(run_path)
        self.eval_names: list[str] = []
        self.current: ea.SavedEval | None = None
        self.cell: tuple[str, str] | None = None
        self.cell_rows: list[dict[str, Any]] = []
        self.examples_by_table: dict[str, list[dict[str, Any]]] = {}  # table id -> its rows' examples

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        yield Static(id="errors-head")
        yield Vertical(id="errors-body")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"errors · {self.run_path.name}"
        self.query_one("#errors-head", Static).update(Text("Reading evaluations …", style="dim"))
        self._load(None)

    @work(thread=True, exclusive=True, group="errors-load", exit_on_error=False)
    def _load(self, name: str | None) -> None:
        try:
            names = ea.list_evals(self.run_path)
            ev = ea.load_eval(self.run_path, name or names[0]) if names else None
            report = ea.summary(ev, k=50) if ev else None
            self.app.call_from_thread(self._show, names, ev, report)
        except UserError as e:
            self.app.call_from_thread(self._show_problem, str(e))
            return
        except Exception as e:  # a bug: said on screen and logged, the app stays up
            import traceback

            self.tapp.log_bug(e, traceback.format_exc())
            self.app.call_from_thread(self._show_problem, f"{type(e).__name__}: {e} (a bug in "
                                      f"tunedeck; details in {self.tapp.bug_log})")


    def _show_problem(self, message: str) -> None:
        if self.is_mounted:
            self.query_one("#errors-head", Static).update(Text(message, style="red"))
            self.ready = True

    async def _show(self, names: list[str], ev: ea.SavedEval | None,
                    report: dict[str, Any] | None) -> None:
        if not self.is_mounted:
            return
        self.eval_names, self.current = names, ev
        body = self.query_one("#errors-body", Vertical)
        await body.remove_children()
        head = self.query_one("#errors-head", Static)
        if ev is None or report is None:
            head.update(Text.assemble(
                ("No saved evaluation", "bold"), f" in {self.run_path / 'evals'}.\n\n",
                "Evaluate the run first, in a shell:\n\n    ",
                (f"tunedeck eval {self.run_path.name}", "bold"),
                "\n\nthen come back here (escape, then e)."))
            self.ready = True
            return
        head.update(self._head_text(ev, report))
        tabs = CLS_TABS if ea.is_classification(ev) else LM_TABS
        content = TabbedContent(id="errors-tabs")
        await body.mount(content)
        for key, title in tabs:
            await content.add_pane(TabPane(title, id=f"tab-{key}"))
        self._fill(ev, report)

    def _head_text(self, ev: ea.SavedEval, report: dict[str, Any]) -> Text:
        where = ev.metrics.get("split") or Path(str(ev.metrics.get("data") or "?")).name
        t = Text.assemble((ev.name, "bold"), f"  {ev.task} · {where} · {len(ev.examples):,} rows"
                          f" · checkpoint {ev.metrics.get('checkpoint')}")
        if len(self.eval_names) > 1:
            t.append(f"   (eval {self.eval_names.index(ev.name) + 1}/{len(self.eval_names)}: v for next)",
                     style="dim")
        if ea.is_classification(ev):
            ece = report["calibration"]["ece"]
            acc = ev.metrics.get("accuracy")
            scores = [f"accuracy {acc:.3f}"] if isinstance(acc, (int, float)) else []
            scores += [f"ECE {ece:.4f}"] if ece is not None else []
            t.append("\n" + " · ".join(scores))
            t.append("   arrows+enter: a cell's examples · 1-5: tabs", style="dim")
        return t

    def _fill(self, ev: ea.SavedEval, report: dict[str, Any]) -> None:
        if ea.is_classification(ev):
            self._fill_classification(ev, report)
        else:
            self._fill_lm(report)
        self.ready = True

    def _fill_classification(self, ev: ea.SavedEval, report: dict[str, Any]) -> None:
        matrix = ConfusionMatrix(id="matrix")
        cell_list = self._table("cell-examples", ["p", "where", "text"])
        self.query_one("#tab-matrix", TabPane).mount(
            Static(Text("gold ↓  predicted →", style="dim"), id="matrix-legend"), matrix,
            Static(id="cell-title"), cell_list)
        matrix.show(ev.label_names, report["confusion_matrix"])
        matrix.focus()
        self._examples_into("wrong", report["confidently_wrong"], "gold → predicted")
        self._examples_into("unsure", report["least_confident_right"], "label")
        classes = self._table("classes-table", ["label", "precision", "recall", "f1", "support"])
        self.query_one("#tab-classes", TabPane).mount(classes)
        for c in report["per_class"]:
            classes.add_row(Text(c["label"]), _p(c["precision"]), _p(c["recall"]), _p(c["f1"]),
                            Text(f"{c['support']:,}", justify="right"))
        self._fill_calibration(report["calibration"])

    def _fill_calibration(self, cal: dict[str, Any]) -> None:
        pane = self.query_one("#tab-calibration", TabPane)
        ece = "–" if cal["ece"] is None else f"{cal['ece']:.4f}"
        table = self._table("calibration-table", ["confidence", "count", "mean conf", "accuracy", "gap"])
        pane.mount(Static(Text.assemble(("expected calibration error ", "bold"), ece,
                                        f"  over {cal['n']:,} predictions"), id="ece"), table)
        for b in cal["bins"]:
            gap = None if b["count"] == 0 else b["accuracy"] - b["confidence"]
            table.add_row(Text(f"{b['low']:.1f}–{b['high']:.1f}"), Text(f"{b['count']:,}", justify="right"),
                          _p(b["confidence"]), _p(b["accuracy"]),
                          Text("–" if gap is None else f"{gap:+.3f}", justify="right",
                               style="" if gap is None or abs(gap) < 0.1 else "red"))

    def _examples_into(self, tab: str, rows: list[dict[str, Any]], what: str) -> None:
        table = self._table(f"{tab}-table", ["p", what, "where", "text"])
        self.examples_by_table[table.id or ""] = rows
        self.query_one(f"#tab-{tab}", TabPane).mount(table)
        for e in rows:
            label = e["gold"] if what == "label" else f"{e['gold']} → {e['predicted']}"
            table.add_row(_p(e["probability"]), Text(str(label)), Text(_where(e)), Text(_one_line(e["text"])))

    def _fill_lm(self, report: dict[str, Any]) -> None:
        lengths = self._table("lengths-table", ["tokens", "rows", "mean loss", "perplexity"])
        self.query_one("#tab-lengths", TabPane).mount(lengths)
        for b in report["length_buckets"]:
            lengths.add_row(Text(f"{b['low']}–{b['high']}"), Text(f"{b['count']:,}", justify="right"),
                            _p(b["mean_loss"]), Text(f"{b['perplexity']:.2f}", justify="right"))
        worst = self._table("worst-table", ["loss", "tokens", "where", "text", "reference"])
        self.query_one("#tab-worst", TabPane).mount(worst)
        for e in report["worst_by_loss"]:
            worst.add_row(_p(e["loss"]), Text(str(e["tokens"]), justify="right"), Text(_where(e)),
                          Text(_one_line(e["text"], 60)), Text(_one_line(e["gold"], 60)))
        rouge = self._table("rouge-table", ["ROUGE-L", "where", "generation", "reference"])
        pane = self.query_one("#tab-rouge", TabPane)
        pane.mount(rouge)
        if not report["worst_by_rouge_l"]:
            pane.mount(Static(Text("No generations in this evaluation (tunedeck eval writes them "
                                   "when asked for generation metrics).", style="dim")))
        for e in report["worst_by_rouge_l"]:
            rouge.add_row(_p(e["rouge_l"]), Text(_where(e)), Text(_one_line(e["predicted"], 60)),
                          Text(_one_line(e["gold"], 60)))
        lengths.focus()

    def _table(self, table_id: str, columns: list[str]) -> DataTable[Any]:
        table: DataTable[Any] = DataTable(id=table_id, cursor_type="row", zebra_stripes=True)
        table.add_columns(*columns)
        return table

    @on(ConfusionMatrix.CellOpened)
    def _cell_opened(self, event: ConfusionMatrix.CellOpened) -> None:
        if self.current is None:
            return
        self.cell = (event.gold, event.predicted)
        self.cell_rows = ea.cell_examples(self.current, event.gold, event.predicted)
        self.examples_by_table["cell-examples"] = self.cell_rows
        title = self.query_one("#cell-title", Static)
        title.update(Text.assemble(("gold ", "dim"), (event.gold, "bold"), (" predicted ", "dim"),
                                   (event.predicted, "bold"), f": {len(self.cell_rows):,} examples"))
        table = self.query_one("#cell-examples", DataTable)
        table.clear()
        for e in self.cell_rows:
            table.add_row(_p(e["probability"]), Text(_where(e)), Text(_one_line(e["text"])))

    def action_tab(self, index: int) -> None:
        if self.current is None:
            return
        tabs = CLS_TABS if ea.is_classification(self.current) else LM_TABS
        if index < len(tabs):
            pane_id = f"tab-{tabs[index][0]}"
            self.query_one(TabbedContent).active = pane_id
            # Focus follows: a focused widget left in a hidden pane would switch the tab back.
            tables = self.query_one(f"#{pane_id}", TabPane).query(DataTable)
            if tables:
                tables.first().focus()

    def action_next_eval(self) -> None:
        if len(self.eval_names) > 1 and self.current is not None:
            i = self.eval_names.index(self.current.name)
            self.ready = False
            self._load(self.eval_names[(i + 1) % len(self.eval_names)])

    def action_fix_label(self) -> None:
        from tunedeck.tui.screens.annotate import fix_label_from_errors

        fix_label_from_errors(self)

    def action_back(self) -> None:
        self.app.pop_screen()
