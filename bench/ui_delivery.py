"""How much the app adds to a long streamed reply: a fast scripted upstream streams N tokens; we time

  1. upstream   raw httpx + httpx-sse reading the stream directly (the baseline: the upstream's own time),
  2. backend    our AsyncClient streaming the same reply (service layer + adapter + chunk objects),
  3. app        the whole app (run as `python -m webui` in a subprocess) delivering it to a gradio_client
                through the `chat` endpoint,

each as the median of several runs in this one process run, and print ratios against the baseline.

    python bench/ui_delivery.py [--tokens 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend import AsyncClient, load_settings  # noqa: E402
from tests.conftest import free_port  # noqa: E402


async def raw_stream(base_url: str) -> int:
    pieces = 0
    async with httpx.AsyncClient(timeout=60) as client:
        body = {"model": "scripted-1", "messages": [{"role": "user", "content": "go"}], "stream": True}
        async with aconnect_sse(client, "POST", f"{base_url}/chat/completions", json=body) as source:
            async for event in source.aiter_sse():
                if event.data == "[DONE]":
                    break
                pieces += 1
    return pieces


async def backend_stream(client: AsyncClient) -> int:
    pieces = 0
    async for chunk in client.chat.completions.create(messages="go", stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces += 1
    return pieces


def start(command: list[str], ready_url: str, **options) -> subprocess.Popen:
    """Start a server process and wait until `ready_url` answers."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **options)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(ready_url, timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{command} did not start within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from gradio_client import Client

    expected = "".join(f"t{i % 10} " for i in range(args.tokens))
    upstream_port, app_port = free_port(), free_port()
    base_url = f"http://127.0.0.1:{upstream_port}/v1"
    processes = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(
            textwrap.dedent(
                f"""
                [app]
                embedded_model = false
                [providers.scripted]
                kind = "openai"
                base_url = "{base_url}"
                models = ["scripted-1"]
                """
            )
        )
        try:
            # Upstream, app and measuring client each get a process (and a GIL) of their own.
            upstream_command = [sys.executable, "-m", "tests.upstream", "--port", str(upstream_port)]
            upstream_command += ["--tokens", str(args.tokens)]
            processes.append(start(upstream_command, f"{base_url}/models", cwd=ROOT))
            app_command = [sys.executable, "-m", "webui", "--config", str(config), "--port", str(app_port)]
            processes.append(start(app_command, f"http://127.0.0.1:{app_port}/gradio_api/info", cwd=tmp))
            gradio = Client(f"http://127.0.0.1:{app_port}/", verbose=False)
            times: dict[str, list[float]] = {"upstream": [], "backend": [], "app": []}

            async def backend_runs() -> None:
                async with AsyncClient(settings=load_settings(config)) as client:
                    for _ in range(args.runs):
                        start_time = time.perf_counter()
                        assert await backend_stream(client) == args.tokens
                        times["backend"].append(time.perf_counter() - start_time)

            for _ in range(args.runs):
                start_time = time.perf_counter()
                assert asyncio.run(raw_stream(base_url)) == args.tokens + 3  # role chunk, finish, usage
                times["upstream"].append(time.perf_counter() - start_time)
            asyncio.run(backend_runs())
            for _ in range(args.runs):
                start_time = time.perf_counter()
                text = gradio.predict("go", api_name="/chat")
                times["app"].append(time.perf_counter() - start_time)
                assert text == expected, "the app lost or changed tokens"
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=20)

    base = statistics.median(times["upstream"])
    print(f"{args.tokens:,}-token reply, median of {args.runs} runs (same process run, same machine)")
    print(f"{'path':<10} {'seconds':>9} {'ratio':>7}")
    for name, label in (("upstream", "upstream"), ("backend", "backend"), ("app", "app")):
        median = statistics.median(times[name])
        print(f"{label:<10} {median:9.3f} {median / base:6.2f}x")


if __name__ == "__main__":
    main()
