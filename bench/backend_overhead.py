"""Backend stream overhead: one 5,000-chunk reply from a fast scripted upstream on 127.0.0.1, read to the end by

  raw      httpx + httpx-sse: each event's JSON decoded and its `delta.content` taken (the least any reader does;
           the baseline),
  ours     switchboard's AsyncClient (`stream=True`): config, service layer with its watchdog, adapter, chunks,
  openai   the official openai SDK's AsyncOpenAI,
  litellm  litellm.acompletion,

each counting the chunks with content, which must all arrive. The readers take turns, repetition after
repetition, so drift in the machine's speed touches them all alike; the median of each is reported.

    python -m bench.backend_overhead [--chunks 5000] [--repeat 7]
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
from httpx_sse import aconnect_sse

from bench.common import Row, app_config, median, scripted_upstream
from bench.report import command_line

PROMPT = [{"role": "user", "content": "go"}]


async def read_raw(client: httpx.AsyncClient, base_url: str) -> int:
    body = {"model": "scripted-1", "messages": PROMPT, "stream": True}
    count = 0
    async with aconnect_sse(client, "POST", f"{base_url}/chat/completions", json=body) as source:
        async for event in source.aiter_sse():
            if event.data == "[DONE]":
                break
            for choice in json.loads(event.data).get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    count += 1
    return count


async def read_openai_shaped(client, model: str) -> int:
    """Chunks with content, read by a client with OpenAI's API (ours or the official SDK's)."""
    count = 0
    async for chunk in await client.chat.completions.create(model=model, messages=PROMPT, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            count += 1
    return count


async def read_litellm(base_url: str) -> int:
    import litellm

    count = 0
    response = await litellm.acompletion(
        model="openai/scripted-1", api_base=base_url, api_key="unused", messages=PROMPT, stream=True
    )
    async for chunk in response:
        if chunk.choices and chunk.choices[0].delta.content:
            count += 1
    return count


async def measure(base_url: str, config, chunks: int, repeat: int) -> dict[str, list[float]]:
    import litellm
    import openai

    from backend import AsyncClient, load_settings

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    raw_client = httpx.AsyncClient(timeout=60)
    ours = AsyncClient(settings=load_settings(config))
    sdk = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    readers = {
        "raw httpx + httpx-sse": lambda: read_raw(raw_client, base_url),
        "switchboard AsyncClient": lambda: read_openai_shaped(ours, "scripted/scripted-1"),
        "openai SDK": lambda: read_openai_shaped(sdk, "scripted-1"),
        "litellm": lambda: read_litellm(base_url),
    }
    times: dict[str, list[float]] = {name: [] for name in readers}
    for round_number in range(repeat + 1):  # round 0 warms connections, imports and caches up
        for name, read in readers.items():
            began = time.perf_counter()
            count = await read()
            elapsed = time.perf_counter() - began
            if count != chunks:
                raise SystemExit(f"{name} read {count} chunks with content, expected {chunks}")
            if round_number:
                times[name].append(elapsed)
    await raw_client.aclose()
    await ours.aclose()
    await sdk.close()
    return times


def run(chunks: int = 5000, repeat: int = 7) -> list[Row]:
    with scripted_upstream("--tokens", str(chunks)) as base_url, app_config(base_url) as config:
        times = asyncio.run(measure(base_url, config, chunks, repeat))
    names = list(times)
    base = median(times[names[0]])
    ours = median(times[names[1]])
    section = f"backend stream overhead ({chunks:,} chunks)"
    rows = [Row(section, names[0], base, base)]
    rows.append(Row(section, names[1], ours, base, target="≤ 1.15x raw", ok=ours <= 1.15 * base))
    for name in names[2:]:
        other = median(times[name])
        rows.append(Row(section, name, other, base, target="slower than ours", ok=other > ours))
    return rows


def main() -> None:
    command_line(run, __doc__)


if __name__ == "__main__":
    main()
