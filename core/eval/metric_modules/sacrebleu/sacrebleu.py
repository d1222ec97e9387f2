"""Corpus BLEU and chrF through sacrebleu (scores on sacrebleu's 0-100 scale).

References are one string per prediction, or a list of strings per prediction (several
references; every prediction needs the same number, as sacrebleu requires).
"""

import datasets
import evaluate
import sacrebleu as scb

# One import per line: evaluate's dependency scanner misreads `import a, b`.
# The library is bound as `scb` (as the hub's module does): this file is also named sacrebleu,
# so a bare `sacrebleu` here would read as this module to a reader.

_DESCRIPTION = "Corpus BLEU and chrF (sacrebleu), 0-100."

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated texts.
    references: a reference text per prediction, or a list of reference texts per prediction.
    tokenize: BLEU tokenizer (sacrebleu's default "13a").
Returns:
    bleu, chrf (floats, 0-100).
"""


class Sacrebleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }),
                datasets.Features({
                    "predictions": datasets.Value("string"),
                    "references": datasets.Value("string"),
                }),
            ],
            codebase_urls=["https://github.com/mjpost/sacreBLEU"],
        )

    def _compute(self, predictions, references, tokenize=None):
        per_prediction = [[r] if isinstance(r, str) else list(r) for r in references]
        counts = {len(refs) for refs in per_prediction}
        if len(counts) > 1:
            raise ValueError("sacrebleu needs the same number of references for every prediction")
        # sacrebleu wants references transposed: one stream per reference position.
        streams = [list(stream) for stream in zip(*per_prediction)]
        bleu = scb.metrics.BLEU(tokenize=tokenize) if tokenize else scb.metrics.BLEU()
        chrf = scb.metrics.CHRF()
        return {"bleu": float(bleu.corpus_score(predictions, streams).score),
                "chrf": float(chrf.corpus_score(predictions, streams).score)}
