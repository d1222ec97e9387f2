"""The training engine. Before the first step: ``inputs`` (data, tokenizer, model; the tokenized
``examples`` cached by ``token_cache``), ``memory_estimate``. The loop: ``loop`` (its phases),
``optim_step`` (one optimizer step, OOM back-off), ``evaluation``, ``training_checkpoints`` (the
loop's side of ``checkpoint``), ``state`` (TrainState, how a run ends early), ``batching``,
``precision``; ``faults`` injects faults for the reliability tests."""
