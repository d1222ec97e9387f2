"""Perplexity from token losses: exp(mean token loss), the mean taken over tokens, not rows.

Not the hub's "perplexity" (that one runs a model over texts): this one takes the losses a
training run already has. Each row is a per-example (or per-batch) summed token loss and its
token count; a plain mean loss is one row with token_counts=[1].
"""

import datasets
import evaluate
import numpy as np

# One import per line: evaluate's dependency scanner misreads `import a, b`.

_DESCRIPTION = "Perplexity = exp(sum of token losses / number of tokens)."

_KWARGS_DESCRIPTION = """
Args:
    loss_sums: summed token cross-entropy (nats) per example.
    token_counts: target tokens per example.
Returns:
    mean_loss: the mean token loss; perplexity: exp(mean_loss), with the exponent capped at 700
    so that the value stays a finite float (JSON has no infinity).
"""

# exp(709.78) overflows a float64; 700 keeps headroom and matches the cap tunedeck always used.
_MAX_EXPONENT = 700.0


class Perplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "loss_sums": datasets.Value("float64"),
                "token_counts": datasets.Value("float64"),
            }),
        )

    def _compute(self, loss_sums, token_counts):
        total_tokens = np.sum(np.asarray(token_counts, dtype=np.float64))
        if total_tokens <= 0:
            raise ValueError("perplexity needs at least one target token")
        mean_loss = np.sum(np.asarray(loss_sums, dtype=np.float64)) / total_tokens
        return {"mean_loss": float(mean_loss),
                "perplexity": float(np.exp(np.minimum(mean_loss, _MAX_EXPONENT)))}
