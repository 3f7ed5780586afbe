"""Concurrency: 1, 10 and 50 people chatting at once through the app, each reply streamed by the upstream at a
model's pace (`--rate` tokens a second per reply). The chats start within `--spread` seconds of each other (as
people press Enter, not all in one millisecond) and all stream at the same time: with 300 tokens at 50 a
second, each lasts 6 s. For each level:

  upstream   the same number of replies read straight from the upstream (httpx + httpx-sse, all at once): the
             rate a reader sees, and the upstream's own time to first token;
  app        the same through the app, each chat in its own Gradio session (the Chat API, as a browser tab
             calls it, over Gradio's queue protocol; bench/load.py). The sessions are open already, as tabs
             are when people type: Gradio builds a session's state (14-26 ms of CPU here) on its first
             request, which a page load makes. Those first requests are measured apart, as "new sessions".

Also reported: the same number of chats all sent in the same instant ("burst"). Gradio spends about 12 ms of CPU
starting each event (its HTTP routes, queue and SSE messages), so the last of 50 same-instant starts waits about
0.6 s for one core, whatever happens after.

The app process's CPU for each level's chats (user + system, median of three rounds) shows what a reply costs the
server, whatever the client does.

Reported: each chat's delivered rate (tokens over the time from its first to its last update) as a fraction of
what the direct readers saw (the median chat, and the slowest tenth), and the time to first token the app adds
(the app's p50 and p95 minus the upstream's). Every reply is checked to be complete and exact.

    python -m bench.concurrency [--levels 1 10 50] [--tokens 300] [--rate 50] [--spread 2]
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from pathlib import Path

import httpx

from bench import load
from bench.common import Row, median, percentile, read_upstream
from bench.report import command_line

CPU_TARGET_CHATS = 10  # issue 16: the server's CPU for 10 chats x 300 tokens, at most 0.45 s


async def read_direct(client: httpx.AsyncClient, base_url: str, tag: str) -> tuple[float, float, int]:
    """(time to first token, tokens per second after it, tokens) for one reply read straight from the upstream."""
    reading = await read_upstream(client, base_url, tag)
    return reading.first - reading.began, reading.count / (reading.last - reading.first), reading.count


async def after(delay: float, coroutine):
    await asyncio.sleep(delay)
    return await coroutine


async def direct_round(base_url: str, chats: int, spread: float) -> list[tuple[float, float, int]]:
    limits = httpx.Limits(max_connections=chats + 4)
    async with httpx.AsyncClient(timeout=120, limits=limits, trust_env=False) as client:
        tags = [f"direct{secrets.token_hex(3)}c{i}" for i in range(chats)]
        reads = [after(spread * i / chats, read_direct(client, base_url, tag)) for i, tag in enumerate(tags)]
        return list(await asyncio.gather(*reads))


async def spread_round(url: str, chats: list[load.Chat], spread: float) -> list[load.Chat]:
    """The chats over their own connections, the i-th starting spread * i / n seconds after the first."""
    room = 2 * len(chats) + 8
    limits = httpx.Limits(max_connections=room, max_keepalive_connections=room)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30, read=120), trust_env=False) as client:
        fn_index = await load.chat_fn_index(client, url)
        runs = [
            after(spread * i / len(chats), load.guarded_chat(client, url, fn_index, chat, 120))
            for i, chat in enumerate(chats)
        ]
        return list(await asyncio.gather(*runs))


def app_round(
    stack: load.Stack, chats: int, tokens: int, sessions: str = "reused", spread: float = 0.0, cpu: list | None = None
) -> list[load.Chat]:
    """One round of `chats` through the app; the app process's CPU seconds for it appended to `cpu`."""
    label = f"c{secrets.token_hex(3)}"
    before = load.cpu_seconds(stack.app.pid)
    done = asyncio.run(spread_round(stack.url, load.new_chats(label, chats, sessions), spread))
    if cpu is not None:
        cpu.append(load.cpu_seconds(stack.app.pid) - before)
    broken = [chat for chat in done if load.reply_problems(chat, tokens)]
    if broken:
        raise SystemExit(f"{len(broken)} of {chats} replies through the app were not exact: {broken[0].problems}")
    return done


