"""Causal-LM data: chat conversations with the loss on assistant turns only, packed text corpora
(no line dropped, splits as contiguous ranges, better than a unigram model after training), and
instruction packing whose rows keep attention inside each example."""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from tdhelpers import TINY_GPT, write_profile
from tunedeck.core.data.chat import CHATML, plain_conversation
from tunedeck.core.errors import DataError
from tunedeck.core.profile import load
from tunedeck.core.tasks.base import IGNORE

ASSISTANT_TURN = re.compile(r"<\|im_start\|>assistant\n(.*?<\|im_end\|>\n)", re.DOTALL)


def _conversations(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        conv = [{"role": "system", "content": "You add numbers."},
                {"role": "user", "content": f"add {a} and {b}"},
                {"role": "assistant", "content": f"{a} plus {b} is {a + b}"}]
        if i % 3 == 0:
            conv += [{"role": "user", "content": f"thanks {i}"},
                     {"role": "assistant", "content": "you are welcome"}]
        out.append(conv)
    return out


def _chat_tokenizer(tmp_path: Path) -> Path:
    """A small BPE tokenizer trained here, with a ChatML template and its marker tokens."""
    from tunedeck.core.models import train_tokenizer

    texts = [f"{m['role']}\n{m['content']}" for c in _conversations(50) for m in c]
    tok = train_tokenizer(iter(texts * 4), "gpt2", 300)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]},
                           replace_extra_special_tokens=False)
    tok.chat_template = CHATML
    out = tmp_path / "chat-tokenizer"
    tok.save_pretrained(str(out))
    # models.resolve_model_path takes a directory with a config.json for a tokenizer too.
    from transformers import AutoConfig

    AutoConfig.for_model("gpt2").save_pretrained(str(out))
    return out


def _profile(tmp_path: Path, name: str, model: dict, data: dict, **training) -> Path:
    t = {"epochs": 1, "learning_rate": 3e-3, "batch_size": 16, "max_length": 128,
         "log_every_steps": 5, "precision": "fp32"}
    t.update(training)
    doc = {"name": name, "task": {"type": "causal-lm"}, "model": model, "data": data,
           "training": t, "output": {"runs_dir": str(tmp_path / "runs")}}
    return write_profile(tmp_path / f"{name}.toml", tomli_w.dumps(doc))


