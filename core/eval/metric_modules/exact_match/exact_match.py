"""Exact match: the share of predictions equal to their reference, via scikit-learn's
accuracy_score on the (optionally normalised) strings."""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score

# One import per line: evaluate's dependency scanner misreads `import a, b`.

_DESCRIPTION = "Share of predictions that equal their reference string."

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated texts.
    references: reference texts.
    strip: ignore leading/trailing whitespace (default True: generations often end in a newline).
    ignore_case: compare case-insensitively (default False).
Returns:
    exact_match: float in [0, 1].
"""


class ExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": datasets.Value("string"),
            }),
        )

    def _compute(self, predictions, references, strip=True, ignore_case=False):
        if len(predictions) == 0:
            return {"exact_match": 0.0}
        preds = [_normalise(p, strip, ignore_case) for p in predictions]
        refs = [_normalise(r, strip, ignore_case) for r in references]
        # Object arrays: a numpy unicode array would drop trailing NUL characters and so make
        # "a\x00" equal "a".
        return {"exact_match": float(accuracy_score(np.asarray(refs, dtype=object),
                                                    np.asarray(preds, dtype=object)))}


def _normalise(text, strip, ignore_case):
    text = text.strip() if strip else text
    return text.lower() if ignore_case else text
