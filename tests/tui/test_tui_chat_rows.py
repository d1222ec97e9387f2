"""The dataset browser shows a chat row (a `messages` column) as its conversation: one
'role: content' line per turn, not the JSON of the list."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tui_fakes import fake_services
from tui_helpers import wait_for

from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.datasets import DatasetsScreen
from tunedeck.tui.widgets.arrow_table import ArrowTable

pytestmark = pytest.mark.anyio


def _chat_jsonl(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i in range(5):
            conv = [{"role": "system", "content": "You add numbers."},
                    {"role": "user", "content": f"add {i} and {i}"},
                    {"role": "assistant", "content": f"{i} plus {i} is {2 * i}"}]
            f.write(json.dumps({"id": i, "messages": conv}) + "\n")
    return path


async def test_messages_row_detail_is_the_conversation(runs_dir: Path) -> None:
    path = _chat_jsonl(Path("chat.jsonl"))
    app = TunedeckApp(runs_dir, browse=str(path), services=fake_services())
    async with app.run_test(size=(80, 24)) as pilot:
        scr = await wait_for(pilot, lambda: isinstance(app.screen, DatasetsScreen)
                             and app.screen.ready and app.screen)
        table = scr.query_one(ArrowTable)
        await wait_for(pilot, lambda: table.source is not None and table.source.num_rows == 5)
        await pilot.press("down", "down")
        await pilot.pause()
        detail = str(scr.query_one("#ds-detail").render())
        assert "messages  (3 turns)" in detail
        lines = detail.splitlines()
        for want in ("system: You add numbers.", "user: add 2 and 2", "assistant: 2 plus 2 is 4"):
            assert want in lines, (want, lines)
        assert '"role"' not in detail and "{" not in detail
        shot = os.environ.get("TUNEDECK_SCREENSHOT_DIR")
        if shot:  # for a person to look at: TUNEDECK_SCREENSHOT_DIR=/tmp pytest ...
            app.save_screenshot(filename="chat_rows.svg", path=shot)
