"""Load a run's final model (plain transformers ``from_pretrained``) and predict one text."""

from __future__ import annotations

from typing import Any

from tunedeck.core.errors import RunError
from tunedeck.core.runs.rundir import RunDir


def predict(run: RunDir, text: str) -> dict[str, Any]:
    import transformers

    from tunedeck.core.engine.inputs import quiet_libraries
    from tunedeck.core.profile import load
    from tunedeck.core.tasks import make_task

    if not (run.model_dir / "config.json").is_file():
        raise RunError(f"run {run.id} has no final model yet (state "
                       f"{run.effective_state()[0]}); it is written when training finishes")
    quiet_libraries()
    profile = load(run.profile_path)
    task = make_task(profile.task.type)
    model = getattr(transformers, task.auto_class).from_pretrained(str(run.model_dir))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(run.model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return task.predict(model, tokenizer, text, profile.training.max_length)
