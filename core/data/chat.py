"""Chat data: conversations as lists of {role, content}, the templates that render them, and
which characters of a rendered conversation the loss counts.

The data layer keeps a conversation as one JSON string per row (``messages_json``), so that
cleaning, dedup, splitting and the token cache treat it like any text column. The tokenizer's
``apply_chat_template`` renders it; the assistant turns are found by rendering prefix by prefix
(``chat_segments``): a template renders ``messages[:i]`` + the generation prompt as a prefix of
``messages[:i+1]``, which is a prefix of the whole conversation, so the text between the two is
assistant turn ``i``. Segments are tokenized separately and joined, which is how a prompt is
tokenized at generation time too (the prompt is exactly the segments before the answer).

Torch-free at import: the TUI renders a conversation with ``plain_conversation``.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from tunedeck.core.errors import DataError

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
ZEPHYR = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
BUILTIN_TEMPLATES = {"chatml": CHATML, "zephyr": ZEPHYR}
# Marker strings of the built-ins that should be single tokens (added when a tokenizer lacks them).
BUILTIN_MARKERS = {"chatml": ["<|im_start|>", "<|im_end|>"],
                   "zephyr": ["<|system|>", "<|user|>", "<|assistant|>"]}
# Tokens that end an assistant turn besides EOS: generation stops on them too.
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")


def template_text(setting: str) -> str | None:
    """The Jinja text of ``data.chat_template``: None for 'auto'/'none', a built-in's text, or
    the setting itself when it is a Jinja template."""
    if setting in ("auto", "none"):
        return None
    if setting in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[setting]
    if "{{" in setting or "{%" in setting:
        return setting
    raise DataError(f"data.chat_template = {setting!r} is neither 'auto', 'none', a built-in "
                    f"({', '.join(BUILTIN_TEMPLATES)}) nor a Jinja template; use one of those")


def apply_profile_template(tokenizer: Any, setting: str, messages_data: bool) -> None:
    """Give ``tokenizer`` the chat template the profile asks for (saved with the run, so that
    predict and eval render prompts the way training did)."""
    if setting == "none":
        if messages_data:
            raise DataError("data.chat_template = 'none' cannot render data.messages_column "
                            "conversations; use 'auto', 'chatml' or a Jinja template")
        tokenizer.chat_template = None
        return
    name = setting
    if setting == "auto":
        if getattr(tokenizer, "chat_template", None) or not messages_data:
            return
        name = "chatml"  # conversations need some template; ChatML is the common one
    tokenizer.chat_template = template_text(name)
    missing = [m for m in BUILTIN_MARKERS.get(name, []) if m not in tokenizer.get_vocab()]
    if missing:  # one token per marker: clean turn boundaries and a stop token for generation
        tokenizer.add_special_tokens({"additional_special_tokens": missing},
                                     replace_extra_special_tokens=False)


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """EOS plus the template's end-of-turn token, when the tokenizer has one: generation stops
    at either (a ChatML answer ends with <|im_end|>, not EOS)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if getattr(tokenizer, "chat_template", None):
        vocab = tokenizer.get_vocab()
        ids += [vocab[t] for t in END_OF_TURN if t in vocab and t in tokenizer.chat_template]
    return list(dict.fromkeys(ids))


# --- the data layer's column ------------------------------------------------------------------

def messages_json(col: pa.ChunkedArray, where: Any, key: str) -> pa.ChunkedArray:
    """A column of conversations (list of {role, content}, or their JSON text) as canonical JSON
    strings; ``where(i)`` names row ``i``'s file and line in errors."""
    out: list[str] = []
    for i, value in enumerate(col.to_pylist()):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = None
        out.append(json.dumps(check_messages(value, lambda: where(i), key), ensure_ascii=False))
    return pa.chunked_array([pa.array(out, type=pa.string())])


