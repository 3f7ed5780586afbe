"""The tool loop through the real service and adapters: the scripted upstream plays a model that calls tools in
each wire format (OpenAI, Anthropic, Gemini, Ollama), streamed in pieces; the tools are real MCP servers."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap

import pytest

from backend import (
    Backend,
    ChatRequest,
    Finish,
    ToolCallDelta,
    ToolCallStarted,
    ToolResult,
    load_settings,
    tool_access,
    tool_loop,
)
from tests.conftest import text
from tests.test_tools import ROOT, time_server
from tests.upstream import ToolScript

WIRES = ("openai", "anthropic", "gemini", "ollama")
MODEL = "caller"


def backend_for(upstream, write_config, monkeypatch, wire: str, tools: str, app: str = "") -> Backend:
    """A Backend whose provider `up` speaks `wire` to the scripted upstream, with model `caller` offered tools."""
    monkeypatch.setenv("TOOL_TEST_KEY", "sk-test")
    base_url = upstream.base_url if wire == "openai" else f"http://127.0.0.1:{upstream.port}"
    key = "" if wire == "ollama" else 'api_key_env = "TOOL_TEST_KEY"'
    config = f"""
[app]
embedded_model = false
{app}

[providers.up]
kind = "{wire}"
base_url = "{base_url}"
{key}
models = ["{MODEL}"]
tool_models = ["{MODEL}"]
first_token_timeout = 10
idle_timeout = 10
{textwrap.dedent(tools)}
"""
    return Backend(load_settings(write_config(config)))


TIME_TOOL = """
[tools.time]
kind = "mcp"
command = ["{command}"]
"""

OUR_TOOL = f"""
[tools.test]
kind = "mcp"
command = ["{sys.executable}", "-m", "tests.mcp_test_server"]
cwd = "{ROOT}"
"""


def question(text: str = "What time is it in Paris, and in Tokyo then?") -> ChatRequest:
    return ChatRequest(model=f"up/{MODEL}", messages=[{"role": "user", "content": text}])


async def run_loop(backend: Backend, request: ChatRequest, names: list[str], **options) -> list:
    tools = backend.tools.select(names, tool_access(admin=True))
    try:
        return [event async for event in tool_loop(backend.chat.stream, request, tools, **options)]
    finally:
        await backend.tools.aclose()


@pytest.mark.parametrize("wire", WIRES)
async def test_a_two_step_loop_reaches_the_final_answer_with_the_right_arguments_and_results(
    upstream, write_config, monkeypatch, wire
):
    script = upstream.script = ToolScript(
        wire,
        [
            [("time__get_current_time", {"timezone": "Europe/Paris"})],
            [
                (
                    "time__convert_time",
                    {"source_timezone": "Europe/Paris", "time": "16:30", "target_timezone": "Asia/Tokyo"},
                )
            ],
        ],
        final="In Tokyo it is 00:30.",
    )
    backend = backend_for(upstream, write_config, monkeypatch, wire, TIME_TOOL.format(command=time_server()))
    request = question()
    events = await run_loop(backend, request, ["time"])

    assert text(events) == "Let me check.Let me check.In Tokyo it is 00:30."
    started = [event for event in events if isinstance(event, ToolCallStarted)]
    results = [event for event in events if isinstance(event, ToolResult)]
    assert [(event.name, json.loads(event.arguments)) for event in started] == [
        ("time__get_current_time", {"timezone": "Europe/Paris"}),
        ("time__convert_time", {"source_timezone": "Europe/Paris", "time": "16:30", "target_timezone": "Asia/Tokyo"}),
    ]
    assert [result.id for result in results] == [call.id for call in started]
    assert len({call.id for call in started}) == 2  # unique, even where the wire format gives no id
    assert not any(result.error for result in results)
    assert json.loads(results[0].content)["timezone"] == "Europe/Paris"
    converted = json.loads(results[1].content)
    assert converted["target"]["datetime"].endswith("T00:30:00+09:00")
    # Each ToolCallStarted comes after the model's last ToolCallDelta and before its ToolResult.
    kinds = [
        type(event).__name__ for event in events if type(event) in (ToolCallDelta, ToolCallStarted, ToolResult, Finish)
    ]
    assert kinds[kinds.index("ToolCallStarted") - 1] == "Finish" and kinds[-1] == "Finish"

    # What the model was sent: the tools in its wire format, then the results in its wire format.
    bodies = [r.body for r in upstream.requests if r.method == "POST"]
    assert len(bodies) == 3
    assert script.tool_results(bodies[0]) == []
    first, second = (script.tool_results(body) for body in bodies[1:])
    expected_keys = (
        [call.id for call in started] if wire in ("openai", "anthropic") else [call.name for call in started]
    )
    if wire == "gemini":
        assert [key for key, _ in second] == expected_keys
        assert second[1][1]["target"]["datetime"].endswith("T00:30:00+09:00")  # a JSON object result stays one
    else:
        assert [key for key, _ in second] == expected_keys
        assert json.loads(second[1][1]) == converted
    assert first == second[:1]
    offered = _offered_tools(wire, bodies[0])
    assert offered == ["time__get_current_time", "time__convert_time"]

    # The request grew by the model's turns with their calls and one tool message per result.
    roles = [(message["role"], bool(message.get("tool_calls"))) for message in request.messages]
    assert roles == [("user", False), ("assistant", True), ("tool", False), ("assistant", True), ("tool", False)]
    assert request.messages[1]["content"] == "Let me check."
    assert request.messages[2] == {"role": "tool", "tool_call_id": started[0].id, "content": results[0].content}


def _offered_tools(wire: str, body: dict) -> list[str]:
    if wire == "anthropic":
        assert all("input_schema" in tool for tool in body["tools"])
        return [tool["name"] for tool in body["tools"]]
    if wire == "gemini":
        declarations = body["tools"][0]["functionDeclarations"]
        assert all("parametersJsonSchema" in declaration for declaration in declarations)
        return [declaration["name"] for declaration in declarations]
    return [tool["function"]["name"] for tool in body["tools"]]


async def test_calls_made_at_once_run_at_once(upstream, write_config, monkeypatch):
    upstream.script = ToolScript("openai", [[("test__slow", {"seconds": 1}), ("test__slow", {"seconds": 1})]])
    backend = backend_for(upstream, write_config, monkeypatch, "openai", OUR_TOOL)
    events = await run_loop(backend, question("Wait twice."), ["test"])
    spans = [json.loads(event.content) for event in events if isinstance(event, ToolResult)]
    assert len(spans) == 2
    # Both began before either ended: they overlapped (no assumption about how long anything takes).
    assert max(span["began"] for span in spans) < min(span["ended"] for span in spans)
    assert text(events).endswith("All done.")


async def test_a_tool_timing_out_goes_back_to_the_model_as_its_result(upstream, write_config, monkeypatch):
    script = upstream.script = ToolScript("anthropic", [[("test__slow", {"seconds": 30})]], final="It took too long.")
    tool = OUR_TOOL + "timeout = 1\n"
    backend = backend_for(upstream, write_config, monkeypatch, "anthropic", tool)
    events = await run_loop(backend, question("Wait long."), ["test"])
    [result] = [event for event in events if isinstance(event, ToolResult)]
    assert result.error and result.content == "The tool did not answer within 1 s; the call was cancelled."
    assert text(events).endswith("It took too long.")
    last = [r.body for r in upstream.requests if r.method == "POST"][-1]
    assert script.tool_results(last) == [(result.id, result.content)]


async def test_a_refused_confirmation_runs_nothing_and_the_model_is_told(upstream, write_config, monkeypatch, tmp_path):
    marker = tmp_path / "held"
    script = upstream.script = ToolScript(
        "gemini", [[("test__hold", {"marker": str(marker)}), ("test__echo", {"text": "fine"})]], final="Understood."
    )
    backend = backend_for(upstream, write_config, monkeypatch, "gemini", OUR_TOOL + "confirm = true\n")
    asked = []

    async def confirm(call):
        asked.append(call.name)
        return call.name == "test__echo"  # the person approves the echo, refuses the other

    events = await run_loop(backend, question("Hold, then echo."), ["test"], confirm=confirm)
    assert sorted(asked) == ["test__echo", "test__hold"]
    assert [event.confirm for event in events if isinstance(event, ToolCallStarted)] == [True, True]
    results = {event.name: event for event in events if isinstance(event, ToolResult)}
    assert (
        results["test__hold"].error and results["test__hold"].content == "The person refused this call; it did not run."
    )
    assert results["test__echo"].content == "fine" and not results["test__echo"].error
    assert not marker.exists()
    last = [r.body for r in upstream.requests if r.method == "POST"][-1]
    assert script.tool_results(last) == [
        ("test__hold", {"content": "The person refused this call; it did not run."}),
        ("test__echo", {"content": "fine"}),
    ]
    assert text(events).endswith("Understood.")


async def test_a_confirm_tool_without_anyone_to_confirm_does_not_run(upstream, write_config, monkeypatch, tmp_path):
    marker = tmp_path / "held"
    upstream.script = ToolScript("ollama", [[("test__hold", {"marker": str(marker)})]])
    backend = backend_for(upstream, write_config, monkeypatch, "ollama", OUR_TOOL + "confirm = true\n")
    events = await run_loop(backend, question(), ["test"])
    [result] = [event for event in events if isinstance(event, ToolResult)]
    assert result.error and "nobody can give it here" in result.content
    assert not marker.exists()


async def test_reaching_max_tool_steps_stops_with_a_sentence(upstream, write_config, monkeypatch):
    upstream.script = ToolScript("openai", [[("test__echo", {"text": "again"})]], endless=True)
    backend = backend_for(upstream, write_config, monkeypatch, "openai", OUR_TOOL, app="max_tool_steps = 2")
    steps = backend.settings.app.max_tool_steps
    events = await run_loop(backend, question("Loop for ever."), ["test"], max_steps=steps)
    assert len([event for event in events if isinstance(event, ToolResult)]) == 2
    assert len([r for r in upstream.requests if r.method == "POST"]) == 3
    assert text(events).endswith(
        "\n\n(Stopped: the model asked for more than 2 rounds of tool calls, the limit for one reply.)"
    )


async def test_the_deadline_stops_the_loop_and_cuts_the_calls_running(upstream, write_config, monkeypatch):
    upstream.script = ToolScript("openai", [[("test__slow", {"seconds": 30})]], endless=True)
    backend = backend_for(upstream, write_config, monkeypatch, "openai", OUR_TOOL)
    events = await run_loop(backend, question(), ["test"], deadline=3)
    [result] = [event for event in events if isinstance(event, ToolResult)]
    assert result.error and "did not answer within" in result.content
    assert text(events).endswith("\n\n(Stopped: the tools of this reply ran out of time (3 s).)")


async def test_stop_during_a_tool_call_cancels_the_call_on_the_server(upstream, write_config, monkeypatch, tmp_path):
    marker = tmp_path / "held"
    upstream.script = ToolScript("openai", [[("test__hold", {"marker": str(marker)})]])
    backend = backend_for(upstream, write_config, monkeypatch, "openai", OUR_TOOL)
    tools = backend.tools.select(["test"], tool_access(admin=True))
    seen = []

    async def reply() -> None:
        async for event in tool_loop(backend.chat.stream, question(), tools):
            seen.append(event)

    task = asyncio.create_task(reply())  # as a reply runs on the server: Stop cancels its task
    try:
        for _ in range(300):
            if marker.exists():
                break
            await asyncio.sleep(0.05)
        assert marker.read_text() == "started"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if marker.read_text() == "started cancelled":
                break
            await asyncio.sleep(0.05)
        assert marker.read_text() == "started cancelled"  # the server's handler itself was cancelled
        assert not any(isinstance(event, ToolResult) for event in seen)
        assert len([r for r in upstream.requests if r.method == "POST"]) == 1  # no step after Stop
    finally:
        await backend.tools.aclose()


async def test_a_loop_without_tools_is_one_plain_request(upstream, write_config, monkeypatch):
    upstream.script = ToolScript("openai", [], final="Just text.")
    backend = backend_for(upstream, write_config, monkeypatch, "openai", OUR_TOOL)
    request = question()
    events = await run_loop(backend, request, [])
    assert text(events) == "Just text."
    [body] = [r.body for r in upstream.requests if r.method == "POST"]
    assert "tools" not in body and not request.server_tools
