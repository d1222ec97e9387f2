"""The dataset browser, by keys: open, page through, detail pane, filter, stats, errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tui_helpers import wait_for
from tui_fakes import fake_services

from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.datasets import DatasetsScreen
from tunedeck.tui.screens.dialogs import MessageDialog, PromptDialog
from tunedeck.tui.widgets.arrow_table import ArrowTable

pytestmark = pytest.mark.anyio


def make_parquet(path: Path, n: int) -> Path:
    labels = ["ham", "spam", "eggs"]
    pq.write_table(pa.table({"label": [labels[i % 3] for i in range(n)],
                             "text": [f"message number {i} " + "x" * (i % 50) for i in range(n)]}),
                   path, row_group_size=50_000)
    return path


async def test_open_and_page_through_a_big_file(runs_dir: Path) -> None:
    path = make_parquet(Path("big.parquet"), 200_000)
    app = TunedeckApp(runs_dir, browse=str(path), services=fake_services())
    async with app.run_test(size=(80, 24)) as pilot:
        scr = await wait_for(pilot, lambda: isinstance(app.screen, DatasetsScreen) and app.screen.ready and app.screen)
        await wait_for(pilot, lambda: scr.stats is not None)  # layout settled
        await pilot.pause()
        table = scr.query_one(ArrowTable)
        assert table.source.num_rows == 200_000
        page = table.page_height
        await pilot.press("pagedown")
        assert table.cursor_row == page
        await pilot.press("pagedown", "pagedown", "down")
        assert table.cursor_row == 3 * page + 1
        assert table.visible_rows()[0] <= table.cursor_row <= table.visible_rows()[-1]
        detail = str(scr.query_one("#ds-detail").render())
        assert f"message number {3 * page + 1} " in detail
        await pilot.press("end")
        assert table.cursor_row == 199_999
        assert "message number 199999" in str(scr.query_one("#ds-detail").render())
        # Only windows of rows were read, never the whole table.
        assert table.fetches < 20
        await pilot.press("home")
        assert table.cursor_row == 0 and table.scroll_y == 0


async def test_filter_and_stats(runs_dir: Path) -> None:
    path = Path("d.csv")
    path.write_text("text,label\nfree prize,spam\nhello,ham\nFREE entry,spam\nhello,ham\n,ham\n")
    app = TunedeckApp(runs_dir, browse=str(path), services=fake_services())
    async with app.run_test(size=(120, 40)) as pilot:
        scr = await wait_for(pilot, lambda: isinstance(app.screen, DatasetsScreen) and app.screen.ready and app.screen)
        await wait_for(pilot, lambda: scr.stats is not None)
        st = scr.stats
        assert (st.num_rows, st.duplicates, st.empty_text, dict(st.labels)) == (5, 1, 1, {"ham": 3, "spam": 2})
        await pilot.press("slash", *"free", "enter")
        table = scr.query_one(ArrowTable)
        await wait_for(pilot, lambda: table.source.num_rows == 2)
        assert [table.source.source_row(i) for i in range(2)] == [0, 2]
        assert "2 match" in str(scr.query_one("#ds-info").render())
        assert "the filter 'free' applies to Rows" in str(scr.query_one("#ds-stats").render())
        await pilot.press("escape")
        assert table.source.num_rows == 5
        await pilot.press("i")
        stats_text = str(scr.query_one("#ds-stats").render())
        assert "applies to Rows" not in stats_text
        assert "duplicate rows" in stats_text and "Label balance" in stats_text and "Split preview" in stats_text
        from textual.widgets import TabbedContent

        assert scr.query_one(TabbedContent).active == "stats"
        await pilot.press("i")  # the same key goes back to the rows
        assert scr.query_one(TabbedContent).active == "rows"
        # The detail pane puts short values (the label) first, the long text after.
        detail = str(scr.query_one("#ds-detail").render())
        assert detail.splitlines()[0].startswith("row ") and "label:" in detail.splitlines()[0]
        # A filter typed on one file does not linger over the next one opened.
        await pilot.press("slash", *"free", "enter")
        await wait_for(pilot, lambda: table.source.num_rows == 2)
        other = Path("other.csv")
        other.write_text("text,label\nx,a\ny,b\nz,a\n")
        scr.open_path(other)
        await wait_for(pilot, lambda: table.source is not None and table.source.num_rows == 3)
        from textual.widgets import Input

        inp = scr.query_one("#ds-filter", Input)
        assert inp.value == "" and not inp.display and scr.filter_text == ""


async def test_unreadable_file_is_an_error_panel(runs_dir: Path) -> None:
    bad = Path("bad.jsonl")
    bad.write_text('{"text": "ok"}\n{"text": broken\n')
    app = TunedeckApp(runs_dir, browse=str(bad), services=fake_services())
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MessageDialog) and app.screen.query("#message"))
        assert "bad.jsonl:2" in str(app.screen.query_one("#message").render())


async def test_open_from_the_runs_screen_with_the_picker(runs_dir: Path) -> None:
    Path("d.tsv").write_text("label\ttext\na\tone\nb\ttwo\n")
    app = TunedeckApp(runs_dir, services=fake_services())
    async with app.run_test() as pilot:
        await pilot.press("b")
        assert isinstance(app.screen, PromptDialog)
        await pilot.press(*"d.tsv", "enter")
        scr = await wait_for(pilot, lambda: isinstance(app.screen, DatasetsScreen) and app.screen.ready and app.screen)
        await wait_for(pilot, lambda: scr.source is not None)
        assert scr.source.num_rows == 2
        await pilot.press("escape")
        assert not isinstance(app.screen, DatasetsScreen)


def make_tokenizer(path: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "hello": 1, "free": 2, "prize": 3}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


async def test_token_lengths_with_a_chosen_tokenizer(runs_dir: Path) -> None:
    Path("d.csv").write_text("text,label\nfree prize now,spam\nhello,ham\nhello there you all,ham\n")
    make_tokenizer(Path("tokenizer.json"))
    app = TunedeckApp(runs_dir, browse="d.csv", services=fake_services())
    async with app.run_test(size=(100, 30)) as pilot:
        scr = await wait_for(pilot, lambda: isinstance(app.screen, DatasetsScreen) and app.screen.stats is not None and app.screen)
        await pilot.press("t")
        assert isinstance(app.screen, PromptDialog)
        await pilot.press(*"tokenizer.json", "enter")
        await wait_for(pilot, lambda: scr.stats.tokens)
        assert (scr.stats.tokens["min"], scr.stats.tokens["max"]) == (1, 4)
        assert "Text length (tokens" in str(scr.query_one("#ds-stats").render())


async def test_leaving_the_browser_deletes_its_copy(runs_dir: Path) -> None:
    Path("d.csv").write_text("text,label\na,b\n")
    app = TunedeckApp(runs_dir, browse="d.csv", services=fake_services())
    async with app.run_test() as pilot:
        scr = await wait_for(pilot, lambda: isinstance(app.screen, DatasetsScreen) and app.screen.stats is not None and app.screen)
        copy = scr.opened.scratch
        assert copy is not None and copy.exists()
        await pilot.press("escape")
        await pilot.pause()
        assert not copy.exists()


async def test_the_profiles_data_encoding_opens_a_latin1_file_as_training_reads_it(runs_dir: Path) -> None:
    """The editor's valid profile gives the browser its data.encoding: a Latin-1 file opens
    (not 'is not UTF-8') with the texts training would see."""
    from tunedeck.core.profile.io import load
    from tunedeck.tui.quick_head import quick_head
    from tunedeck.tui.screens.editor import EditorScreen

    data = Path("l.csv")
    data.write_bytes("text,label\ncaf\xe9 cr\xe8me,a\nna\xefve,b\n".encode("latin-1"))
    prof = Path("p.toml")
    prof.write_text('schema_version = 1\nname = "latin"\n\n[task]\ntype = "classification"\n\n'
                    '[data]\ntrain = "l.csv"\nencoding = "latin-1"\n')
    assert load(prof).data.encoding == "latin-1"
    app = TunedeckApp(runs_dir, profile=str(prof), services=fake_services())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen) and app.screen.ready
                       and app.screen.valid_profile is not None)
        assert app.profile_columns()["encoding"] == "latin-1"
        app.open_dataset(data)
        scr = await wait_for(pilot, lambda: isinstance(app.screen, DatasetsScreen) and app.screen.stats is not None
                             and app.screen)
        assert scr.opened.table.column("text").to_pylist() == ["café crème", "naïve"]
        assert scr.query_one(ArrowTable).source.row(0)["text"] == "café crème"
        assert "2 rows" in str(scr.query_one("#ds-info").render())
    # Bytes that are valid UTF-8 mean something else in Latin-1: no UTF-8 quick head then.
    data.write_bytes(b"text,label\n\xc3\xa9t\xc3\xa9,a\n")
    assert quick_head(data, "csv") is not None
    assert quick_head(data, "csv", encoding="latin-1") is None
