"""``tunedeck eval``: a run's model at a checkpoint on its test/validation split or a new file,
written as ``RUN/evals/<name>/`` (the contract in ``predictions``).

One pass over token-budget, length-sorted batches (``engine.batching``) gives each example's
loss and, for classification, its class probabilities; the loss and metrics are the training
loop's (``Task.eval_metrics`` on the same per-token normalisation), so ``--split test
--checkpoint final`` reproduces RUN/metrics.json. Causal LM / seq2seq prompt-response rows are
then generated (``generate``) for the predictions and any generation metrics asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tunedeck.core.engine import batching as B
from tunedeck.core.eval.eval_data import EvalRows, file_rows, split_rows, tokenize_rows
from tunedeck.core.eval.predictions import default_eval_name, predictions_table, write_eval
from tunedeck.core.eval.run_model import RunModel, load_run_model
from tunedeck.core.runs.rundir import RunDir

Progress = Callable[[int], None]


@dataclass
class EvalOutcome:
    name: str
    path: Path
    metrics: dict[str, Any]
    predictions: Any  # pyarrow.Table in PREDICTIONS_SCHEMA


def evaluate_run(run: RunDir, *, data: Path | None = None, split: str | None = None,
                 checkpoint: str = "final", name: str | None = None,
                 extra_metrics: Sequence[str] = ()) -> EvalOutcome:
    """Evaluate and write ``RUN/evals/<name>/``; ``split`` defaults to test."""
    rm = load_run_model(run, checkpoint)
    split = None if data is not None else (split or "test")
    rows = (file_rows(rm.profile, Path(data).resolve(), rm.label_names) if data is not None
            else split_rows(run, rm.profile, split))
    metrics, columns = score_rows(rm, rows, list(rm.profile.evaluation.metrics) + list(extra_metrics))
    record = {"task": rm.profile.task.type, "split": split,
              "data": str(Path(data).resolve()) if data is not None else None,
              "checkpoint": rm.checkpoint, "step": rm.step, "rows": rows.table.num_rows,
              **({"label_names": rm.label_names} if rm.label_names is not None else {}),
              **metrics}
    name = name or default_eval_name(split or str(data), rm.checkpoint)
    table = predictions_table(columns)
    path = write_eval(run.path, name, record, table)
    return EvalOutcome(name, path, {"created": time.time(), **record}, table)


def eval_batch_size(profile: Any) -> int:
    t = profile.training
    return t.eval_batch_size or 2 * t.batch_size


def plan_batches(profile: Any, lengths: np.ndarray) -> list[np.ndarray]:
    """Token-budget, length-sorted batches of about eval_batch_size rows (no shuffling)."""
    t = profile.training
    return B.plan_epoch(lengths, t.seed, 0, batching=t.batching, batch_size=eval_batch_size(profile),
                        batch_tokens=0, multiple=8, shuffle=False)


def forward_pass(rm: RunModel, examples: Any, progress: Progress = lambda n: None
                 ) -> dict[str, np.ndarray]:
    """Per example: summed loss, and for classification the class probabilities."""
    import torch

    n = len(examples)
    loss_sums = np.zeros(n, dtype=np.float64)
    probs: np.ndarray | None = None
    pad_id = int(rm.tokenizer.pad_token_id or 0)
    multiple = 8  # as the run's evaluations (compile's bounded shapes are its training steps')
    rm.task.bind_model(rm.model)  # seq2seq: decoder inputs from the model's own shift
    with torch.no_grad():
        for idx in plan_batches(rm.profile, examples.lengths):
            batch = {k: torch.from_numpy(v).to(rm.device)
                     for k, v in examples.collate(idx, pad_id, multiple).items()}
            with rm.autocast():
                logits = rm.model(**rm.task.forward_kwargs(batch)).logits
            loss_sums[idx] = rm.task.loss_per_row(logits, batch["labels"]).double().cpu().numpy()
            if rm.label_names is not None:
                batch_probs = logits.float().softmax(-1).cpu().numpy()
                if probs is None:
                    probs = np.zeros((n, batch_probs.shape[1]), dtype=np.float64)
                probs[idx] = batch_probs
            progress(len(idx))
    out = {"loss_sums": loss_sums, "n_targets": examples.n_targets.astype(np.float64),
           "tokens": examples.lengths.astype(np.int64)}
    if probs is not None:
        out["probs"] = probs
    return out


def score_rows(rm: RunModel, rows: EvalRows, metric_names: Sequence[str],
               progress: Progress = lambda n: None) -> tuple[dict[str, Any], dict[str, list]]:
    """The metrics of ``rows`` and the prediction columns of the contract."""
    examples = tokenize_rows(rm.task, rows, rm.tokenizer, rm.profile.training.max_length)
    scores = forward_pass(rm, examples, progress)
    loss = float(scores["loss_sums"].sum()) / max(1.0, float(scores["n_targets"].sum()))
    per_row_loss = scores["loss_sums"] / np.maximum(scores["n_targets"], 1.0)
    columns: dict[str, list] = {"source": [rows.source] * len(examples),
                                "row": examples.rows.tolist(), "loss": per_row_loss.tolist(),
                                "tokens": scores["tokens"].tolist()}
    if rm.label_names is not None:
        metrics, more = _classification(rm, rows, scores, loss, metric_names)
    elif rows.packed:  # a text corpus: a prediction row per block, its text decoded
        metrics = rm.task.eval_metrics({}, loss)
        texts = [rm.tokenizer.decode(examples.ids[a:b].tolist())
                 for a, b in zip(examples.offsets[:-1], examples.offsets[1:])]
        more = {"text": texts, "gold": texts}
    else:
        metrics, more = _generative(rm, rows, loss, metric_names, progress)
    columns.update(more)
    return metrics, columns


def _classification(rm: RunModel, rows: EvalRows, scores: dict[str, np.ndarray], loss: float,
                    metric_names: Sequence[str]) -> tuple[dict[str, Any], dict[str, list]]:
    from tunedeck.core.eval.metrics import generation_metrics

    names = rm.label_names or []
    probs = scores["probs"]
    preds = probs.argmax(-1)
    gold = np.asarray(rows.column("label"), dtype=np.int64)
    metrics = rm.task.eval_metrics({"preds": [preds], "labels": [gold]}, loss)
    predicted = [names[i] for i in preds]
    gold_names = [names[i] for i in gold]
    if metric_names:
        metrics.update(generation_metrics(predicted, gold_names, metric_names))
    rows_index = np.arange(len(preds))
    return metrics, {"text": rows.column("text"), "gold": gold_names, "predicted": predicted,
                     "probability": probs[rows_index, preds].tolist(),
                     "gold_probability": probs[rows_index, gold].tolist(),
                     "probabilities": probs.tolist()}


def _generative(rm: RunModel, rows: EvalRows, loss: float, metric_names: Sequence[str],
                progress: Progress) -> tuple[dict[str, Any], dict[str, list]]:
    """Loss/perplexity; with prompt/response rows, generations and the metrics asked for."""
    from tunedeck.core.eval.batch_generation import generate_texts
    from tunedeck.core.eval.metrics import generation_metrics

    metrics = rm.task.eval_metrics({}, loss)
    cols = rows.table.column_names
    if "prompt" not in cols and "messages" not in cols:  # plain text: nothing to answer
        return metrics, {"text": rows.column("text"), "gold": rows.column("text")}
    column = "messages" if "messages" in cols else "prompt"
    prompts = rm.task.generation_prompts({column: rows.column(column)}, rm.tokenizer,
                                         rm.profile.training.max_length)
    generations = generate_texts(rm, prompts, eval_batch_size(rm.profile), progress)
    if column == "messages":  # the prompt is the turns before the last answer, the answer gold
        texts, references = _chat_prompts_and_answers(rows.column("messages"))
    else:
        texts, references = rows.column("prompt"), rows.column("response")
    if metric_names:
        metrics.update(generation_metrics(generations, references, metric_names))
    return metrics, {"text": texts, "gold": references, "predicted": generations}


def _chat_prompts_and_answers(conversations: list[str]) -> tuple[list[str], list[str]]:
    import json

    from tunedeck.core.data.chat import plain_conversation, prompt_messages

    pairs = [prompt_messages(json.loads(c)) for c in conversations]
    return [plain_conversation(p) or "" for p, _ in pairs], [a for _, a in pairs]


def end_of_training_generation_metrics(run: RunDir, profile: Any, model: Any, tokenizer: Any,
                                       split: str) -> dict[str, Any]:
    """Generation metrics of ``split`` for the end-of-training report (causal LM / seq2seq with
    ``[evaluation] metrics``); {} when there is nothing to generate."""
    import torch

    from tunedeck.core.engine.precision import resolve_precision
    from tunedeck.core.tasks import make_task

    if profile.task.type == "classification" or not profile.evaluation.metrics:
        return {}
    task = make_task(profile.task.type)
    device = next(model.parameters()).device
    rm = RunModel(run, profile, task, tokenizer, model, torch.device(device),
                  resolve_precision(profile.training.precision), None, "final", None)
    rows = split_rows(run, profile, split)
    if "prompt" not in rows.table.column_names and "messages" not in rows.table.column_names:
        return {}
    was_training = model.training
    model.eval()
    try:
        metrics, _ = _generative(rm, rows, 0.0, list(profile.evaluation.metrics), lambda n: None)
    finally:
        model.train(was_training)
    return {k: v for k, v in metrics.items() if k not in ("eval_loss", "perplexity")}


def top_errors(outcome: EvalOutcome, n: int) -> list[dict[str, Any]]:
    """Classification: the most confidently wrong rows; otherwise the highest-loss rows."""
    rows = outcome.predictions.to_pylist()
    if outcome.metrics.get("label_names") is not None:
        wrong = [r for r in rows if r["predicted"] != r["gold"]]
        return sorted(wrong, key=lambda r: -r["probability"])[:n]
    return sorted(rows, key=lambda r: -(r["loss"] or 0.0))[:n]
