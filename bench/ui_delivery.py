"""UI delivery: a long reply, streamed by the upstream at a model's pace, delivered through the app to a
gradio_client, next to

  upstream        the upstream's own time: httpx + httpx-sse reading the same paced stream directly,
  per-token app   a plain gr.ChatInterface that yields the whole text after every token (the common pattern;
                  bench/per_token_app.py), delivering the same reply to a gradio_client;
  chat tab, reloaded twice
                  the Chat tab's own events, as the page calls them (tests/gradio_http.py): the message is saved and
                  its reply generated on the server; the page follows it, goes away a third of the way through, a
                  new page opens the chat and follows it, goes away too, and a third page follows it to the end.
                  Timed from sending to the third page holding the whole reply (checked token for token).

The upstream sends `--rate` tokens a second (2,000 by default: a fast model) and the reply's length is set by the
message, so one upstream serves every size. Cost is the app process's CPU time for one reply; to show it grows
linearly with the reply, it is measured at a quarter, a half and all of `--tokens`, per 1,000 tokens.
Medians of `--repeat` deliveries, the parties taking turns.

    python -m bench.ui_delivery [--tokens 20000] [--rate 2000] [--repeat 3]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import load
from bench.common import ROOT, Row, median, process, read_upstream
from bench.report import command_line
from tests.conftest import free_port
from tests.upstream import numbered_tokens


async def upstream_seconds(base_url: str, tokens: int) -> float:
    """Seconds for httpx + httpx-sse to read a `tokens`-long reply straight from the upstream."""
    async with httpx.AsyncClient(timeout=600, trust_env=False) as client:
        reading = await read_upstream(client, base_url, str(tokens))
    if reading.count != tokens:
        raise SystemExit(f"the upstream sent {reading.count} tokens, not {tokens}")
    return time.perf_counter() - reading.began


def deliver(client, pid: int, tokens: int) -> tuple[float, float]:
    """(seconds, app CPU seconds) to deliver a `tokens`-long reply through an app's /chat to a gradio_client."""
    cpu = load.cpu_seconds(pid)
    began = time.perf_counter()
    text = client.predict(str(tokens), api_name="/chat")
    elapsed = time.perf_counter() - began
    if text != "".join(numbered_tokens(tokens)):
        raise SystemExit(f"the reply delivered through the app lost or changed tokens ({len(text)} characters)")
    return elapsed, load.cpu_seconds(pid) - cpu


def chat_tab_with_reloads(url: str, tokens: int, upstream: float) -> float:
    """Seconds from sending a message in the Chat tab to a third page holding the whole reply, two pages having
    followed it for a third of the upstream's time each and gone away (each reloaded page opens the chat by its
    address, ?chat=ID, and its load's next step follows the reply being written)."""
    from tests.gradio_http import GradioSession, answer_text

    first = GradioSession(url)
    began = time.perf_counter()
    shown, conversation_id = first.send(str(tokens))
    first.follow(first.then_of(first.fn_index("message", "submit")), [shown, None, ""], upstream / 3)
    first.close()
    last = None
    for seconds in (upstream / 3, None):
        page = GradioSession(url)
        opened = page.open_address(conversation_id)
        last = page.follow(page.then_of(page.page_load()), [opened, None, ""], seconds)
        page.close()
    elapsed = time.perf_counter() - began
    assert last is not None
    answer = answer_text(last["output"]["data"][0])
    if answer.strip() != "".join(numbered_tokens(tokens)).strip():
        raise SystemExit(f"the reply followed across reloads lost or changed tokens ({len(answer)} characters)")
    return elapsed


def run(tokens: int = 20_000, rate: float = 2000, repeat: int = 3) -> list[Row]:
    from gradio_client import Client

    sizes = [tokens // 4, tokens // 2, tokens]
    seconds: dict[str, list[float]] = {"upstream": [], "app": [], "per-token": [], "reloaded": []}
    cpu: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as folder:
        with load.running_stack(Path(folder), tokens, concurrency=16, rate=rate, sized=True) as stack:
            port = free_port()
            command = [sys.executable, str(ROOT / "bench" / "per_token_app.py"), stack.upstream_url, str(port)]
            with process(command, f"http://127.0.0.1:{port}/gradio_api/info", cwd=ROOT) as per_token:
                clients = {
                    "app": (Client(stack.url, verbose=False), stack.app.pid),
                    "per-token": (Client(f"http://127.0.0.1:{port}/", verbose=False), per_token.pid),
                }
                for client, pid in clients.values():  # warm up: imports, caches, connections
                    deliver(client, pid, 200)
                for _ in range(repeat):
                    for size in sizes:
                        if size == tokens:
                            seconds["upstream"].append(asyncio.run(upstream_seconds(stack.upstream_url, size)))
                        for name, (client, pid) in clients.items():
                            elapsed, used = deliver(client, pid, size)
                            cpu.setdefault((name, size), []).append(used)
                            if size == tokens:
                                seconds[name].append(elapsed)
                        if size == tokens:
                            reloaded = chat_tab_with_reloads(stack.url, size, seconds["upstream"][-1])
                            seconds["reloaded"].append(reloaded)
    section = f"UI delivery: a {tokens:,}-token reply at {rate:,.0f} tokens/s, to a gradio_client"
    upstream = median(seconds["upstream"])
    app, per_token = median(seconds["app"]), median(seconds["per-token"])
    rows = [
        Row(section, "upstream's own time (httpx + httpx-sse)", upstream, upstream),
        Row(section, "through switchboard", app, upstream, target="≤ 1.1x upstream", ok=app <= 1.1 * upstream),
        Row(section, "through a per-token gr.ChatInterface", per_token, upstream, note="the common pattern"),
        Row(
            section,
            "through the Chat tab, the page reloaded twice during the reply",
            median(seconds["reloaded"]),
            upstream,
            target="≤ 1.1x upstream",
            ok=median(seconds["reloaded"]) <= 1.1 * upstream,
            note="generated on the server; three pages follow it in turn",
        ),
    ]
    for name, label in (("app", "switchboard"), ("per-token", "per-token ChatInterface")):
        per_thousand = {size: median(cpu[(name, size)]) / size * 1000 for size in sizes}
        growth = per_thousand[tokens] / per_thousand[sizes[0]]
        linear = {"target": "≤ 1.2x (linear)", "ok": growth <= 1.2} if name == "app" else {}
        rows.append(
            Row(
                section,
                f"{label}: CPU per 1,000 tokens, {sizes[-1]:,} vs {sizes[0]:,} tokens",
                per_thousand[tokens],
                per_thousand[sizes[0]],
                note=" / ".join(f"{per_thousand[s] * 1000:.0f} ms at {s:,}" for s in sizes),
                **linear,
            )
        )
    return rows


def main() -> None:
    command_line(run, __doc__)


if __name__ == "__main__":
    main()