def run(levels: tuple[int, ...] = (1, 10, 50), tokens: int = 300, rate: float = 50, spread: float = 2.0) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as folder:
        with load.running_stack(Path(folder), tokens, concurrency=max(levels), rate=rate) as stack:
            app_round(stack, max(levels), tokens)  # warm up, and open every session (tab) used below
            for chats in levels:
                direct = asyncio.run(direct_round(stack.upstream_url, chats, spread))
                cpu: list[float] = []
                through = app_round(stack, chats, tokens, spread=spread, cpu=cpu)
                burst = app_round(stack, chats, tokens, cpu=cpu)
                app_round(stack, chats, tokens, spread=spread, cpu=cpu)
                burst_first = [chat.first_text - chat.submitted for chat in burst]
                upstream_rate = median([speed for _, speed, _ in direct])
                rates = [tokens / (chat.finished - chat.first_text) for chat in through]
                first = [chat.first_text - chat.submitted for chat in through]
                direct_first = [ttft for ttft, _, _ in direct]
                cold = app_round(stack, chats, tokens, sessions="fresh")
                cold_first = [chat.first_text - chat.submitted for chat in cold]
                plural = "s" if chats > 1 else ""
                section = f"concurrency: {chats} chat{plural} at once, {tokens} tokens at {rate:g}/s each"
                if chats > 1:
                    section += f", starting within {spread:g} s"
                rows += [
                    Row(
                        section,
                        "per-chat rate through the app, median chat",
                        median(rates) / upstream_rate,
                        unit="%",
                        target="≥ 90% of upstream",
                        ok=median(rates) >= 0.9 * upstream_rate,
                        note=f"{median(rates):.1f} of {upstream_rate:.1f} tokens/s",
                    ),
                    Row(
                        section,
                        "per-chat rate through the app, slowest tenth",
                        percentile(rates, 0.1) / upstream_rate,
                        unit="%",
                        target="≥ 90% of upstream",
                        ok=percentile(rates, 0.1) >= 0.9 * upstream_rate,
                        note=f"{percentile(rates, 0.1):.1f} tokens/s",
                    ),
                    Row(
                        section,
                        "time to first token added by the app, p50",
                        median(first) - median(direct_first),
                        target="",
                        note=f"app {median(first) * 1000:.0f} ms, upstream {median(direct_first) * 1000:.0f} ms",
                    ),
                    Row(
                        section,
                        "time to first token added by the app, p95",
                        percentile(first, 0.95) - percentile(direct_first, 0.95),
                        target="≤ 100 ms",
                        ok=percentile(first, 0.95) - percentile(direct_first, 0.95) <= 0.1,
                        note=f"app {percentile(first, 0.95) * 1000:.0f} ms, "
                        f"upstream {percentile(direct_first, 0.95) * 1000:.0f} ms",
                    ),
                    Row(
                        section,
                        "server CPU for the chats, median of 3 rounds",
                        median(cpu),
                        target="≤ 0.45 s" if chats == CPU_TARGET_CHATS else "",
                        ok=median(cpu) <= 0.45 if chats == CPU_TARGET_CHATS else None,
                        note=f"{median(cpu) / (chats * tokens) * 1e6:.0f} µs a token (the app's user + system)",
                    ),
                    Row(
                        section,
                        "time to first token added, burst, p95",
                        percentile(burst_first, 0.95) - percentile(direct_first, 0.95),
                        note="every chat sent in the same instant",
                    ),
                    Row(
                        section,
                        "time to first token added, new sessions, p95",
                        percentile(cold_first, 0.95) - percentile(direct_first, 0.95),
                        note="same instant, each the first request of a new session (Gradio builds its state)",
                    ),
                ]
    return rows


def main() -> None:
    command_line(run, __doc__)


if __name__ == "__main__":
    main()
