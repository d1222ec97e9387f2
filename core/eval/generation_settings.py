"""``model.generate`` arguments from the profile's ``[generation]`` section (for eval,
``[evaluation]``'s max_new_tokens / temperature / top_p win when set), plus stop strings."""

from __future__ import annotations

from typing import Any


def generation_kwargs(profile: Any, tokenizer: Any, for_eval: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``generate``: length, greedy or sampling, where to stop."""
    from tunedeck.core.data.chat import end_of_turn_ids

    g = profile.generation
    ev = profile.evaluation

    def pick(name: str) -> Any:  # [evaluation]'s own value, when eval sets one
        own = getattr(ev, name) if for_eval else None
        return own if own is not None else getattr(g, name)

    max_new, temperature, top_p = pick("max_new_tokens"), pick("temperature"), pick("top_p")
    sample = g.do_sample or temperature > 0
    kwargs: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": sample,
                              "pad_token_id": tokenizer.pad_token_id}
    stops = end_of_turn_ids(tokenizer)
    if stops:
        kwargs["eos_token_id"] = stops if len(stops) > 1 else stops[0]
    if sample:
        kwargs.update(temperature=temperature if temperature > 0 else 1.0, top_p=top_p)
    if g.stop:
        kwargs.update(stop_strings=list(g.stop), tokenizer=tokenizer)
    return kwargs


def cut_at_stop(text: str, stop: list[str]) -> str:
    """``text`` up to the first stop string (generate keeps the stop string itself)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]
