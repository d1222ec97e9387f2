"""``[distributed] strategy = "fsdp"`` on this CPU: FSDP2 (fully_shard per transformer block and
the root) over torchrun with gloo, 2 processes (docs/distributed.md, engine/fsdp.py).

A tiny BERT trains 20 steps sharded and in one process: the loss curves agree; model/ (the full
weights gathered from both ranks' shards) loads with plain transformers and equals the
single-process weights; a sharded run is stopped (both ranks write their DCP shards, then the
COMPLETE marker), resumed, and ends with the uninterrupted sharded run's weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdhelpers import make_classification_rows, tiny_cls_profile
from test_distributed import losses, resume, start, wait_ended, wait_until, weights
from tunedeck.core.runs.rundir import RunDir

STEPS = 20
# Float sums in another order (the gradient reduce-scatter adds two ranks' halves): ~1e-7 seen.
LOSS_TOLERANCE = 1e-5
# AdamW divides each update by sqrt(v): gradients differing in the 7th digit move weights by
# up to ~1e-3 of the learning rate (1e-2) per step; 1.2e-5 seen after 20 steps.
WEIGHT_TOLERANCE = 1e-4
SLOW_STEPS = {"TUNEDECK_TEST_HOOKS": "step:*=SLEEP0.2"}  # time to stop a live run


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fsdp")
    data = d / "reviews.csv"
    with data.open("w", encoding="utf-8") as f:
        f.write("text,label\n")
        for text, label in make_classification_rows(240):
            f.write(f"{text},{label}\n")
    # dropout 0: one process and two draw different dropout masks; everything else is equal.
    prof = tiny_cls_profile(d, data, max_steps=STEPS, log_every_steps=1, dropout=0.0,
                            save_every_steps=10, learning_rate=1e-2)
    base = prof.read_text(encoding="utf-8")
    (d / "one.toml").write_text(base + "\n[distributed]\nprocesses = 1\n", encoding="utf-8")
    (d / "fsdp.toml").write_text(base + '\n[distributed]\nprocesses = 2\nstrategy = "fsdp"\n',
                                 encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def fsdp_run(work) -> RunDir:
    run = start(work / "fsdp.toml")
    assert wait_ended(run) == "finished", run.read_status()
    return run


@pytest.mark.slow
def test_fsdp_follows_the_single_process_run_and_writes_a_plain_model(work, fsdp_run, capsys,
                                                                      monkeypatch):
    from transformers import AutoModelForSequenceClassification

    from tunedeck.core.cli import main

    monkeypatch.setenv("TUNEDECK_CACHE_DIR", str(work / "token-cache"))
    capsys.readouterr()
    rc = main(["train", str(work / "one.toml")])  # one process, in this one
    out = capsys.readouterr()
    assert rc == 0, out.out[-1500:] + out.err[-1500:]
    one_run = RunDir(Path(out.out.strip().splitlines()[-1]))
    one, two = losses(one_run), losses(fsdp_run)
    assert sorted(one) == sorted(two) == list(range(1, STEPS + 1))  # same optimizer steps
    diff = max(abs(one[s] - two[s]) for s in one)
    print(f"max abs loss difference over {STEPS} steps, 1 process vs FSDP x2: {diff:.3g}")
    assert diff < LOSS_TOLERANCE
    assert one[STEPS] < one[1] - 0.01  # it learned something: the curve is not flat

    # model/: the full weights gathered from both ranks' shards, loadable by plain transformers.
    model = AutoModelForSequenceClassification.from_pretrained(str(fsdp_run.model_dir))
    a, b = weights(fsdp_run), weights(one_run)
    assert sorted(a) == sorted(b)
    wdiff = max(float((a[k] - b[k]).abs().max()) for k in b)
    print(f"max abs weight difference, 1 process vs FSDP x2 after {STEPS} steps: {wdiff:.3g}")
    assert wdiff < WEIGHT_TOLERANCE
    loaded = dict(model.state_dict())
    assert all(bool((loaded[k] == a[k]).all()) for k in a if k in loaded)
    metrics = json.loads(fsdp_run.metrics_path.read_text())
    assert abs(metrics["eval_loss"] - json.loads(one_run.metrics_path.read_text())["eval_loss"]) < 1e-4


@pytest.mark.slow
def test_fsdp_stop_writes_both_shards_and_resume_reaches_the_uninterrupted_weights(work, fsdp_run):
    from tunedeck.core.runs.lifecycle import stop_run

    run = start(work / "fsdp.toml", **SLOW_STEPS)
    wait_until(lambda: max(losses(run), default=0) >= 5)
    stop_run(run)  # what `tunedeck stop` and the TUI call
    assert wait_ended(run) == "stopped", run.read_status()
    ckpt = max(run.checkpoints_dir.glob("step-*"), key=lambda p: int(p.name[5:]))
    files = json.loads((ckpt / "COMPLETE").read_text())["files"]
    # Both ranks' shards and DCP's metadata, listed in the marker written after them.
    assert {"sharded/__0_0.distcp", "sharded/__1_0.distcp", "sharded/.metadata",
            "rng-rank1.pt"} <= set(files)
    assert "model.safetensors" not in files and "optimizer.pt" not in files
    for r in (0, 1):
        assert json.loads((run.path / ".dist" / f"rank-{r}.exit").read_text())["state"] == "stopped"

    resume(run)
    assert wait_ended(run) == "finished", run.read_status()
    assert sorted(losses(run))[-1] == STEPS
    a, b = weights(run), weights(fsdp_run)
    assert all(bool((a[k] == b[k]).all()) for k in b), "resumed weights differ"


@pytest.mark.slow
def test_fsdp_resume_with_another_process_count_reshards_with_a_warning(work, fsdp_run):
    from tunedeck.core.runs.events import read_all
    from tunedeck.core.runs.lifecycle import stop_run

    run = start(work / "fsdp.toml", **SLOW_STEPS)
    wait_until(lambda: max(losses(run), default=0) >= 3)
    stop_run(run)
    assert wait_ended(run) == "stopped", run.read_status()
    # processes = "auto" on a machine with another GPU count does this to a frozen profile.
    frozen = run.profile_path.read_text(encoding="utf-8")
    run.profile_path.write_text(frozen.replace("processes = 2", "processes = 3"), encoding="utf-8")
    resume(run)  # DCP reads the 2-way shards into 3-way ones
    assert wait_ended(run) == "finished", run.read_status()
    warnings = [e.data["message"] for e in read_all(run.events_path)
                if e.type == "log" and e.data.get("level") == "warning"]
    assert any("written by 2 process(es), this run has 3" in w for w in warnings), warnings
    assert sorted(losses(run))[-1] == STEPS
    # dropout 0: the same global batches, so the same weights up to float summation order.
    a, b = weights(run), weights(fsdp_run)
    wdiff = max(float((a[k] - b[k]).abs().max()) for k in b)
    print(f"max abs weight difference, FSDP x2 -> stop -> x3 vs FSDP x2: {wdiff:.3g}")
    assert wdiff < WEIGHT_TOLERANCE


def test_fsdp_across_machines_is_refused_before_making_a_run(work, capsys):
    from tunedeck.core.cli import main

    prof = work / "fsdp-nodes.toml"
    prof.write_text((work / "fsdp.toml").read_text(encoding="utf-8").replace(
        "processes = 2\n", "processes = 2\nnodes = 2\n"), encoding="utf-8")
    runs_before = set((work / "runs").glob("*")) if (work / "runs").is_dir() else set()
    capsys.readouterr()
    assert main(["start", str(prof)]) == 2
    err = capsys.readouterr().err
    assert "distributed.strategy = 'fsdp' with nodes = 2" in err and "strategy = 'ddp'" in err
    assert (set((work / "runs").glob("*")) if (work / "runs").is_dir() else set()) == runs_before
