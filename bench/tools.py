"""The tool loop's own cost per step: what `tool_loop` adds beyond the model's time and the tool's.

A scripted upstream (in this process) plays a model that asks for one tool call per step, `steps` times, then
answers; the tool is a real MCP server over stdio (mcp-server-time's get_current_time). Each repetition runs the
whole conversation through `tool_loop` and measures, in that same run,

  loop       its time from start to end,
  model      the time spent inside `ChatService.stream` (a wrapper adds up each wait for its next event), and
  tool       the time the calls took (each `ToolResult.seconds`);

the loop's own time per step is (loop - model - tool) / steps: collecting the calls, building the messages,
starting and gathering the call tasks, the events it adds. Medians of the repetitions. (Measuring the model
requests and calls again apart and subtracting was tried first: on a shared 2-core machine their noise, a few
ms, buried the figure.)

    python -m bench.tools [--steps 8] [--repeat 20]
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.common import Row, median
from bench.report import command_line
from tests.upstream import ScriptedUpstream, ToolScript

CONFIG = """
[app]
embedded_model = false
data_dir = "{data}"

[providers.scripted]
kind = "openai"
base_url = "{base_url}"
models = ["caller"]
tool_models = ["caller"]

[tools.time]
kind = "mcp"
command = ["{command}"]
"""


async def measure(config: Path, steps: int, repeat: int) -> tuple[list[float], list[float], list[float]]:
    from backend import Backend, ChatRequest, ToolResult, load_settings, tool_access, tool_loop

    backend = Backend(load_settings(config))
    tools = backend.tools.select(["time"], tool_access(admin=True))
    await tools.specs()  # the server starts here, not in the first measured loop
    in_model = 0.0

    async def timed_stream(request: ChatRequest) -> AsyncIterator[Any]:
        """ChatService.stream, adding up the time spent inside it (the model's time, as the loop sees it)."""
        nonlocal in_model
        events = backend.chat.stream(request)
        while True:
            began = time.perf_counter()
            try:
                event = await anext(events)
            except StopAsyncIteration:
                in_model += time.perf_counter() - began
                return
            in_model += time.perf_counter() - began
            yield event

    overheads, model_times, tool_times = [], [], []
    try:
        for _ in range(repeat + 1):  # the first round warms connections and caches, and is not counted
            request = ChatRequest(model="scripted/caller", messages=[{"role": "user", "content": "What time is it?"}])
            in_model = 0.0
            began = time.perf_counter()
            events = [event async for event in tool_loop(timed_stream, request, tools, max_steps=steps)]
            loop = time.perf_counter() - began
            in_tools = sum(event.seconds for event in events if isinstance(event, ToolResult))
            assert sum(isinstance(event, ToolResult) for event in events) == steps
            overheads.append((loop - in_model - in_tools) / steps)
            model_times.append(in_model / (steps + 1))
            tool_times.append(in_tools / steps)
    finally:
        await backend.aclose()
    return overheads[1:], model_times[1:], tool_times[1:]


def run(steps: int = 8, repeat: int = 20) -> list[Row]:
    command = shutil.which("mcp-server-time")
    if command is None:
        raise SystemExit("mcp-server-time is not installed: pip install -e '.[test]'")
    section = f"tools: the loop's own time per step ({steps} steps, a stdio MCP server)"
    with ScriptedUpstream() as upstream, tempfile.TemporaryDirectory(prefix="switchboard-bench-") as folder:
        upstream.script = ToolScript(
            "openai", [[("time__get_current_time", {"timezone": "Europe/Paris"})]] * steps, final="It is late."
        )
        config = Path(folder) / "config.toml"
        config.write_text(CONFIG.format(data=Path(folder) / "data", base_url=upstream.base_url, command=command))
        overheads, model_times, tool_times = asyncio.run(measure(config, steps, repeat))
    overhead = median(overheads)
    return [
        Row(
            section,
            "loop overhead per step",
            overhead * 1000,
            unit="ms",
            target="≤ 5 ms",
            ok=overhead <= 0.005,
            note=f"min {min(overheads) * 1000:.2f} ms, max {max(overheads) * 1000:.2f} ms",
        ),
        Row(section, "a model request (scripted upstream)", median(model_times) * 1000, unit="ms"),
        Row(section, "a tool call (get_current_time over stdio)", median(tool_times) * 1000, unit="ms"),
    ]


def main() -> None:
    command_line(run, __doc__)


if __name__ == "__main__":
    main()
