"""A real launch: the editor starts a tiny run through ``python -m tunedeck.core.cli start`` and the
dashboard follows the real worker until it finishes.

Guarded: it needs the training engine (``tunedeck.core.runs.worker``, ``tunedeck.core.cli``) from the foundation
work. Without them it is skipped (found with importlib.util.find_spec, which does not import
torch into this process). Marked slow: a real worker imports torch (several seconds here).
"""

from __future__ import annotations

import importlib.util
import random
import time
from pathlib import Path

import pytest
from tui_helpers import wait_for

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

if importlib.util.find_spec("tunedeck.core.runs.worker") is None or importlib.util.find_spec("tunedeck.core.cli") is None:
    pytest.skip("needs the training engine (tunedeck.core.runs.worker, tunedeck.core.cli)", allow_module_level=True)

from tunedeck.core.profile import load  # noqa: E402
from tunedeck.tui.app import TunedeckApp  # noqa: E402
from tunedeck.tui.screens.dashboard import DashboardScreen  # noqa: E402
from tunedeck.tui.screens.editor import EditorScreen  # noqa: E402
from tunedeck.tui.services import Services  # noqa: E402

PROFILE = """schema_version = 1
name = "e2e"

[task]
type = "classification"

[model]
config = {{model_type = "bert", hidden_size = 32, num_hidden_layers = 1, num_attention_heads = 2, intermediate_size = 37, vocab_size = 400, max_position_embeddings = 64}}

[data]
train = "{data}"

[training]
epochs = 2
batch_size = 16
max_length = 32
log_every_steps = 1
learning_rate = 0.001
"""


async def test_launch_from_the_editor_and_watch_the_dashboard_advance(runs_dir: Path) -> None:
    rng = random.Random(0)
    data = Path("d.csv").resolve()
    with data.open("w") as f:
        f.write("text,label\n")
        for _ in range(200):
            lab = rng.choice(["pos", "neg"])
            f.write(" ".join(rng.choices(["good", "bad", "film", "plot"], k=8)) + f" {lab},{lab}\n")
    prof = Path("tiny.toml")
    prof.write_text(PROFILE.format(data=data))
    load(prof)  # the profile is valid before we start
    app = TunedeckApp(runs_dir, profile=str(prof), services=Services(events_poll_s=0.25))
    async with app.run_test(size=(100, 30)) as pilot:
        ed = await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen) and app.screen.ready and app.screen)
        await pilot.press("f5")  # launch: the file on disk is unchanged, so it starts at once
        dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.ready
                              and app.screen, timeout=120)
        assert dash.run.path.parent.resolve() == runs_dir.resolve()
        await wait_for(pilot, lambda: dash.view.step > 0, timeout=240)
        first = dash.view.step
        t0 = time.monotonic()
        await wait_for(pilot, lambda: dash.state == "finished", timeout=240)
        assert dash.view.step > first or time.monotonic() - t0 < 1
        assert dash.view.step == dash.view.total > 0
        assert dash.view.loss.xs and dash.view.eval_loss.xs
        _ = ed
