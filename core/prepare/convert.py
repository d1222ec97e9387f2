"""``tunedeck data convert``: another format, renamed and mapped columns, chat <-> pairs.

Mapping syntax (``--map``, repeatable): ``NEW=COL`` copies a column under a new name;
``NEW=A+B+C`` joins columns A, B, C with a blank line between the non-empty ones (Alpaca's
``prompt=instruction+input``). Columns a mapping reads are dropped from the output (they were
moved), unless ``keep_sources``. ``--rename OLD=NEW`` renames in place. Renames apply first,
then mappings, then the chat conversion.

Chat: ``to-pairs`` turns a ``messages`` list ([{role, content}, ...]) into ``prompt`` +
``response``: the response is the last assistant turn, the prompt the turn before it (a system
message is put in front of it, separated by a blank line); with more turns before, the prompt is
every earlier turn as ``role: content`` lines. ``from-pairs`` does the reverse (an optional
system message first).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from tunedeck.core.errors import DataError
from tunedeck.core.prepare.report import OpReport
from tunedeck.core.prepare.runner import run_streaming
from tunedeck.core.prepare.streaming import Progress
from tunedeck.core.prepare.textops import as_text

JOIN = "\n\n"


@dataclass(frozen=True)
class ConvertOptions:
    renames: tuple[tuple[str, str], ...] = ()
    maps: tuple[tuple[str, tuple[str, ...]], ...] = ()
    chat: str | None = None  # "to-pairs" | "from-pairs"
    messages_column: str = "messages"
    system: str | None = None  # from-pairs: a system message put first
    keep_sources: bool = False

    def options(self) -> dict[str, Any]:
        return {"rename": [f"{a}={b}" for a, b in self.renames],
                "map": [f"{n}={'+'.join(s)}" for n, s in self.maps], "chat": self.chat,
                "messages_column": self.messages_column, "system": self.system,
                "keep_sources": self.keep_sources}


def parse_pairs(items: list[str] | None, flag: str) -> list[tuple[str, str]]:
    out = []
    for item in items or []:
        left, sep, right = item.partition("=")
        if not sep or not left.strip() or not right.strip():
            raise DataError(f"{flag} {item!r}: use NAME=VALUE, e.g. {flag} "
                            + ("text=sentence" if flag == "--rename" else "prompt=instruction+input"))
        out.append((left.strip(), right.strip()))
    return out


def parse_maps(items: list[str] | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((new, tuple(c.strip() for c in src.split("+") if c.strip()))
                 for new, src in parse_pairs(items, "--map"))


def _need(table: pa.Table, col: str, flag: str, src: str) -> None:
    if col not in table.column_names:
        raise DataError(f"{src}: has no column {col!r} ({flag}); its columns are: "
                        f"{', '.join(table.column_names)}")


def convert_table(table: pa.Table, o: ConvertOptions, src: str) -> pa.Table:
    for old, new in o.renames:
        _need(table, old, "--rename", src)
        table = table.rename_columns([new if c == old else c for c in table.column_names])
    used: set[str] = set()
    for new, sources in o.maps:
        for c in sources:
            _need(table, c, "--map", src)
        table = _set(table, new, _join([as_text(table.column(c)) for c in sources]))
        used.update(c for c in sources if c != new)
    if used and not o.keep_sources:
        table = table.drop_columns([c for c in used if c not in {n for n, _ in o.maps}])
    if o.chat == "to-pairs":
        _need(table, o.messages_column, "--messages-column", src)
        table = _to_pairs(table, o.messages_column, src)
    elif o.chat == "from-pairs":
        for c in ("prompt", "response"):
            _need(table, c, "--chat from-pairs", src)
        table = _from_pairs(table, o.system)
    return table


def _set(table: pa.Table, name: str, col: Any) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, col)
    return table.append_column(name, col)


def _join(cols: list[Any]) -> Any:
    """Non-empty values joined by a blank line (an empty "input" adds nothing)."""
    if len(cols) == 1:
        return cols[0]
    out = pc.fill_null(cols[0], "")
    for c in cols[1:]:
        c = pc.fill_null(c, "")
        both = pc.and_(pc.not_equal(out, ""), pc.not_equal(c, ""))
        out = pc.if_else(both, pc.binary_join_element_wise(out, c, JOIN),
                         pc.binary_join_element_wise(out, c, ""))
    return out


def chat_to_pair(messages: list[dict[str, Any]] | None, where: str) -> tuple[str, str]:
    turns = [m for m in (messages or []) if isinstance(m, dict)]
    last = max((i for i, m in enumerate(turns) if m.get("role") == "assistant"), default=None)
    if last is None or last == 0:
        raise DataError(f"{where}: the messages hold no assistant turn after a user turn; each "
                        "conversation needs one to become a prompt/response pair")
    before = turns[:last]
    system = [str(m.get("content", "")) for m in before if m.get("role") == "system"]
    rest = [m for m in before if m.get("role") != "system"]
    if len(rest) == 1:
        prompt = JOIN.join([*system, str(rest[0].get("content", ""))])
    else:
        prompt = "\n".join(f"{m.get('role')}: {m.get('content', '')}" for m in before)
    return prompt, str(turns[last].get("content", ""))


def _to_pairs(table: pa.Table, column: str, src: str) -> pa.Table:
    prompts, responses = [], []
    for i, messages in enumerate(table.column(column).to_pylist()):
        p, r = chat_to_pair(messages, f"{src} (row {i + 1})")
        prompts.append(p)
        responses.append(r)
    table = table.drop_columns([column])
    return _set(_set(table, "prompt", pa.array(prompts, pa.string())), "response",
                pa.array(responses, pa.string()))


def _from_pairs(table: pa.Table, system: str | None) -> pa.Table:
    rows = []
    for p, r in zip(table.column("prompt").to_pylist(), table.column("response").to_pylist()):
        turns = [{"role": "system", "content": system}] if system else []
        rows.append(turns + [{"role": "user", "content": p or ""},
                             {"role": "assistant", "content": r or ""}])
    table = table.drop_columns(["prompt", "response"])
    return table.append_column("messages", pa.array(rows))


def convert_file(src: str | Path, out: str | Path | None = None, fmt: str | None = None,
                 options: ConvertOptions | None = None, dry_run: bool = False,
                 progress: Progress | None = None) -> OpReport:
    """Convert ``src`` into ``out`` (default: beside it, named by ``fmt``)."""
    o = options or ConvertOptions()
    src = Path(src)

    def transform(batches: Iterator[pa.RecordBatch], report: OpReport
                  ) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            table = convert_table(pa.Table.from_batches([batch]), o, str(src))
            report.rows_in += batch.num_rows
            report.rows_out += table.num_rows
            for i, (b, a) in enumerate(zip(batch.slice(0, 3).to_pylist(),
                                           table.slice(0, 3).to_pylist())):
                if report.rows_in - batch.num_rows == 0:
                    report.add_preview(i + 1, b, a, "converted")
            yield from table.combine_chunks().to_batches()
        report.changed = report.rows_out if (o.renames or o.maps or o.chat) else 0

    suffix = "" if fmt and out is None else "converted"
    return run_streaming("convert", src, out, fmt, dry_run, progress, transform, o.options(),
                         suffix=suffix)
