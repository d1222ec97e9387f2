"""The seq2seq step computes its loss once (issue 14): the model gets decoder inputs from its own
shift instead of labels, so it computes no loss of its own, and the task's loss is the model's."""

from __future__ import annotations

import numpy as np


def test_seq2seq_forward_has_no_labels_and_the_same_loss() -> None:
    import torch
    import transformers

    from tunedeck.core.engine.examples import TokenizedSet
    from tunedeck.core.tasks import make_task

    torch.manual_seed(0)
    config = transformers.T5Config(d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16,
                                   vocab_size=200, decoder_start_token_id=0, pad_token_id=0)
    model = transformers.AutoModelForSeq2SeqLM.from_config(config).eval()
    rng = np.random.default_rng(0)
    src_len, tgt_len = rng.integers(4, 20, 5), rng.integers(2, 12, 5)
    src_off, tgt_off = np.concatenate([[0], np.cumsum(src_len)]), np.concatenate([[0], np.cumsum(tgt_len)])
    data = TokenizedSet(rng.integers(3, 200, src_off[-1]), src_off, rng.integers(3, 200, tgt_off[-1]),
                        tgt_off, tgt_len, np.arange(1, 6))
    batch = {k: torch.from_numpy(v) for k, v in data.collate(np.arange(5), 0, 8).items()}
    task = make_task("seq2seq")
    assert "labels" in task.forward_kwargs(batch)  # unbound: the model shifts (and adds a loss)
    task.bind_model(model)
    kwargs = task.forward_kwargs(batch)
    assert "labels" not in kwargs and "decoder_input_ids" in kwargs
    out = model(**kwargs)
    assert out.loss is None  # no second cross-entropy inside the model
    ours = task.loss_sum(out.logits, batch["labels"]) / int(tgt_len.sum())
    theirs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   labels=batch["labels"]).loss
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
