"""Every benchmark in one run: `python -m bench` prints the table and writes bench/RESULTS.md.

    python -m bench            the full suite (about 45 minutes on 2 cores)
    python -m bench --quick    fewer repetitions and shorter replies, to try a change (not for RESULTS.md)
    python -m bench --only backend gateway ui ...   pick sections (names below)

Sections and their baselines, each measured in this same run:
  backend      our AsyncClient vs raw httpx + httpx-sse, the openai SDK and litellm      (bench/backend_overhead.py)
  gateway      /v1 (`switchboard serve`) vs LiteLLM's proxy vs the upstream straight,
               read with the openai SDK: a 5,000-chunk stream, first tokens at 1 and
               50 streams at once, server CPU per 1,000 tokens                           (bench/gateway.py)
  ui           a 20,000-token reply through the app vs the upstream, and a per-token
               gr.ChatInterface                                                          (bench/ui_delivery.py)
  concurrency  1, 10 and 50 chats at once through the app vs reading the upstream       (bench/concurrency.py)
  local        the embedded model in-app vs llama_cpp.server on the same GGUF           (bench/local_model.py)
  startup      command to first HTTP 200 vs `import gradio`; `import backend`           (bench/startup.py)
  stop         Stop to the upstream connection closing                                  (bench/stop.py)
  load         100 chats at once, every token checked, memory before and after          (bench/load.py)
  store        save, checkpoint, list and search among 10,000 conversations (--quick:
               1,000) in SQLite and PostgreSQL vs the JSON files used before            (bench/store.py)
  idle         CPU at rest, no page and one page open, vs a plain Gradio chat page      (bench/idle.py)
  frames       frame gaps in Chromium while a 2,000-token reply streams, vs the idle page  (bench/frames.py)
  replicas     25 to 300 chats at once against 1, 2 and 3 app processes (2 and 3 behind
               nginx, sharing Redis), each held to 0.4 of a core; bench/replicas.png     (bench/replicas.py)
  tools        the tool loop's own time per step, beyond the model's and the tool's      (bench/tools.py)
  bigchat      another visitor's waits while one imports, opens, sends into and exports
               a 4.9 MB chat, vs at rest; memory per session that opened it (--quick:
               200 sessions, else 1,000)                                                  (bench/big_chat.py)
  retrieval    a 1,000-page PDF read and chunked; exact cosine search among 10,000 and
               100,000 chunks' vectors (numpy), vs sqlite-vec where it loads            (bench/retrieval.py)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench import (
    backend_overhead,
    big_chat,
    concurrency,
    frames,
    gateway,
    idle,
    load,
    local_model,
    replicas,
    retrieval,
    startup,
    stop,
    store,
    tools,
    ui_delivery,
)
from bench.common import Row
from bench.report import print_table, write_results

SECTIONS = (
    "backend",
    "gateway",
    "ui",
    "concurrency",
    "local",
    "startup",
    "stop",
    "load",
    "store",
    "idle",
    "frames",
    "replicas",
    "tools",
    "bigchat",
    "retrieval",
)
REPLICA_QUOTA = 0.4  # of a core per replica: 3 replicas (1.2 cores) leave the rest of 2 cores room to run


def load_rows(chats: int, tokens: int, rounds: int) -> list[Row]:
    """The load test's figures as rows: completeness and memory are its targets (issue: every reply complete,
    memory back near its start)."""
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as folder:
        with load.running_stack(Path(folder), tokens, concurrency=chats, max_sessions=max(150, chats + 50)) as stack:
            report = load.measure(stack, chats, tokens, rounds, sessions="fresh", settle=3)
    section = f"load: {chats} chats at once, {tokens:,} tokens each, {rounds} rounds of new visitors"
    measured = report.rounds
    total = sum(len(r.chats) * r.tokens for r in measured)
    wall = sum(r.wall for r in measured)
    broken = sum(len(r.failures()) for r in measured)
    return [
        Row(
            section,
            "replies complete and exact",
            (len(measured) * chats - broken) / (len(measured) * chats),
            unit="%",
            target="100%",
            ok=broken == 0,
        ),
        Row(section, "app throughput, all chats together", total / wall, unit="tokens/s"),
        Row(
            section,
            "app memory after the rounds, above its start",
            (report.rss_after - report.rss_start) / 2**20,
            unit="MB",
            target=f"≤ {report.memory_bound / 2**20:.0f} MB",
            ok=report.memory_ok,
            note=f"start {report.rss_start / 2**20:.0f} MB, peak {report.rss_peak / 2**20:.0f} MB",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and shorter replies")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = parser.parse_args()
    quick = args.quick
    writing = not quick and args.only == list(SECTIONS)  # only a full run of everything writes RESULTS.md
    runs = {
        "backend": lambda: backend_overhead.run(chunks=5000, repeat=3 if quick else 7),
        "gateway": lambda: gateway.run(chunks=5000, repeat=3 if quick else 10, rounds=3 if quick else 10),
        "ui": lambda: ui_delivery.run(tokens=8000 if quick else 20_000, rate=2000, repeat=1 if quick else 3),
        "concurrency": lambda: concurrency.run(levels=(1, 10, 50), tokens=300, rate=50, spread=2.0),
        "local": lambda: local_model.run(tokens=100 if quick else 200, repeat=1 if quick else 3),
        "startup": lambda: startup.run(repeat=2 if quick else 5),
        "stop": lambda: stop.run(repeat=3 if quick else 5),
        "load": lambda: load_rows(100, 300 if quick else 2000, 1 if quick else 3),
        "store": lambda: store.run(conversations=1000 if quick else 10_000, repeat=30 if quick else 100),
        "idle": lambda: idle.run(seconds=20 if quick else 60),
        "frames": lambda: frames.run(tokens=2000, rate=100, repeat=1 if quick else 3),
        "replicas": lambda: replicas.run(
            loads=(50, 150) if quick else (25, 50, 100, 150, 200, 300),
            tokens=500 if quick else 2000,
            rate=50,
            counts=(1, 2, 3),
            cpu_quota=REPLICA_QUOTA,
            plot=str(replicas.PLOT) if writing else "",
        ),
        "tools": lambda: tools.run(steps=8, repeat=5 if quick else 20),
        "bigchat": lambda: big_chat.run(sessions=200 if quick else 1000),
        "retrieval": lambda: retrieval.run(
            pages=1000, sizes=(10_000,) if quick else (10_000, 100_000), queries=50 if quick else 200
        ),
    }
    rows: list[Row] = []
    for name in args.only:
        began = time.perf_counter()
        print(f"== {name}", file=sys.stderr, flush=True)
        rows += runs[name]()
        print(f"   {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    print_table(rows)
    if writing:
        write_results(rows, "python -m bench", figures=[replicas.FIGURE])
    return 0


if __name__ == "__main__":
    sys.exit(main())
