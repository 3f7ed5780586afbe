"""The tool loop's own cost per step: what `tool_loop` adds beyond the model's time and the tool's.

A scripted upstream (in this process) plays a model that asks for one tool call per step, `steps` times, then
answers; the tool is a real MCP server over stdio (mcp-server-time's get_current_time). Each repetition measures

  loop       the whole conversation through `tool_loop(ChatService.stream, ...)`, and, in the same run,
  model      each of its model requests again, alone, through `ChatService.stream` (the same request bodies,
             so the same answers), and
  tool       each of its calls again, alone, through `ToolSet.run`;

the loop's overhead per step is (loop - model - tool) / steps. Medians of the repetitions.

    python -m bench.tools [--steps 8] [--repeat 20]
"""

from __future__ import annotations

import asyncio
import copy
import shutil
import tempfile
import time
from pathlib import Path

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
    from backend.tools import ToolCall

    backend = Backend(load_settings(config))
    tools = backend.tools.select(["time"], tool_access(admin=True))
    specs = await tools.specs()  # the server starts here, not in the first measured loop
    overheads, model_times, tool_times = [], [], []
    try:
        for _ in range(repeat + 1):  # the first round warms connections and caches, and is not counted
            request = ChatRequest(model="scripted/caller", messages=[{"role": "user", "content": "What time is it?"}])
            began = time.perf_counter()
            events = [event async for event in tool_loop(backend.chat.stream, request, tools, max_steps=steps)]
            loop = time.perf_counter() - began
            calls = [ToolCall(e.id, e.name, e.arguments) for e in events if isinstance(e, ToolResult)]
            assert len(calls) == steps, f"{len(calls)} tool steps, expected {steps}"
            model = 0.0
            for end in [i for i, m in enumerate(request.messages) if m["role"] == "assistant"] + [None]:
                alone = ChatRequest(
                    model="scripted/caller", messages=copy.deepcopy(request.messages[:end]), tools=specs
                )
                alone.server_tools = True
                began = time.perf_counter()
                async for _event in backend.chat.stream(alone):
                    pass
                model += time.perf_counter() - began
            tool = 0.0
            for call in calls:
                began = time.perf_counter()
                await tools.run(call)
                tool += time.perf_counter() - began
            overheads.append((loop - model - tool) / steps)
            model_times.append(model / (steps + 1))
            tool_times.append(tool / steps)
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
