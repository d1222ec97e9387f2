"""A finished run's results (its metrics.json) as text for the dashboard's results panel:
the final metrics, per-class precision/recall/F1, the confusion matrix and the most frequent
confusions (where the model goes wrong)."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from tunedeck.tui import fmt


def render_results(m: dict[str, Any]) -> Text:
    t = Text()
    split = m.get("split", "test")
    t.append(f"{split} split", style="bold")
    step, weights = m.get("steps"), m.get("weights_step")
    if weights is not None and weights != step:
        t.append(f" · weights of step {weights} (the best validation evaluation), trained to {step}",
                 style="dim")
    elif step is not None:
        t.append(f" · after {step:,} steps", style="dim")
    t.append("\n")
    scalars = [(k, m[k]) for k in ("accuracy", "f1_macro", "eval_loss", "perplexity")
               if isinstance(m.get(k), (int, float))]
    t.append("  " + "   ".join(f"{fmt.METRIC_SHORT.get(k, k)} {fmt.num(v, 4)}" for k, v in scalars) + "\n")
    best = m.get("best") or {}
    if best.get("value") is not None:
        t.append(f"  best validation {fmt.best(best.get('metric'), best.get('value'))} at step "
                 f"{best.get('step')}\n", style="dim")

    per_class = m.get("per_class") or {}
    if per_class:
        width = max(8, max(len(str(k)) for k in per_class))
        t.append("\nper class\n", style="bold")
        t.append(f"  {'label':<{width}}  precision  recall     f1  support\n", style="dim")
        for label, c in per_class.items():
            t.append(f"  {str(label):<{width}}  {c.get('precision', 0):9.3f}  {c.get('recall', 0):6.3f}  "
                     f"{c.get('f1', 0):5.3f}  {int(c.get('support', 0)):7,}\n")

    cm = m.get("confusion_matrix") or {}
    labels, matrix = cm.get("labels") or [], cm.get("matrix") or []
    if labels and matrix:
        short = [str(x)[:8] for x in labels]
        width = max(8, max(len(s) for s in short))
        # Wide enough for the column headings too (they ran together at the values' width).
        cell = max(5, max(len(x) for x in short) + 1,
                   max(len(f"{v:,}") for row in matrix for v in row) + 1)
        t.append("\nconfusion matrix (rows: true label, columns: predicted)\n", style="bold")
        t.append(" " * (width + 2) + "".join(f"{s:>{cell}}" for s in short) + "\n", style="dim")
        for i, row in enumerate(matrix):
            t.append(f"  {short[i]:<{width}}", style="dim")
            for j, v in enumerate(row):
                t.append(f"{v:>{cell},}", style="bold green" if i == j else ("red" if v else "dim"))
            t.append("\n")
        mistakes = sorted(((v, labels[i], labels[j]) for i, row in enumerate(matrix)
                           for j, v in enumerate(row) if i != j and v), reverse=True)
        t.append("\nmost frequent confusions\n", style="bold")
        if not mistakes:
            t.append("  none: every row was classified correctly\n", style="green")
        for v, true, pred in mistakes[:5]:
            t.append(f"  {v:,} × {true} taken for {pred}\n")
    return t
