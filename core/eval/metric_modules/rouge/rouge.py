"""ROUGE through Google's rouge-score package: the mean F-measure over examples per ROUGE type
(ROUGE-L by default).

A plain mean, not the hub module's BootstrapAggregator midpoint: the bootstrap resamples, so
its value depends on a seed; the mean is what the midpoint estimates.
"""

import datasets
import evaluate
import numpy as np
from rouge_score import rouge_scorer

# One import per line: evaluate's dependency scanner misreads `import a, b`.

_DESCRIPTION = "ROUGE F-measure (rouge-score), averaged over examples."

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated texts.
    references: reference texts (one per prediction).
    rouge_types: ROUGE variants to report (default ["rougeL"]; also rouge1, rouge2, rougeLsum).
    use_stemmer: Porter-stem tokens before matching (default False).
Returns:
    one float per ROUGE type, e.g. {"rougeL": 0.42}.
"""


class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": datasets.Value("string"),
            }),
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(self, predictions, references, rouge_types=None, use_stemmer=False):
        rouge_types = list(rouge_types or ["rougeL"])
        scorer = rouge_scorer.RougeScorer(rouge_types, use_stemmer=use_stemmer)
        # rouge-score's argument order is (target, prediction).
        scores = [scorer.score(ref, pred) for pred, ref in zip(predictions, references)]
        return {kind: float(np.mean([s[kind].fmeasure for s in scores])) if scores else 0.0
                for kind in rouge_types}
