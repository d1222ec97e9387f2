"""The try-it box with a really trained tiny classifier: the helper process loads the model, the
TUI shows the label distribution, and the TUI process never imports torch (checked in a fresh
interpreter, since this test process may have imported it for other tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tdhelpers import TUNEDECK, cli_env, make_classification_rows, tiny_cls_profile

HEAVY = ("torch", "transformers", "datasets", "accelerate", "evaluate", "safetensors")

SCRIPT = textwrap.dedent('''
    import asyncio, json, os, sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from tui_fakes import fake_services
    from tui_helpers import screen_text, wait_for
    from textual.widgets import Input
    from tunedeck.tui.app import TunedeckApp
    from tunedeck.tui.screens.try_it import TryItScreen

    async def main():
        app = TunedeckApp(Path("runs"), services=fake_services())
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: getattr(app.screen, "rows", None))
            await pilot.press("t")
            await wait_for(pilot, lambda: isinstance(app.screen, TryItScreen) and app.screen.loaded, 120)
            screen = app.screen
            await pilot.press(*"great love wonderful", "enter")
            await wait_for(pilot, lambda: screen.last_reply is not None, 60)
            if os.environ.get("TUNEDECK_SHOTS"):
                app.save_screenshot("try-it-80x24.svg", os.environ["TUNEDECK_SHOTS"])
            text = screen_text(app)
            reply = screen.last_reply
            await pilot.press("escape")
            helper = screen.client.proc
        print(json.dumps({{"reply": reply, "text": text, "helper_gone": helper is None,
                          "modules": sorted(sys.modules)}}))

    asyncio.run(main())
''')


def test_try_it_with_a_real_model_in_a_helper_process(tmp_path: Path) -> None:
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in make_classification_rows(160)))
    prof = tiny_cls_profile(tmp_path, data, epochs=4)
    env = cli_env(tmp_path)
    train = subprocess.run(TUNEDECK + ["train", str(prof)], cwd=tmp_path, env=env, text=True,
                           capture_output=True, timeout=300)
    assert train.returncode == 0, train.stderr[-2000:]
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(tests=str(Path(__file__).parent))],
                          cwd=tmp_path, env={**env, "TZ": "UTC"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    reply = out["reply"]
    assert set(reply["probabilities"]) == {"neg", "pos"}
    assert reply["label"] == max(reply["probabilities"], key=reply["probabilities"].get)
    assert "neg" in out["text"] and "pos" in out["text"] and "%" in out["text"]
    assert out["helper_gone"]  # closing the box stopped the helper
    heavy = [m for m in out["modules"] if m.split(".")[0] in HEAVY]
    assert heavy == [], f"the TUI process imported {heavy[:10]}"
    if os.environ.get("TUNEDECK_SHOTS"):
        print(out["text"])
