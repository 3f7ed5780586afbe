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
import json
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


def follow_for(session, fn_index: int, data: list, seconds: float | None) -> dict | None:
    """Start an event of the page's and read its updates for `seconds` (then leave, as a closed page does), or to
    its end (None): its last message then."""
    event_id = session.join(fn_index, data)
    deadline = None if seconds is None else time.perf_counter() + seconds
    with session.http.stream("GET", "gradio_api/queue/data", params={"session_hash": session.session_hash}) as stream:
        for line in stream.iter_lines():
            if deadline is not None and time.perf_counter() > deadline:
                return None
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                    return dict(message)
    raise SystemExit("the page's stream ended before the reply")


def page_load(session) -> int:
    """The page-load event that lists the chats and opens the one the page's address names (?chat=ID): the load
    with the most outputs (others fill in smaller things, such as the presets)."""
    loads = [dep for dep in session.config["dependencies"] if dep["targets"] and dep["targets"][0][1] == "load"]
    return max(loads, key=lambda dep: len(dep["outputs"]))["id"]


def then_of(session, fn_index: int) -> int:
    """The event that follows `fn_index` when it ends (its `.then` or `.success`)."""
    return next(dep["id"] for dep in session.config["dependencies"] if dep.get("trigger_after") == fn_index)


def reloaded_page(url: str, conversation_id: str) -> tuple:
    """A new page at the chat's address (?chat=ID), as a reload opens it: the page sends its address's query with
    every event, as the browser does, and its load opens the chat. The page and its load's answer."""
    from tests.gradio_http import GradioSession

    page = GradioSession(url)
    page.http.params = {"chat": conversation_id}
    opened = page.call(page_load(page), [None])  # no time zone (a browser gives its own): UTC
    if not opened["success"] or opened["output"]["data"][-2] != conversation_id:
        raise SystemExit(f"the chat did not open: {opened['output']}")
    return page, opened


def chat_tab_with_reloads(url: str, tokens: int, upstream: float) -> float:
    """Seconds from sending a message in the Chat tab to a third page holding the whole reply, two pages having
    followed it for a third of the upstream's time each and gone away."""
    from tests.gradio_http import GradioSession

    first = GradioSession(url)
    submit = first.fn_index("message", "submit")
    model = next(c["props"]["value"] for c in first.config["components"] if c["props"].get("elem_id") == "model-picker")
    began = time.perf_counter()
    added = first.call(submit, [{"text": str(tokens), "files": []}, [], None, model, "", 0.7, 1, 0, -1, "", ""])
    if not added["success"]:
        raise SystemExit(f"the message was refused: {added['output']}")
    shown, conversation_id = added["output"]["data"][0], added["output"]["data"][-1]
    follow_for(first, then_of(first, submit), [shown, None, ""], upstream / 3)
    first.close()
    for seconds in (upstream / 3, None):
        page, opened = reloaded_page(url, conversation_id)
        # What follows the load: following the chat's reply while it is written.
        last = follow_for(page, then_of(page, page_load(page)), [opened["output"]["data"][0], None, ""], seconds)
        page.close()
    elapsed = time.perf_counter() - began
    assert last is not None
    answer = "".join(
        m["content"] if isinstance(m["content"], str) else "".join(p.get("text", "") for p in m["content"])
        for m in last["output"]["data"][0]
        if m["role"] == "assistant" and not (m.get("metadata") or {}).get("title")
    )
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