def _write_jsonl(path: Path, convs: list[list[dict[str, str]]]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for c in convs:
            f.write(json.dumps({"id": len(c), "messages": c}) + "\n")
    return path


# --- chat data ------------------------------------------------------------------------------

def test_chat_jsonl_labels_cover_assistant_turns_only(tmp_path):
    """Through the data layer (a JSONL list-of-objects column) and the tokenizer's own ChatML
    template: each token is a target iff it lies inside an assistant turn of the rendered text
    (found here by a regex, independently of the prefix rendering the task uses)."""
    from tunedeck.core.engine.inputs import prepare_inputs

    convs = _conversations(60)
    data = _write_jsonl(tmp_path / "chat.jsonl", convs)
    prof = load(_profile(tmp_path, "chat", {"config": TINY_GPT, "tokenizer": str(_chat_tokenizer(tmp_path))},
                         {"train": str(data), "messages_column": "messages", "dedup": False}))
    inputs = prepare_inputs(prof)
    tok = inputs.tokenizer
    checked = 0
    for ts in (inputs.train, inputs.validation, inputs.test):
        for r in range(len(ts)):
            ids = ts.ids[ts.offsets[r]: ts.offsets[r + 1]].tolist()
            labels = ts.labels[ts.label_offsets[r]: ts.label_offsets[r + 1]].tolist()
            conv = convs[int(ts.rows[r]) - 1]  # row = the JSONL line
            text = tok.apply_chat_template(conv, tokenize=False)
            spans = [m.span(1) for m in ASSISTANT_TURN.finditer(text)]
            assert len(spans) == sum(m["role"] == "assistant" for m in conv)
            pos = 0
            for i, (tid, lab) in enumerate(zip(ids, labels)):
                piece = tok.decode([tid])
                start, pos = pos, pos + len(piece)
                inside = any(a <= start and pos <= b for a, b in spans)
                assert lab == (tid if inside else IGNORE), (r, i, piece, lab)
            assert tok.decode(ids) == text  # the whole conversation, nothing truncated
            targets = tok.decode([t for t, lab in zip(ids, labels) if lab != IGNORE])
            assert targets == "".join(text[a:b] for a, b in spans)
            checked += 1
    assert checked == 60


def test_train_on_all_and_prompt_response_through_template(tmp_path):
    from tunedeck.core.engine.inputs import prepare_inputs

    tok_dir = str(_chat_tokenizer(tmp_path))
    rows = [{"prompt": f"add {a} and {a}", "response": str(2 * a)} for a in range(10)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    model = {"config": TINY_GPT, "tokenizer": tok_dir}
    pr = prepare_inputs(load(_profile(tmp_path, "pr", model, {
        "train": str(data), "prompt_column": "prompt", "response_column": "response",
        "split": [0.8, 0.2, 0.0]})))
    tok = pr.tokenizer
    r = 0
    ids = pr.train.ids[pr.train.offsets[r]: pr.train.offsets[r + 1]].tolist()
    labels = pr.train.labels[pr.train.label_offsets[r]: pr.train.label_offsets[r + 1]].tolist()
    row = rows[int(pr.train.rows[r]) - 1]
    assert tok.decode(ids).startswith("<|im_start|>user\n" + row["prompt"])
    assert tok.decode([t for t, lab in zip(ids, labels) if lab != IGNORE]) == \
        row["response"] + "<|im_end|>\n"
    everything = prepare_inputs(load(_profile(tmp_path, "all", model, {
        "train": str(data), "prompt_column": "prompt", "response_column": "response",
        "split": [0.8, 0.2, 0.0], "train_on": "all"})))
    assert (everything.train.labels == everything.train.ids).all()


def test_bad_conversation_names_its_line(tmp_path):
    from tunedeck.core.data import read_splits

    data = _write_jsonl(tmp_path / "chat.jsonl", _conversations(5))
    with data.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"id": 0, "messages": [{"role": "user", "text": "hi"}]}) + "\n")
    prof = load(_profile(tmp_path, "bad", {"config": TINY_GPT},
                         {"train": str(data), "messages_column": "messages"}))
    with pytest.raises(DataError, match=r"chat\.jsonl:6: message 1 needs a string 'role' and a "
                                        r"string 'content'"):
        read_splits(prof)
    wrong = load(_profile(tmp_path, "wrong", {"config": TINY_GPT}, {"train": str(data)}))
    with pytest.raises(DataError, match="data.messages_column = 'messages'"):
        read_splits(wrong)


def test_plain_conversation_for_the_browser():
    conv = _conversations(1)[0]
    assert plain_conversation(json.dumps(conv)).splitlines() == [
        "system: You add numbers.", f"user: {conv[1]['content']}",
        f"assistant: {conv[2]['content']}", "user: thanks 0", "assistant: you are welcome"]
    assert plain_conversation("not a conversation") is None


# --- packed corpora -------------------------------------------------------------------------

SPEAKERS = ["HAMLET.", "HORATIO.", "OPHELIA.", "GHOST."]
SUBJECTS = ["the king", "my lord", "the night", "this ghost", "the queen", "our watch"]
VERBS = ["walks", "speaks", "waits", "returns", "sleeps", "listens"]
PLACES = ["upon the platform", "within the castle", "beside the sea", "in the garden"]


def _play(n_speeches: int, seed: int = 3) -> str:
    """A deterministic play: speaker names repeated on lines of their own, blank lines between
    speeches, sentences from a small grammar (subject verb place), some lines repeated."""
    rng = random.Random(seed)
    lines = ["THE TRAGEDY OF THE TINY PRINCE", ""]
    for i in range(n_speeches):
        lines.append(rng.choice(SPEAKERS))
        for _ in range(rng.randint(1, 3)):
            s = rng.choice(SUBJECTS)
            lines.append(f"{s.capitalize()} {rng.choice(VERBS)} {rng.choice(PLACES)}.")
        if i % 7 == 0:
            lines.append("Exit.")
        lines.append("")
    return "\n".join(lines) + "\n"


