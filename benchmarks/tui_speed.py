"""How fast the TUI is: start-up to first painted screen, the dataset browser on a million rows,
and what an attached dashboard costs a training worker.

    python benchmarks/tui_speed.py                  # start-up + 1M-row CSV/Parquet browser
    python benchmarks/tui_speed.py --rows 200000    # smaller files
    python benchmarks/tui_speed.py --attach-cost    # also: worker throughput with/without a TUI

Each measurement runs in a fresh process (so resident memory is the browser's own), and each
table has a peer measured the same way for a ratio: a bare Textual app for start-up, pyarrow
reading the whole file for first rows, Textual's own DataTable for paging.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import select
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           TERM="xterm-256color", COLUMNS="80", LINES="24")


# --- start-up: spawn under a pseudo-terminal, wait for the first frame -----------------------

def time_to_paint(cmd: list[str], marker: bytes, cwd: Path, timeout: float = 30.0) -> float:
    """Seconds from spawn until ``marker`` appears on the terminal; then quit the app."""
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=ENV,
                            start_new_session=True)
    os.close(slave)
    buf = b""
    elapsed = float("nan")
    try:
        while time.perf_counter() - t0 < timeout:
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                buf += chunk
                if marker in _strip_ansi(buf):
                    elapsed = time.perf_counter() - t0
                    break
        os.write(master, b"\x11")  # ctrl+q
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    finally:
        os.close(master)
    return elapsed


def spawn(cmd: list[str], cwd: Path) -> tuple[subprocess.Popen[bytes], int]:
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=ENV,
                            start_new_session=True)
    os.close(slave)
    os.set_blocking(master, False)
    return proc, master


def drain(master: int, quiet: float, timeout: float) -> tuple[bytes, float | None, float | None]:
    """Read until the terminal is quiet for ``quiet`` s: (bytes, first byte at, last byte at)."""
    t0 = time.perf_counter()
    first = last = None
    buf = b""
    while time.perf_counter() - t0 < timeout:
        r, _, _ = select.select([master], [], [], quiet)
        if not r:
            if first is not None:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        now = time.perf_counter() - t0
        first = now if first is None else first
        last = now
        buf += chunk
    return buf, first, last


def proc_mem(pid: int) -> dict[str, float]:
    d = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k = line.split(":")[0]
            if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                d[k] = int(line.split()[1]) / 1024
    return d


def browse_in_terminal(path: Path, cwd: Path, presses: int = 30) -> dict:
    """``tunedeck browse FILE`` in an 80x24 pseudo-terminal: first rows, page-down, memory."""
    t0 = time.perf_counter()
    proc, master = spawn([sys.executable, "-m", "tunedeck.tui", "--runs-dir", "runs", "browse", str(path)], cwd)
    out: dict = {}
    buf = b""
    try:
        while time.perf_counter() - t0 < 60:
            b, _, _ = drain(master, 0.02, 0.5)
            buf += b
            # "first 1,000 rows …" / "1,000,000 rows": a count, so the empty table's "(no rows)"
            # (the screen's first paint, before any data) does not count as first rows.
            if re.search(rb"\d rows", _strip_ansi(buf)):
                out["first_rows_s"] = time.perf_counter() - t0
                break
        drain(master, 2.0, 120)  # loading and statistics finish, the screen goes quiet
        out["mem_loaded"] = proc_mem(proc.pid)
        firsts, lasts = [], []
        for _ in range(presses):
            os.write(master, b"\x1b[6~")  # PageDown
            _, f, last = drain(master, 0.05, 2)
            if f is not None:
                firsts.append(f)
                lasts.append(last)
        out["key_first_ms"] = [statistics.median(firsts) * 1000, max(firsts) * 1000]
        out["key_settled_ms"] = [statistics.median(lasts) * 1000, max(lasts) * 1000]
        out["mem_paged"] = proc_mem(proc.pid)
        os.write(master, b"\x11")
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return out


def _strip_ansi(b: bytes) -> bytes:
    import re

    return re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", b)


BARE_APP = textwrap.dedent("""
    from textual.app import App
    from textual.widgets import Footer, Header, Static
    class Bare(App):
        BINDINGS = [("ctrl+q", "quit", "Quit")]
        def compose(self):
            yield Header()
            yield Static("hello")
            yield Footer()
    Bare().run()
