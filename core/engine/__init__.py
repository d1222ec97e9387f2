"""The training engine: our own loop on Accelerate (``loop``), batch planning (``batching``),
checkpoints (``checkpoint``), setup of data/model/tokenizer (``setup``)."""