def check_messages(value: Any, where: Any, key: str) -> list[dict[str, str]]:
    """``value`` as a list of {"role", "content"} strings, or a DataError naming the row."""
    fix = (f"each row's {key} must be a list like [{{\"role\": \"user\", \"content\": \"...\"}}, "
           "{\"role\": \"assistant\", \"content\": \"...\"}]")
    if not isinstance(value, list) or not value:
        raise DataError(f"{where()}: the conversation is not a non-empty list of messages; {fix}")
    msgs = []
    for j, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) \
                or not isinstance(m.get("content"), str):
            raise DataError(f"{where()}: message {j + 1} needs a string 'role' and a string "
                            f"'content'; {fix}")
        msgs.append({"role": m["role"], "content": m["content"]})
    return msgs


def conversation_turns(value: Any) -> list[tuple[str, str]] | None:
    """(role, content) of each message when ``value`` is a conversation (a list of {role,
    content}, or its JSON text), else None: the browser's row detail, no tokenizer."""
    if isinstance(value, str):
        if not value.lstrip().startswith("["):
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
        return None
    return [(str(m["role"]), str(m["content"])) for m in value]


def plain_conversation(value: Any) -> str | None:
    """'role: content' lines of a conversation, None when ``value`` is not one."""
    turns = conversation_turns(value)
    return None if turns is None else "\n".join(f"{r}: {c}" for r, c in turns)


# --- rendering and the loss mask -------------------------------------------------------------

def render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    """``messages`` through the tokenizer's chat template; a template error is a DataError."""
    from jinja2 import TemplateError

    if not messages and not generation_prompt:
        return ""
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False,
                                             add_generation_prompt=generation_prompt)
    except TemplateError as e:  # e.g. raise_exception('roles must alternate') in the template
        roles = ", ".join(m["role"] for m in messages)
        raise DataError(f"the chat template refused a conversation (roles: {roles}): {e}; fix "
                        "the data, or set data.chat_template (e.g. 'chatml')") from None


def chat_segments(tokenizer: Any, messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
    """The rendered conversation cut into (text, is_assistant_turn) pieces, in order."""
    full = render(tokenizer, messages, False)
    segments: list[tuple[str, bool]] = []
    done = 0
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = render(tokenizer, messages[:i], True) if i else ""
        end = render(tokenizer, messages[: i + 1], False)
        if not (full.startswith(end) and end.startswith(start) and len(start) >= done):
            raise DataError(
                "the chat template does not render a conversation prefix by prefix (turn "
                f"{i + 1} changes earlier text), so the assistant turns cannot be located; set "
                "data.train_on = 'all' or data.chat_template = 'chatml'")
        segments += [(full[done:len(start)], False), (full[len(start):len(end)], True)]
        done = len(end)
    segments.append((full[done:], False))
    return [(t, a) for t, a in segments if t]


def tokenize_chat(tokenizer: Any, conversations: list[list[dict[str, str]]], train_on: str
                  ) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids and labels (-100 outside the counted turns) of each conversation."""
    from tunedeck.core.tasks.base import IGNORE

    pieces = [chat_segments(tokenizer, conv) for conv in conversations]
    flat = [t for segs in pieces for t, _ in segs]
    enc = tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
    ids_out, labels_out, k = [], [], 0
    for segs in pieces:
        ids: list[int] = []
        labels: list[int] = []
        for _, assistant in segs:
            part = list(enc[k])
            k += 1
            ids += part
            labels += part if (assistant or train_on == "all") else [IGNORE] * len(part)
        ids_out.append(ids)
        labels_out.append(labels)
    return ids_out, labels_out


def prompt_messages(conversation: list[dict[str, str]]) -> tuple[list[dict[str, str]], str]:
    """The turns before the last assistant turn (the prompt) and that turn's text (the
    reference an evaluation compares a generation with)."""
    last = max((i for i, m in enumerate(conversation) if m["role"] == "assistant"), default=None)
    if last is None:
        return conversation, ""
    return conversation[:last], conversation[last]["content"]