def test_packed_corpus_keeps_every_line_and_splits_contiguously(tmp_path):
    from tunedeck.core.data import read_splits

    text = _play(400)
    path = tmp_path / "play.txt"
    path.write_text(text, encoding="utf-8")
    data = read_splits(load(_profile(tmp_path, "play", {"config": TINY_GPT},
                                     {"train": str(path)})))
    pieces = {r: data.splits[r]["text"] for r in ("train", "validation", "test")}
    assert all(len(p) == 1 for p in pieces.values())  # one document, three contiguous ranges
    joined = pieces["train"][0] + pieces["validation"][0] + pieces["test"][0]
    assert joined == text.rstrip("\n") or joined == text  # every line, in order, blank ones too
    assert joined.count("HAMLET.\n") == text.count("HAMLET.\n") > 50  # no dedup of repeats
    assert pieces["train"][0].endswith("\n")  # cut at a line's end
    sizes = {r: len(p[0]) / len(text) for r, p in pieces.items()}
    assert abs(sizes["train"] - 0.8) < 0.01 and abs(sizes["validation"] - 0.1) < 0.01
    first_val_line = int(data.validation["row"][0])
    assert text.splitlines()[first_val_line - 1] == pieces["validation"][0].splitlines()[0]


def test_blank_line_documents_split_whole(tmp_path):
    from tunedeck.core.data import read_splits

    path = tmp_path / "play.txt"
    path.write_text(_play(120), encoding="utf-8")
    data = read_splits(load(_profile(tmp_path, "docs", {"config": TINY_GPT},
                                     {"train": str(path), "documents": "blank-line"})))
    docs = {r: list(ds["text"]) for r, ds in data.splits.items()}
    assert sum(len(d) for d in docs.values()) == 121  # the title + one per speech
    assert len(docs["validation"]) == 12 and len(docs["test"]) == 12
    assert all("\n\n" not in d for ds in docs.values() for d in ds)


def _unigram_perplexity(train_ids: np.ndarray, val_targets: np.ndarray, vocab: int) -> float:
    """Add-one smoothed unigram model of the training tokens, on the validation targets."""
    counts = np.bincount(train_ids, minlength=vocab).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(math.exp(-logp[val_targets].mean()))


