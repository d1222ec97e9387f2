"""A confusion matrix the keyboard can walk: rows are gold labels, columns predicted labels, the
arrow keys move a cell cursor (Textual's DataTable in cell mode) and enter opens that cell."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable


class ConfusionMatrix(DataTable[Text]):
    """Counts[gold][predicted]; right answers (the diagonal) green, mistakes red."""

    class CellOpened(Message):
        def __init__(self, gold: str, predicted: str) -> None:
            super().__init__()
            self.gold = gold
            self.predicted = predicted

    def __init__(self, **kw: object) -> None:
        super().__init__(cursor_type="cell", zebra_stripes=False, **kw)  # type: ignore[arg-type]
        self.labels: list[str] = []

    def show(self, labels: list[str], counts: list[list[int]], width: int = 8) -> None:
        self.labels = list(labels)
        self.clear(columns=True)
        for j, name in enumerate(labels):
            self.add_column(Text(name[:width], justify="right"), key=f"p{j}")
        for i, name in enumerate(labels):
            cells = []
            for j, n in enumerate(counts[i]):
                style = "green" if i == j else ("bold red" if n else "dim")
                cells.append(Text(f"{n:,}", style=style, justify="right"))
            self.add_row(*cells, key=f"g{i}", label=Text(name[:width], style="bold"))
        if labels:
            self.move_cursor(row=0, column=min(1, len(labels) - 1), animate=False)

    def current_cell(self) -> tuple[str, str] | None:
        """(gold, predicted) under the cursor."""
        c = self.cursor_coordinate
        if not self.labels or not (0 <= c.row < len(self.labels) and 0 <= c.column < len(self.labels)):
            return None
        return self.labels[c.row], self.labels[c.column]

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        event.stop()
        cell = self.current_cell()
        if cell is not None:
            self.post_message(self.CellOpened(*cell))
