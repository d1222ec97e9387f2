"""One text through a run's model: ``tunedeck predict RUN TEXT`` and each ``serve-predict`` line.

The model is loaded by ``tunedeck.core.eval.run_model`` (the loader of ``eval`` and
``predict --file`` too), and a text is answered under the same autocast as their batches.
"""

from __future__ import annotations

from typing import Any

from tunedeck.core.eval.run_model import RunModel, load_run_model
from tunedeck.core.runs.rundir import RunDir


def answer(rm: RunModel, text: str) -> dict[str, Any]:
    """{"label", "probability", "probabilities"} (classification) or {"continuation"}; causal
    LM and seq2seq generate with the profile's [generation] settings."""
    with rm.autocast():
        if rm.profile.task.type in ("causal-lm", "seq2seq"):
            from tunedeck.core.eval.generation_settings import generation_kwargs

            return rm.task.predict(rm.model, rm.tokenizer, text, rm.profile.training.max_length,
                                   generation=generation_kwargs(rm.profile, rm.tokenizer))
        return rm.task.predict(rm.model, rm.tokenizer, text, rm.profile.training.max_length)


def predict(run: RunDir, text: str, checkpoint: str = "final") -> dict[str, Any]:
    """Load the weights of ``checkpoint`` and answer ``text``."""
    return answer(load_run_model(run, checkpoint), text)
