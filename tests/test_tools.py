"""Tools that act ([tools.*]) at the backend level, with real servers: MCP servers over stdio (mcp-server-time from
PyPI, @modelcontextprotocol/server-filesystem and server-everything from npm, our own test server written with
the SDK) and over streamable HTTP, and web search against a SearXNG-shaped JSON server on loopback.

The npm servers are installed by `npm ci --prefix tests/mcp-servers` (.ci/run does it): without them these tests
skip locally and fail in CI, like the PostgreSQL ones.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend import ToolBox, ToolCall, load_settings, tool_access
from backend.config import McpToolConfig, WebSearchToolConfig
from backend.tools import Outcome
from tests.conftest import free_port, require
from tests.wire import json_reply

ROOT = Path(__file__).resolve().parent.parent
NPM_BIN = ROOT / "tests" / "mcp-servers" / "node_modules" / ".bin"
EVERYONE = tool_access(admin=True)


def npm_server(name: str) -> str:
    path = NPM_BIN / name
    require(path.exists(), f"{name} is not installed: npm ci --prefix tests/mcp-servers")
    return str(path)


def time_server() -> str:
    found = shutil.which("mcp-server-time")
    require(found is not None, "mcp-server-time is not installed: pip install -e '.[test]'")
    return found


def our_server(**fields) -> McpToolConfig:
    """Our own MCP server (tests/mcp_test_server.py) over stdio."""
    return McpToolConfig(kind="mcp", command=[sys.executable, "-m", "tests.mcp_test_server"], cwd=ROOT, **fields)


async def run(box: ToolBox, name: str, arguments: dict, policy=EVERYONE, tools: list[str] | None = None) -> Outcome:
    chosen = box.select(tools or box.offered(policy), policy)
    return await chosen.run(ToolCall("call_1", name, json.dumps(arguments)))


async def test_a_stdio_server_starts_on_first_use_lists_its_tools_and_answers():
    box = ToolBox({"time": McpToolConfig(kind="mcp", command=[time_server()])})
    try:
        tools = box.select(["time"], EVERYONE)
        specs = await tools.specs()
        assert [spec["function"]["name"] for spec in specs] == ["time__get_current_time", "time__convert_time"]
        parameters = specs[0]["function"]["parameters"]
        assert parameters["type"] == "object" and "timezone" in parameters["properties"]
        outcome = await run(box, "time__get_current_time", {"timezone": "Asia/Tokyo"})
        assert not outcome.error
        assert json.loads(outcome.text)["timezone"] == "Asia/Tokyo"
        # The running server is reused: a second ToolSet (the next reply) calls the same process.
        outcome = await run(
            box, "time__convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
        )
        assert "21:00" in outcome.text
    finally:
        await box.aclose()


async def test_allowed_tools_offers_only_those_and_a_call_to_another_runs_nothing(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("otters hold hands while they sleep")
    config = McpToolConfig(
        kind="mcp", command=[npm_server("mcp-server-filesystem"), str(folder)], allowed_tools=["read_text_file"]
    )
    box = ToolBox({"fs": config})
    try:
        tools = box.select(["fs"], EVERYONE)
        assert [spec["function"]["name"] for spec in await tools.specs()] == ["fs__read_text_file"]
        read = await tools.run(ToolCall("c1", "fs__read_text_file", json.dumps({"path": str(folder / "notes.txt")})))
        assert read == Outcome("otters hold hands while they sleep")
        target = folder / "forged.txt"
        forged = ToolCall("c2", "fs__write_file", json.dumps({"path": str(target), "content": "x"}))
        refused = await tools.run(forged)
        assert refused.error and "no tool 'fs__write_file'" in refused.text
        assert not target.exists()
        outside = await tools.run(ToolCall("c3", "fs__read_text_file", json.dumps({"path": "/etc/hostname"})))
        assert outside.error  # the server itself keeps to its folder; its refusal is the call's result
    finally:
        await box.aclose()


async def test_an_unshared_tool_is_not_offered_to_a_visitor_without_rights_even_called_by_name(tmp_path):
    marker = tmp_path / "ran"
    box = ToolBox({"private": our_server(), "public": our_server(shared=True, default=True)})
    visitor = tool_access(admin=False)
    try:
        assert box.offered(visitor) == ["public"]
        assert box.offered(EVERYONE) == ["private", "public"]
        assert box.defaults(visitor) == ["public"]
        tools = box.select(["private", "public"], visitor)  # the chat asked for both: only one is allowed
        assert {spec["function"]["name"] for spec in await tools.specs()} == {
            f"public__{name}" for name in ("slow", "crash", "hold", "pid", "echo")
        }
        forged = await tools.run(ToolCall("c1", "private__hold", json.dumps({"marker": str(marker)})))
        assert forged.error and "no tool 'private__hold'" in forged.text
        await asyncio.sleep(0.3)
        assert not marker.exists()
        assert [source.name for source in tools.sources] == ["public"]  # the private server was never started
    finally:
        await box.aclose()


async def test_a_call_over_its_timeout_is_cancelled_and_says_so():
    config = McpToolConfig(kind="mcp", command=[npm_server("mcp-server-everything")], timeout=1)
    box = ToolBox({"every": config})
    try:
        began = time.monotonic()
        outcome = await run(box, "every__trigger-long-running-operation", {"duration": 20, "steps": 4})
        assert outcome == Outcome("The tool did not answer within 1 s; the call was cancelled.", error=True)
        assert time.monotonic() - began < 10  # generous: the call must not run its 20 s
        assert await run(box, "every__echo", {"message": "still here"}) == Outcome("Echo: still here")
    finally:
        await box.aclose()


async def test_a_server_that_dies_mid_call_fails_that_call_and_is_started_again_for_the_next():
    box = ToolBox({"test": our_server()})
    try:
        first = await run(box, "test__pid", {})
        died = await run(box, "test__crash", {})
        assert died.error and "stopped during the call" in died.text
        second = await run(box, "test__pid", {})
        assert not second.error and second.text != first.text  # a new process answers
        assert await run(box, "test__echo", {"text": "again"}) == Outcome("again")
    finally:
        await box.aclose()


async def test_a_server_that_exits_while_idle_is_started_again_by_the_next_call_which_succeeds():
    box = ToolBox({"test": our_server()})
    try:
        pid = int((await run(box, "test__pid", {})).text)
        subprocess.run(["kill", "-9", str(pid)], check=True)
        await asyncio.sleep(1)  # the app notices the closed pipe at once; a second leaves room on a busy machine
        outcome = await run(box, "test__echo", {"text": "after"})
        assert outcome == Outcome("after")  # not "the server stopped": it had gone before this call was sent
    finally:
        await box.aclose()


async def test_a_server_that_cannot_start_is_one_sentence_for_each_call_and_in_check():
    box = ToolBox(
        {
            "gone": McpToolConfig(kind="mcp", command=["/nonexistent/mcp-server"]),
            "time": McpToolConfig(kind="mcp", command=[time_server()]),
        }
    )
    try:
        tools = box.select(["gone", "time"], EVERYONE)
        assert [spec["function"]["name"] for spec in await tools.specs()] == [
            "time__get_current_time",
            "time__convert_time",
        ]
        assert tools.problems == {"gone": "The tool server gone could not start: /nonexistent/mcp-server not found."}
        checked = await box.check()
        assert checked["gone"] == tools.problems["gone"]
        assert checked["time"] == ["time__get_current_time", "time__convert_time"]
    finally:
        await box.aclose()


async def test_arguments_that_are_not_a_json_object_are_the_calls_result():
    box = ToolBox({"test": our_server()})
    try:
        tools = box.select(["test"], EVERYONE)
        assert (await tools.run(ToolCall("c", "test__echo", '{"text": '))).text.startswith(
            "The arguments are not valid JSON"
        )
        assert (await tools.run(ToolCall("c", "test__echo", "[1]"))).text == "The arguments must be a JSON object."
    finally:
        await box.aclose()


@pytest.fixture
def http_server(tmp_path):
    """Our test server over streamable HTTP on a loopback port, requiring a bearer token; (url, token)."""
    port, token = free_port(), "t0ken-for-tests"
    command = [sys.executable, "-m", "tests.mcp_test_server", "--http", str(port), "--token", token]
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        import socket

        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp", token
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_a_streamable_http_server_gets_its_header_from_the_environment(http_server, monkeypatch):
    url, token = http_server
    monkeypatch.setenv("TEST_MCP_TOKEN", f"Bearer {token}")
    monkeypatch.setenv("WRONG_MCP_TOKEN", "Bearer nope")
    box = ToolBox(
        {
            "remote": McpToolConfig(kind="mcp", url=url, headers_env={"Authorization": "TEST_MCP_TOKEN"}),
            "refused": McpToolConfig(
                kind="mcp", url=url, headers_env={"Authorization": "WRONG_MCP_TOKEN"}, start_timeout=10
            ),
        }
    )
    try:
        assert await run(box, "remote__echo", {"text": "over http"}, tools=["remote"]) == Outcome("over http")
        refused = await run(box, "refused__echo", {"text": "x"}, tools=["refused"])
        assert refused.error and refused.text.startswith("There is no tool")
        problem = (await box.check())["refused"]
        assert isinstance(problem, str) and problem.startswith("The tool server refused")
    finally:
        await box.aclose()


# -- web search over a SearXNG-shaped JSON server ----------------------------------------------------------------

SEARXNG_ANSWER = {
    "query": "otters",
    "results": [
        {"url": f"https://example.org/{n}", "title": f"Otter fact {n}", "content": f"Snippet  number\\n{n}."}
        for n in range(1, 9)
    ],
}


async def test_web_search_gives_title_url_and_snippet_of_the_first_results(upstream):
    upstream.enqueue(json_reply(SEARXNG_ANSWER))
    config = WebSearchToolConfig(
        kind="web_search", url=f"http://127.0.0.1:{upstream.port}", allow_private=True, max_results=3
    )
    box = ToolBox({"web_search": config})
    outcome = await run(box, "web_search", {"query": "otters & rivers"})
    assert outcome == Outcome(
        "1. Otter fact 1\n   https://example.org/1\n   Snippet number\\n1.\n"
        "2. Otter fact 2\n   https://example.org/2\n   Snippet number\\n2.\n"
        "3. Otter fact 3\n   https://example.org/3\n   Snippet number\\n3."
    )
    request = upstream.requests[-1]
    assert request.method == "GET" and request.path == "/search?q=otters+%26+rivers&format=json"
    assert "authorization" not in request.headers and "cookie" not in request.headers


async def test_web_search_refuses_a_private_address_unless_the_tool_allows_it(upstream):
    config = WebSearchToolConfig(kind="web_search", url=f"http://127.0.0.1:{upstream.port}")
    box = ToolBox({"web_search": config})
    outcome = await run(box, "web_search", {"query": "otters"})
    assert outcome.error
    assert outcome.text.startswith("The search failed: Refusing to fetch from 127.0.0.1 (127.0.0.1)")
    assert "allow_private = true" in outcome.text
    assert upstream.requests == []  # nothing was sent


async def test_web_search_answers_that_are_not_searxng_json_are_one_sentence(upstream):
    upstream.enqueue(json_reply({"error": "nope"}), json_reply({"results": []}))
    config = WebSearchToolConfig(kind="web_search", url=f"http://127.0.0.1:{upstream.port}", allow_private=True)
    box = ToolBox({"web_search": config})
    assert (await run(box, "web_search", {"query": "x"})).text.startswith("The search server did not answer")
    assert await run(box, "web_search", {"query": "x"}) == Outcome("No results.")
    assert (await run(box, "web_search", {"query": " "})).error


# -- configuration ------------------------------------------------------------------------------------------------

TOOLS_CONFIG = """
[app]
max_tool_steps = 4
tool_deadline = 60