""")


def bench_startup(repeats: int) -> list[tuple[str, str, str]]:
    work = Path(tempfile.mkdtemp(prefix="tunedeck-bench-"))
    (work / "runs").mkdir()
    tui = [time_to_paint([sys.executable, "-m", "tunedeck.tui", "--runs-dir", "runs"], b"No runs yet", work)
           for _ in range(repeats)]
    bare = [time_to_paint([sys.executable, "-c", BARE_APP], b"hello", work) for _ in range(repeats)]
    probe = subprocess.run([sys.executable, "-c", "import sys, tunedeck.tui.app; print(int('torch' in sys.modules))"],
                           env=ENV, capture_output=True, text=True, cwd=work)
    t, b = statistics.median(tui), statistics.median(bare)
    return [
        ("tunedeck to first painted screen (median of %d)" % repeats, f"{t * 1000:.0f} ms", "target ≤ 500 ms"),
        ("peer: bare Textual app (Header/Static/Footer)", f"{b * 1000:.0f} ms", f"ratio {t / b:.2f}×"),
        ("torch imported by the TUI", "yes" if probe.stdout.strip() == "1" else "no", "must be no"),
    ]


# --- the dataset browser ---------------------------------------------------------------------

def make_files(rows: int, folder: Path) -> dict[str, Path]:
    import random

    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    rng = random.Random(0)
    words = ("the a model data train loss free win call now please ok lar joking great world text "
             "message reply prize claim urgent mobile week").split()
    labels = ["ham", "spam", "other"]
    out = {}
    chunk = 100_000
    csv_path = folder / f"gen-{rows}.csv"
    pq_path = folder / f"gen-{rows}.parquet"
    writer = None
    with open(csv_path, "wb") as f:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            t = pa.table({"label": [labels[rng.randrange(3)] for _ in range(n)],
                          "text": [" ".join(rng.choices(words, k=rng.randint(3, 40))) for _ in range(n)]})
            pcsv.write_csv(t, f, pcsv.WriteOptions(include_header=start == 0))
            if writer is None:
                writer = pq.ParquetWriter(pq_path, t.schema)
            writer.write_table(t, row_group_size=chunk)
    writer.close()
    out["csv"], out["parquet"] = csv_path, pq_path
    return out


BROWSE = textwrap.dedent("""
    import asyncio, json, statistics, sys, time
    t_start = time.perf_counter()
    from pathlib import Path
    from tunedeck.tui.app import TunedeckApp
    from tunedeck.tui.screens.datasets import DatasetsScreen
    from tunedeck.tui.widgets.arrow_table import ArrowTable

    def mem():
        d = {}
        for line in open("/proc/self/status"):
            k = line.split(":")[0]
            if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                d[k] = int(line.split()[1]) / 1024
        return d

    async def main():
        app = TunedeckApp(Path("runs"), browse=sys.argv[1])
        out = {}
        async with app.run_test(size=(80, 24)) as pilot:
            scr = None
            while not (isinstance(app.screen, DatasetsScreen) and app.screen.first_rows_ms):
                await pilot.pause(0.005)
            scr = app.screen
            out["first_rows_s"] = time.perf_counter() - t_start
            out["first_rows_after_open_ms"] = scr.first_rows_ms
            while scr.source is None:
                await pilot.pause(0.01)
            out["loaded_s"] = time.perf_counter() - t_start
            out["rows"] = scr.source.num_rows
            while scr.stats is None:
                await pilot.pause(0.01)
            out["stats_s"] = time.perf_counter() - t_start
            import pyarrow as pa
            pa.default_memory_pool().release_unused()
            out["mem_loaded"] = mem()
            table = scr.query_one(ArrowTable)
            table.focus()
            await pilot.pause()
            # The widget's own work for one page: fetch the window and render every line.
            direct = []
            h = table.size.height
            for i in range(200):
                t = time.perf_counter()
                table.action_page(1)
                for y in range(h):
                    table.render_line(y)
                direct.append(time.perf_counter() - t)
            table.action_jump(-1)
            await pilot.pause()
            jumps = []
            for r in (0, out["rows"] // 2, out["rows"] - 1, out["rows"] // 3):
                t = time.perf_counter()
                table.cursor_row = r
                for y in range(h):
                    table.render_line(y)
                jumps.append(time.perf_counter() - t)
            out["pagedown_direct_ms"] = [statistics.median(direct) * 1000, max(direct) * 1000]
            out["jump_ms"] = max(jumps) * 1000
            out["mem_paged"] = mem()
        print("RESULT " + json.dumps(out))

    asyncio.run(main())
""")

DATATABLE_PEER = textwrap.dedent("""
    import asyncio, json, sys, time
    import pyarrow.csv as pcsv
    from textual.app import App
    from textual.widgets import DataTable
    rows = pcsv.read_csv(sys.argv[1]).slice(0, int(sys.argv[2])).to_pylist()
    class T(App):
        def compose(self):
            yield DataTable()
    async def main():
        app = T()
        async with app.run_test(size=(80, 24)) as pilot:
            t = time.perf_counter()
            dt = app.query_one(DataTable)
            dt.add_columns("label", "text")
            dt.add_rows([(r["label"], r["text"]) for r in rows])
            await pilot.pause()
            build = time.perf_counter() - t
            dt.focus()
            keys = []
            for _ in range(20):
                t = time.perf_counter()
                await pilot.press("pagedown")
                keys.append(time.perf_counter() - t)
        keys.sort()
        print("RESULT " + json.dumps({"build_s": build, "pagedown_ms": keys[len(keys) // 2] * 1000}))
    asyncio.run(main())
""")

PYARROW_PEER = textwrap.dedent("""
    import json, sys, time
    t = time.perf_counter()
    import pyarrow.csv as pcsv, pyarrow.parquet as pq
    p = sys.argv[1]
    tab = pq.read_table(p) if p.endswith(".parquet") else pcsv.read_csv(p)
    rows = tab.slice(0, 24).to_pylist()
    print("RESULT " + json.dumps({"s": time.perf_counter() - t}))
""")


def run_script(script: str, *args: str, cwd: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", script, *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-3000:]}")


def bench_browser(rows: int, small: int) -> list[tuple[str, str, str]]:
    folder = Path(tempfile.mkdtemp(prefix="tunedeck-bench-data-"))
    (folder / "runs").mkdir()
    t = time.perf_counter()
    big = make_files(rows, folder)
    little = make_files(small, folder)
    print(f"(generated {rows:,}- and {small:,}-row files in {time.perf_counter() - t:.1f}s; "
          f"CSV {big['csv'].stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
    out: list[tuple[str, str, str]] = []
    for fmt in ("csv", "parquet"):
        term = browse_in_terminal(big[fmt], folder)
        term_small = browse_in_terminal(little[fmt], folder)
        r = run_script(BROWSE, str(big[fmt]), cwd=folder)
        peer = run_script(PYARROW_PEER, str(big[fmt]), cwd=folder)
        name = f"{rows:,}-row {fmt.upper()}"
        out += [
            (f"{name}: `tunedeck browse` to first rows on screen", f"{term['first_rows_s'] * 1000:.0f} ms",
             f"target ≤ 1000 ms; {r['first_rows_after_open_ms']:.0f} ms after the screen opened"),
            ("  peer: pyarrow reads the whole file, first 24 rows", f"{peer['s'] * 1000:.0f} ms",
             f"ratio {term['first_rows_s'] / peer['s']:.2f}×"),
            ("  all rows mapped / statistics done (in workers)", f"{r['loaded_s']:.2f} s / {r['stats_s']:.2f} s",
             f"{r['rows']:,} rows"),
            ("  page-down in the terminal: table repainted (median / max)",
             f"{term['key_first_ms'][0]:.1f} / {term['key_first_ms'][1]:.1f} ms", "target ≤ 50 ms"),
            ("  page-down in the terminal: screen settled (detail pane too)",
             f"{term['key_settled_ms'][0]:.1f} / {term['key_settled_ms'][1]:.1f} ms", ""),
            ("  page-down, widget work: fetch + render the lines (median / max)",
             f"{r['pagedown_direct_ms'][0]:.2f} / {r['pagedown_direct_ms'][1]:.2f} ms",
             f"jump anywhere ≤ {r['jump_ms']:.2f} ms"),
            (f"  heap (RssAnon) after load+stats+paging: {small:,} vs {rows:,} rows",
             f"{term_small['mem_paged']['RssAnon']:.0f} vs {term['mem_paged']['RssAnon']:.0f} MB",
             f"+ file-backed mapped pages {term['mem_paged']['RssFile']:.0f} MB; peak RSS {term['mem_paged']['VmHWM']:.0f} MB"),
        ]
    peer = run_script(DATATABLE_PEER, str(big["csv"]), "20000", cwd=folder)
    out.append(("peer: Textual DataTable, 20,000 rows: build / page-down",
                f"{peer['build_s']:.2f} s / {peer['pagedown_ms']:.1f} ms", "(our table does not build rows)"))
    return out


# --- attach cost: same tiny run with and without a TUI watching --------------------------------

TINY_PROFILE = """
name = "bench"
[task]
type = "classification"
[model]
config = {{model_type = "bert", hidden_size = 32, num_hidden_layers = 1, num_attention_heads = 2, intermediate_size = 37, vocab_size = 400, max_position_embeddings = 64}}
[data]
train = "{data}"
[training]
epochs = {epochs}
batch_size = 16
max_length = 32
log_every_steps = 10
learning_rate = 1e-3
[output]
runs_dir = "{runs}"
"""


def bench_attach(epochs: int, rows: int = 20000, pairs: int = 3) -> list[tuple[str, str, str]]:
    import importlib.util

    if importlib.util.find_spec("tunedeck.core.runs.worker") is None:
        return [("attach cost", "skipped", "tunedeck.core.runs.worker (the engine) is not installed")]
    folder = Path(tempfile.mkdtemp(prefix="tunedeck-bench-attach-"))
    data = folder / "d.csv"
    import random

    rng = random.Random(0)
    with data.open("w") as f:
        f.write("text,label\n")
        for i in range(rows):
            lab = rng.choice(["pos", "neg"])
            words = rng.choices(["good", "bad", "film", "plot", "very", "not"], k=12)
            # a unique token per row: cleaning drops duplicate rows
            f.write(" ".join(words) + f" r{i} {lab},{lab}\n")
    prof = folder / "p.toml"
    prof.write_text(TINY_PROFILE.format(data=data, epochs=epochs, runs=folder / "runs"))

    def one(attach: bool) -> float:
        proc = subprocess.run([sys.executable, "-m", "tunedeck.core.cli", "start", str(prof)], env=ENV,
                              capture_output=True, text=True, cwd=folder, timeout=300)
        run_dir = Path(proc.stdout.strip().splitlines()[-1])
        viewer = None
        if attach:
            master, slave = pty.openpty()
            viewer = subprocess.Popen([sys.executable, "-m", "tunedeck.tui", "--runs-dir", str(run_dir.parent), "attach", run_dir.name],
                                      stdin=slave, stdout=slave, stderr=slave, env=ENV, cwd=folder,
                                      start_new_session=True)
            os.close(slave)
        from tunedeck.core.runs.rundir import RunDir

        run = RunDir(run_dir)
        deadline = time.time() + 900
        viewer_cpu: list[float] = []
        t_start = time.time()
        c_start = None
        while time.time() < deadline:
            if viewer is not None and time.time() - t_start > 5:
                c = _cpu_seconds(viewer.pid)
                if c_start is None:
                    c_start, t_mark = c, time.time()
                elif time.time() > t_mark:
                    viewer_cpu.append(100 * (c - c_start) / (time.time() - t_mark))
            if attach:
                try:
                    while select.select([master], [], [], 0)[0]:
                        os.read(master, 65536)  # drain the terminal like a real one does
                except OSError:
                    pass
            state, _ = run.effective_state()
            if state not in ("starting", "running"):
                break
            time.sleep(0.2)
        if viewer is not None:
            os.write(master, b"\x11")
            try:
                viewer.wait(5)
            except subprocess.TimeoutExpired:
                viewer.kill()
            os.close(master)
        from tunedeck.core.runs.events import read_all

        steps = [e for e in read_all(run.events_path) if e.type == "step"]
        # Skip the first fifth: the viewer's own start-up (imports, replay) is not "attached".
        tps = [e.data.get("samples_per_s") or e.data.get("tokens_per_s") for e in steps[len(steps) // 5:]]
        tps = [x for x in tps if x]
        if viewer_cpu:
            cpu_used.append(viewer_cpu[-1])
        durations.append(steps[-1].time - steps[0].time if len(steps) > 1 else float("nan"))
        value = statistics.median(tps) if tps else float("nan")
        print(f"(run {run_dir.name}: {'attached' if attach else 'alone'}, {len(steps)} step events, "
              f"{durations[-1]:.0f} s, {value:.1f} samples/s, load {os.getloadavg()[0]:.1f})", file=sys.stderr)
        return value

    cpu_used: list[float] = []
    durations: list[float] = []
    alone, watched = [], []
    for _ in range(pairs):  # interleaved, so that drift in the machine's load hits both alike
        alone.append(one(False))
        watched.append(one(True))
    a, w = statistics.median(alone), statistics.median(watched)
    return [
        (f"worker throughput alone (samples/s, median of {pairs} runs)", f"{a:.1f}",
         f"runs of {statistics.median(durations):.0f} s of training"),
        ("worker throughput with `tunedeck attach` watching", f"{w:.1f}",
         f"cost {100 * (1 - w / a):+.1f}% (target ≤ 2%)"),
        ("  the attached TUI's own CPU (after its start-up)",
         f"{statistics.median(cpu_used):.1f}%" if cpu_used else "–", "of one core"),
    ]


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def table(rows: list[tuple[str, str, str]]) -> str:
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{'measure'.ljust(w0)}  {'value'.rjust(w1)}  note", "-" * (w0 + w1 + 30)]
    lines += [f"{a.ljust(w0)}  {b.rjust(w1)}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--small-rows", type=int, default=100_000, help="smaller file for the memory comparison")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--attach-cost", action="store_true", help="also measure what an attached TUI costs a worker")
    ap.add_argument("--attach-epochs", type=int, default=5)
    ap.add_argument("--attach-rows", type=int, default=30000, help="training rows for the attach-cost run")
    ap.add_argument("--attach-pairs", type=int, default=3, help="runs with and without a viewer, interleaved")
    ap.add_argument("--skip-browser", action="store_true")
    a = ap.parse_args()
    rows = bench_startup(a.repeats)
    if not a.skip_browser:
        rows += bench_browser(a.rows, a.small_rows)
    if a.attach_cost:
        rows += bench_attach(a.attach_epochs, a.attach_rows, a.attach_pairs)
    print(f"tunedeck TUI speed — {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