def test_packed_corpus_trains_better_than_unigram(tmp_path):
    """A ~250 KB play trains packed (no row dropped, blocks of max_length tokens within each
    split), and the trained tiny GPT's validation perplexity beats a unigram model's on the
    same validation targets."""
    from tunedeck.core.cli import main
    from tunedeck.core.engine.inputs import prepare_inputs
    from tunedeck.core.runs.events import read_all

    text = _play(4500)
    assert len(text.encode()) > 200_000
    path = tmp_path / "play.txt"
    path.write_text(text, encoding="utf-8")
    gpt = dict(TINY_GPT, n_embd=64, n_positions=64)
    prof_path = _profile(tmp_path, "corpus", {"config": gpt}, {"train": str(path)},
                         max_length=64, batch_size=32, learning_rate=5e-3, log_every_steps=50,
                         eval_at_start=False)
    inputs = prepare_inputs(load(prof_path))
    tok = inputs.tokenizer
    for name, ts in (("train", inputs.train), ("validation", inputs.validation)):
        assert ts.positions is None and int(ts.lengths.max()) == 64
        assert (ts.lengths[:-1] == 64).all()  # only a split's last block is shorter
    # Each split's blocks are exactly its text's tokens + EOS: nothing dropped, nothing crossing.
    from tunedeck.core.data import read_splits

    split_text = {r: ds["text"][0] for r, ds in read_splits(load(prof_path)).splits.items()}
    for name, ts in (("train", inputs.train), ("validation", inputs.validation),
                     ("test", inputs.test)):
        want = tok(split_text[name], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert ts.ids.tolist() == want, name

    assert main(["train", str(prof_path)]) == 0
    run_dir = sorted((tmp_path / "runs").iterdir())[-1]
    evals = [e.data for e in read_all(run_dir / "events.jsonl") if e.type == "eval"
             and e.data["split"] == "validation"]
    model_ppl = evals[-1]["metrics"]["perplexity"]
    val = inputs.validation
    targets = np.concatenate([val.ids[a + 1: b] for a, b in zip(val.offsets[:-1], val.offsets[1:])])
    unigram = _unigram_perplexity(inputs.train.ids, targets, len(tok))
    print(f"validation perplexity: model {model_ppl:.2f}, unigram {unigram:.2f}")
    assert model_ppl < 0.7 * unigram, (model_ppl, unigram)
    # 'tunedeck eval' reads the corpus the way training did: the same blocks, the same number.
    from tunedeck.core.eval.run_eval import evaluate_run
    from tunedeck.core.runs.rundir import RunDir

    again = evaluate_run(RunDir(run_dir), split="validation")
    assert again.metrics["perplexity"] == pytest.approx(model_ppl, rel=1e-4)
    assert again.predictions.num_rows == len(val)


# --- instruction packing --------------------------------------------------------------------

def test_instruction_packing_keeps_attention_inside_examples(tmp_path):
    """Packed rows of a tiny Llama give each example the logits it gets alone (attention does
    not cross examples), and the loss counts the same targets as unpacked training."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tunedeck.core.data.packing import pack_examples, packed_attention_supported
    from tunedeck.core.engine.examples import TokenizedSet
    from tunedeck.core.engine.inputs import _token_features, prepare_inputs

    data = _write_jsonl(tmp_path / "chat.jsonl", _conversations(40))
    prof = load(_profile(tmp_path, "pack", {"config": TINY_GPT, "tokenizer": str(_chat_tokenizer(tmp_path))},
                         {"train": str(data), "messages_column": "messages", "dedup": False}))
    single = prepare_inputs(prof).train
    lengths = single.lengths
    from datasets import Dataset

    ds = Dataset.from_dict({
        "input_ids": [single.ids[a:b].tolist() for a, b in zip(single.offsets[:-1], single.offsets[1:])],
        "labels": [single.labels[a:b].tolist() for a, b in zip(single.label_offsets[:-1], single.label_offsets[1:])],
        "n_targets": single.n_targets.tolist(), "row": single.rows.tolist()})
    packed = TokenizedSet.from_dataset(_token_features(pack_examples(ds, 128)))
    assert len(packed) < len(single) / 2 and int(packed.lengths.max()) <= 128
    assert packed.n_targets.sum() == single.n_targets.sum()  # same targets, fewer rows
    assert sorted(packed.ids.tolist()) == sorted(single.ids.tolist())

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)).eval()
    assert packed_attention_supported(model)
    from tunedeck.core.tasks.causal_lm import CausalLMTask

    task = CausalLMTask()
    batch = {k: torch.from_numpy(v) for k, v in packed.collate(np.arange(4), 0).items()}
    with torch.no_grad():
        out = model(**task.forward_kwargs(batch)).logits
    pos = batch["position_ids"][0].tolist()
    end = int(packed.lengths[0])
    starts = [i for i, p in enumerate(pos[:end]) if p == 0]
    assert len(starts) > 1
    for a, b in zip(starts, starts[1:] + [end]):
        alone = torch.tensor([packed.ids[a:b].tolist()])
        with torch.no_grad():
            ref = model(input_ids=alone).logits
        assert torch.allclose(out[0, a:b], ref[0], atol=1e-5), (a, b)


# --- chat training end to end, generation settings ------------------------------------------

def test_packed_chat_run_trains_and_predicts_with_generation_settings(tmp_path, capsys):
    """A tiny GPT trains on packed chat data (the run says attention stays inside examples);
    predict renders the prompt with the run's ChatML template and obeys [generation]."""
    from tunedeck.core.cli import main
    from tunedeck.core.eval.generation_settings import generation_kwargs
    from tunedeck.core.eval.run_model import load_run_model
    from tunedeck.core.runs.events import read_all
    from tunedeck.core.runs.rundir import RunDir

    data = _write_jsonl(tmp_path / "chat.jsonl", _conversations(120))
    prof_path = _profile(tmp_path, "chatrun", {"config": TINY_GPT},
                         {"train": str(data), "messages_column": "messages", "packing": True},
                         epochs=3)
    text = prof_path.read_text() + '\n[generation]\nmax_new_tokens = 3\nstop = ["is"]\n'
    prof_path.write_text(text)
    assert load(prof_path).data.packing == "on"
    assert main(["train", str(prof_path)]) == 0
    run_dir = sorted((tmp_path / "runs").iterdir())[-1]
    events = read_all(run_dir / "events.jsonl")
    logs = [e.data.get("message", "") for e in events if e.type == "log"]
    assert any("attention stays inside each example" in m for m in logs), logs
    steps = [e.data["loss"] for e in events if e.type == "step"]
    assert steps[-1] < steps[0]
    rm = load_run_model(RunDir(run_dir))
    assert "<|im_start|>" in rm.tokenizer.chat_template  # auto: ChatML for messages data
    from tunedeck.core.eval.run_eval import evaluate_run

    ev = evaluate_run(RunDir(run_dir), split="test", extra_metrics=["exact_match"])
    gold = ev.predictions.column("gold").to_pylist()
    assert "exact_match" in ev.metrics and all(" is " in g or g == "you are welcome" for g in gold)
    assert all(t.startswith("system: You add numbers.") for t in ev.predictions.column("text").to_pylist())
    kw = generation_kwargs(rm.profile, rm.tokenizer)
    assert kw["max_new_tokens"] == 3 and kw["do_sample"] is False
    assert rm.tokenizer.convert_tokens_to_ids("<|im_end|>") in kw["eos_token_id"]
    capsys.readouterr()
    assert main(["predict", "--runs-dir", str(tmp_path / "runs"), "--json", run_dir.name,
                 "add 2 and 3"]) == 0
    out = json.loads(capsys.readouterr().out)
    continuation = out.get("continuation", out.get("prediction", {}).get("continuation"))
    assert continuation is not None and "is" not in continuation.split()
    assert len(rm.tokenizer(continuation, add_special_tokens=False)["input_ids"]) <= 3
    # predict --file on chat rows: each conversation is answered after its last user turn.
    from tunedeck.core.eval.batch_predict import predict_file

    asks = _write_jsonl(tmp_path / "asks.jsonl", [c[:2] for c in _conversations(4, seed=9)])
    assert predict_file(RunDir(run_dir), asks, tmp_path / "out.jsonl", progress=lambda n: None) == 4
    answers = [json.loads(line)["generation"]
               for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(answers) == 4
    assert all(len(rm.tokenizer(a, add_special_tokens=False)["input_ids"]) <= 3 for a in answers)


def test_generation_settings_for_predict_and_eval(tmp_path):
    from tunedeck.core.eval.generation_settings import cut_at_stop, generation_kwargs
    from tunedeck.core.models import train_tokenizer

    tok = train_tokenizer(iter(["a b c"] * 10), "gpt2", 300)
    base = {"config": TINY_GPT}
    greedy = generation_kwargs(load(_profile(tmp_path, "g", base, {"train": "x.jsonl"})), tok)
    assert greedy["do_sample"] is False and greedy["max_new_tokens"] == 64
    assert "temperature" not in greedy and "stop_strings" not in greedy
    p = _profile(tmp_path, "s", base, {"train": "x.jsonl"})
    p.write_text(p.read_text() + '\n[generation]\ntemperature = 0.7\ntop_p = 0.9\nstop = ["###"]\n'
                 '\n[evaluation]\nmax_new_tokens = 5\n')
    sampled = generation_kwargs(load(p), tok)
    assert (sampled["do_sample"], sampled["temperature"], sampled["top_p"]) == (True, 0.7, 0.9)
    assert sampled["stop_strings"] == ["###"] and sampled["max_new_tokens"] == 64
    assert generation_kwargs(load(p), tok, for_eval=True)["max_new_tokens"] == 5
    assert cut_at_stop("answer ### more", ["###"]) == "answer "


def test_unknown_chat_template_is_a_profile_error(tmp_path):
    from tunedeck.core.errors import ProfileError

    p = _profile(tmp_path, "tpl", {"config": TINY_GPT},
                 {"train": "x.jsonl", "messages_column": "messages", "chat_template": "llama"})
    with pytest.raises(ProfileError, match=r"data\.chat_template.*neither 'auto', 'none', a "
                                           r"built-in \(chatml, zephyr\) nor a Jinja template"):
        load(p)
    p.write_text(p.read_text().replace('"llama"', '"{{ messages[0][\'content\'] }}"'))
    assert load(p).data.chat_template.startswith("{{")