[providers.remote]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
models = ["plain"]
tool_models = ["caller"]

[tools.docs]
kind = "mcp"
command = ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv/docs"]
allowed_tools = ["read_text_file"]
confirm = true
timeout = 10

[tools.web_search]
kind = "web_search"
url = "https://searx.example.org/"
shared = true
default = true
"""


def test_tools_are_read_from_the_config_file(write_config):
    settings = load_settings(write_config(TOOLS_CONFIG))
    docs, web = settings.tools["docs"], settings.tools["web_search"]
    assert isinstance(docs, McpToolConfig) and isinstance(web, WebSearchToolConfig)
    assert docs.command[0] == "npx" and docs.allowed_tools == ["read_text_file"] and docs.confirm and not docs.shared
    assert web.url == "https://searx.example.org" and web.shared and web.default and not web.allow_private
    assert (settings.app.max_tool_steps, settings.app.tool_deadline) == (4, 60)
    assert settings.providers["remote"].model_names() == ["plain", "caller"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'kind = "mcp"',
            'tools.bad: give either command = ["program", "arg", ...] (stdio) or url = "http://..." (HTTP)',
        ),
        ('kind = "mcp"\ncommand = ["x"]\nurl = "http://a"', "tools.bad: give either command"),
        ('kind = "mcp"\nurl = "ftp://a"', "tools.bad: url must start with http:// or https://"),
        (
            'kind = "mcp"\nurl = "http://a"\nheaders_env = {Authorization = "UNSET_TOKEN_VAR"}',
            "environment variable UNSET_TOKEN_VAR is not set",
        ),
        ('kind = "shell"', "tools.bad: unknown kind 'shell' (expected one of: mcp, web_search)"),
        ('command = ["x"]', 'tools.bad: missing "kind" (one of: mcp, web_search)'),
        ('kind = "web_search"\nurl = "https://a"\ntimeout = 0', "tools.bad.timeout: Input should be greater than 0"),
        ('kind = "web_search"\nurl = "https://a"\nsecret = 1', "tools.bad.secret: unknown field"),
    ],
)
def test_a_bad_tool_table_is_one_sentence_naming_it(write_config, table, message):
    from backend import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(f"[tools.bad]\n{table}\n"))
    assert message in str(caught.value)


def test_a_tool_name_must_fit_in_function_names(write_config):
    from backend import ConfigError

    with pytest.raises(ConfigError, match="tool name 'my docs' must be 1 to 40 letters"):
        load_settings(write_config('[tools."my docs"]\nkind = "web_search"\nurl = "https://a"\n'))


async def test_tool_models_say_which_models_are_offered_the_apps_tools(write_config):
    from backend import Backend, ChatRequest, UnsupportedCapabilityError

    settings = load_settings(write_config(TOOLS_CONFIG + '\n[routes]\nmixed = ["remote/plain", "remote/caller"]\n'))
    backend = Backend(settings)
    assert backend.models.info("remote/caller").tools and not backend.models.info("remote/plain").tools
    assert backend.models.info("mixed").tools
    assert settings.capable_models("tools") == ["remote/caller"]
    server_tools = ChatRequest(model="remote/plain", messages=[{"role": "user", "content": "hi"}], server_tools=True)
    with pytest.raises(UnsupportedCapabilityError, match="not offered the app's tools"):
        backend.chat.plan(server_tools)
    # A route serves a request with the app's tools only through its tool models.
    routed = backend.chat.plan(ChatRequest(model="mixed", messages=server_tools.messages, server_tools=True))
    assert [model for _, model in routed] == ["caller"]
    # A caller's own tools (the /v1 API, the Python client) still pass through to any model.
    own = ChatRequest(
        model="remote/plain", messages=server_tools.messages, tools=[{"type": "function", "function": {"name": "f"}}]
    )
    assert [model for _, model in backend.chat.plan(own)] == ["plain"]


def test_switchboard_check_lists_each_tool_or_its_problem(write_config):
    config = write_config(
        f"""
        [tools.time]
        kind = "mcp"
        command = ["{time_server()}"]

        [tools.broken]
        kind = "mcp"
        command = ["/nonexistent/mcp-server"]
        shared = true
        """
    )
    done = subprocess.run(
        [sys.executable, "-m", "webui", "check", "--config", str(config)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "  tool time [mcp]: time__get_current_time, time__convert_time" in done.stdout
    broken = "The tool server broken could not start: /nonexistent/mcp-server not found."
    assert f"  tool broken [mcp: shared]: {broken}" in done.stdout
