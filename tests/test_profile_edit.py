"""Format-preserving profile edits: only changed values' lines change; the result always loads
back to exactly the wanted profile (else the canonical dump)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tunedeck.core.profile import dumps, loads
from tunedeck.core.profile.edit import update_text

TEXT = '''# my notes about this run
schema_version = 1
name = "tickets"   # short name

[task]
type = "classification"

[data]
train = "tickets.csv"
split = [
    0.8,
    0.1,
    0.1,
]  # default split

[training]
epochs = 2
learning_rate = 1e-4  # tried 5e-5 first
'''


def with_(prof, section, **kw):
    return prof.model_copy(update={section: getattr(prof, section).model_copy(update=kw)})


def test_unchanged_profile_keeps_the_text_byte_for_byte():
    assert update_text(TEXT, loads(TEXT)) == TEXT


def test_one_change_touches_one_line_and_keeps_comments():
    want = with_(loads(TEXT), "training", learning_rate=2e-4)
    out = update_text(TEXT, want)
    assert loads(out) == want
    changed = [(a, b) for a, b in zip(TEXT.splitlines(), out.splitlines()) if a != b]
    assert changed == [("learning_rate = 1e-4  # tried 5e-5 first",
                        "learning_rate = 0.0002  # tried 5e-5 first")]
    assert "epochs = 2\n" in out  # not rewritten as 2.0


def test_multiline_value_new_key_and_new_section():
    p = with_(loads(TEXT), "data", split=[0.7, 0.15, 0.15])
    p = with_(p, "training", max_steps=50)
    p = with_(p, "output", runs_dir="/tmp/elsewhere")
    out = update_text(TEXT, p)
    assert loads(out) == p
    assert "split = [0.7, 0.15, 0.15]  # default split\n" in out
    assert "learning_rate = 1e-4  # tried 5e-5 first\nmax_steps = 50\n" in out
    assert out.endswith('[output]\nruns_dir = "/tmp/elsewhere"\n')
    assert out.startswith("# my notes about this run\n")


def test_an_invalid_original_falls_back_to_the_canonical_dump():
    want = loads(TEXT)
    assert update_text("name = \n", want) == dumps(want)


@settings(max_examples=150, deadline=None)
@given(lr=st.floats(1e-7, 1.0), epochs=st.integers(1, 50), bs=st.integers(1, 512),
       name=st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True),
       runs=st.one_of(st.none(), st.text(min_size=1, max_size=30).filter(lambda s: s.strip())))
def test_any_edit_loads_back_exactly(lr, epochs, bs, name, runs):
    p = with_(loads(TEXT), "training", learning_rate=lr, epochs=float(epochs), batch_size=bs)
    p = p.model_copy(update={"name": name})
    if runs is not None:
        p = with_(p, "output", runs_dir=runs)
    assert loads(update_text(TEXT, p)) == p


def test_a_windows_file_keeps_its_line_ends_and_comments():
    text = TEXT.replace("\n", "\r\n")
    want = with_(loads(text), "training", learning_rate=2e-4)
    out = update_text(text, want)
    assert loads(out) == want
    assert out == text.replace("learning_rate = 1e-4", "learning_rate = 0.0002")
