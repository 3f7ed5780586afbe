"""The results table, printed and written to bench/RESULTS.md."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import inspect
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import Row

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

NOTES = """## Notes

- **Setting.** Upstream, app and measuring client each run in a process of their own, all on this machine's two
  cores; nothing leaves 127.0.0.1. The scripted upstream sends each token as its own network write, as models do.
- **Replicas under quotas.** `replicas` holds each app process to 0.4 of a core in a cgroup of its own (cgroup v2's
  `cpu.max` or v1's `cpu.cfs_quota_us`, whichever is writable; bench/cpu_quota.py), so 1, 2 and 3 replicas (1.2
  cores) leave the upstream, nginx, Redis and the client room on two cores; the groups are removed at the end, after
  Ctrl-C or SIGTERM too. Where no cgroup is writable the section says so in one sentence and runs without quotas.
- **Gateway.** Both gateways check a key on every request (`switchboard serve` with logins and a key from
  `switchboard token`; LiteLLM's proxy with a master key, which it needs to start) and reach the same upstreams;
  the readers take turns, so drift touches all three alike.
- **Concurrency.** The chats of a level start within 2 s of each other (people press Enter at different times)
  and then all stream together. *Burst* rows send them in the same instant: Gradio spends about 12 ms of CPU
  starting each event (its routes, queue and SSE messages; py-spy), all on one event loop, so the last of 50
  simultaneous starts waits most of a second whatever the app does after. *New sessions* also pay Gradio's
  per-session state (a copy of every component's config, 14-26 ms each), built on a session's first request,
  which in a browser is the page load. What would improve both: Gradio building that state lazily, and a
  server with more cores for the one process Gradio runs in.
- **What the profiles showed, and what was done.** At 50 chats (2,500 tokens/s) the app spent its time reading
  upstream streams (httpx, h11, httpx-sse: about 40% of the event loop, per network read), on Gradio's work for
  each UI update (about 1 ms each) and on full garbage collections of up to 100 ms (the whole p95 tail). Hence:
  one budget of UI updates for all replies together (`app.updates_per_second`), Gradio's queue estimates on a
  timer, its per-event statistics refreshed every 1,000 events, the start-up heap frozen out of collections
  with rarer young collections, and a leaner per-token path (plain event records, OpenAI chunks parsed on a
  fast path, one generator fewer per token in the service and the client).
- **Profiles for issue 16 (py-spy, 2026-11-26), before any change.** *At rest*: 2.4 % of a core, all of it the
  event loop waking up 1,100 times a second for Gradio's queue, which looks for events to start every 1 ms and
  for progress every 10 ms (no Python work to speak of). *One chat*: 0.1 s of CPU per 300-token reply, a fifth
  of it Gradio's work per UI update. *Ten chats* (300 tokens at 50/s each): 0.50 s; the same 1 ms queue looks
  went on while jobs ran (1,000 of 1,150 wake-ups a second; 7,000 context switches a round), and by module the
  time went to asyncio's own loop and selectors (31 %), Gradio's update path (15 %, its SSE messages 5 %), anyio
  cancel scopes around every read and send (11 %), reading the upstreams (httpcore, h11, httpx, httpx-sse: 17 %),
  our own code 7 %. *Fifty chats*: the same shares, the upstream reads growing to a fifth. What was done: the
  queue waits for a push instead of looking (`webui/queue_wakeups.py`: at rest and while jobs run; 7,000 ->
  2,000 context switches a round); uvicorn runs on uvloop with httptools (a C event loop and HTTP parser: 0.45 ->
  0.36 s for the ten chats, measured alternately against the same build without them); a page following a reply
  wakes once per UI update, not per token (`RunningReply.batches`). Tried and not kept: reading each upstream at
  most every 40 ms (two tokens a read; 0.37 -> 0.35 s, within the noise) and half the UI update budget (no
  change).
- **Time to first token** is measured from sending the message to the first text the client receives; the
  upstream's own figure is from the request to its first token, read directly.
"""


def _value(row: Row) -> str:
    if row.unit == "s":
        return f"{row.value * 1000:.1f} ms" if row.value < 1 else f"{row.value:.2f} s"
    if row.unit == "%":
        return f"{row.value:.0%}"
    return f"{row.value:,.1f} {row.unit}"


def _ratio(row: Row) -> str:
    return f"{row.ratio:.2f}x" if row.ratio is not None else ""


def _verdict(row: Row) -> str:
    return {True: "yes", False: "NO", None: ""}[row.ok]


def lines(rows: list[Row]) -> list[str]:
    """The table in Markdown, one section heading per group of rows."""
    out: list[str] = []
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            out += ["", f"**{section}**", ""]
            out += ["| measurement | value | ratio | target | met | note |", "|---|---|---|---|---|---|"]
        out.append(f"| {row.name} | {_value(row)} | {_ratio(row)} | {row.target} | {_verdict(row)} | {row.note} |")
    return out


def print_table(rows: list[Row]) -> None:
    print("\n".join(lines(rows)).lstrip())


def command_line(run: Callable[..., list[Row]], description: str | None) -> None:
    """Run one section alone and print its table: each keyword of `run` is an option with its default
    (`--repeat 5`, `--cpu-quota 0.4` for `cpu_quota`; a tuple default takes several values)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, parameter in inspect.signature(run).parameters.items():
        default = parameter.default
        several = isinstance(default, tuple)
        kind = type(default[0] if several else default)
        option = f"--{name.replace('_', '-')}"
        parser.add_argument(option, dest=name, type=kind, default=default, nargs="+" if several else None)
    options = vars(parser.parse_args())
    print_table(run(**{name: tuple(v) if isinstance(v, list) else v for name, v in options.items()}))


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{memory}; {platform.platform()}; Python {platform.python_version()}"


def _written_sections() -> list[str]:
    """The sections of RESULTS.md written by hand (`## name` up to the next one: a benchmark's own analysis, with its
    date), kept when the tables are written again; `## Notes` is NOTES."""
    if not RESULTS.exists():
        return []
    kept: list[str] = []
    keeping = False
    for line in RESULTS.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            keeping = line != "## Notes"
        if keeping:
            kept.append(line)
    return kept


def write_results(rows: list[Row], command: str, figures: Sequence[str] = ()) -> None:
    """RESULTS.md: the header, the tables, `figures` (Markdown images beside RESULTS.md, drawn by this run), the
    sections written by hand, the notes."""
    import gradio

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    header = [
        "# Benchmark results",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Software: gradio {gradio.__version__}, commit {commit.stdout.strip() or 'unknown'}",
        f"- Command: `{command}`",
        "",
        "Every ratio compares two things measured in this one run on this machine (medians of repetitions).",
        "",
    ]
    failed = [row for row in rows if row.ok is False]
    summary = "All targets met." if not failed else f"Targets not met: {', '.join(r.name for r in failed)}."
    kept = _written_sections()
    drawn = [line for figure in figures for line in ("", figure)]
    RESULTS.write_text("\n".join([*header, summary, *lines(rows), *drawn, "", *kept, NOTES]), encoding="utf-8")
    print(f"\nwritten to {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    sys.stdout.flush()
