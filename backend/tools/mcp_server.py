"""One configured MCP server, through the official `mcp` SDK: started on first use, kept for every later call,
started again when it died, stopped with the app.

Policy:
- lazy: nothing runs until a chat that has the tool on needs its list of tools or calls one; concurrent first
  uses share one start, bounded by `start_timeout`;
- each connection lives in a task of its own (the SDK's transports are anyio task groups, which must be left by
  the task that entered them); calls come from any task;
- a server that died (its stdout closed, its HTTP session gone) is started again by the next call, once: a start
  that fails is that call's result, and the call after tries again. A call in flight when it died is not sent
  again (it may have done half its work): its result says the server stopped;
- each call is bounded by the tool's `timeout`; a call cut short (the timeout, or Stop cancelling the reply) is
  cancelled on the server too (the SDK sends `notifications/cancelled`);
- a stdio server runs as the app's user, in `cwd`, with only the SDK's safe variables (HOME, PATH, ...), `env`
  and `pass_env`: the app's API keys are not in its environment unless named. Its stderr goes to the app's.
The `mcp` package is imported on first start, not with `backend` (it takes half a second to import).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import McpToolConfig
from .calls import Outcome, cut

if TYPE_CHECKING:
    from mcp import Client
    from mcp.client import Transport
    from mcp_types import CallToolResult, Tool

log = logging.getLogger(__name__)
# Most APIs take function names of these characters, up to 64 of them.
_FUNCTION_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class ServerProblem(Exception):
    """The server could not be used: the one sentence says why (not started, stopped, refused)."""


@dataclass(frozen=True, slots=True)
class Function:
    """One tool a server offers, as the model is offered it: `spec` is an OpenAI function tool named `name`."""

    name: str  # what the model calls it: SERVER__TOOL
    tool: str  # what the server calls it
    spec: dict[str, Any]


def function_name(server: str, tool: str) -> str:
    """`server__tool`, with characters function names may not hold replaced, at most 64 of them."""
    safe = "".join(c if c in _FUNCTION_CHARACTERS else "_" for c in tool)
    return f"{server}__{safe}"[:64]


class McpServer:
    """The `[tools.NAME]` table of kind "mcp", and its running connection (if any)."""

    def __init__(self, name: str, config: McpToolConfig) -> None:
        self.name = name
        self.config = config
        self._connection: _Connection | None = None
        self._starting = asyncio.Lock()

    async def functions(self) -> list[Function]:
        """The server's tools, filtered by `allowed_tools`, starting it if needed; ServerProblem if it cannot."""
        connection = await self._connected()
        allowed = self.config.allowed_tools
        return [
            Function(function_name(self.name, tool.name), tool.name, _spec(function_name(self.name, tool.name), tool))
            for tool in connection.tools
            if not allowed or tool.name in allowed
        ]

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float) -> Outcome:
        """Call `tool` within `timeout` seconds; every failure is an Outcome with error set, never an exception
        (except cancellation, which cancels the call on the server too)."""
        from mcp import MCPError
        from mcp_types import CONNECTION_CLOSED

        try:
            connection = await self._connected()
        except ServerProblem as problem:
            return Outcome(str(problem), error=True)
        try:
            async with asyncio.timeout(timeout):
                result = await connection.client.call_tool(tool, arguments)
        except TimeoutError:
            return Outcome(f"The tool did not answer within {timeout:g} s; the call was cancelled.", error=True)
        except MCPError as error:
            if error.code == CONNECTION_CLOSED or connection.lost.is_set():
                await self._forget(connection)
                return Outcome(
                    f"The tool server {self.name} stopped during the call, which may not have finished; it will be "
                    "started again for the next call.",
                    error=True,
                )
            return Outcome(f"The tool server refused the call: {error.message}", error=True)
        except Exception as error:  # a malformed answer, a broken transport: the model reads why, the reply goes on
            return Outcome(f"The call failed: {_sentence(error)}", error=True)
        return Outcome(cut(result_text(result), self.config.max_result_chars), error=result.is_error)

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def _connected(self) -> _Connection:
        """The live connection, started (or started again, once) if there is none."""
        async with self._starting:
            connection = self._connection
            if connection is not None and not connection.lost.is_set():
                return connection
            if connection is not None:
                log.warning("MCP server %s stopped; starting it again", self.name)
                await self._forget(connection)
            connection = _Connection(self._transport, self.config.start_timeout, self.name)
            await connection.started()
            self._connection = connection
            return connection

    async def _forget(self, connection: _Connection) -> None:
        if self._connection is connection:
            self._connection = None
        await connection.close()

    def _transport(self) -> Transport:
        from mcp.client.stdio import StdioServerParameters, stdio_client

        if self.config.url:
            return _http_transport(self.config.url, self.config.headers_env)
        program, *arguments = self.config.command
        env = {**self.config.env, **{name: os.environ[name] for name in self.config.pass_env if name in os.environ}}
        cwd = str(self.config.cwd.expanduser()) if self.config.cwd else None
        return stdio_client(StdioServerParameters(command=program, args=arguments, env=env, cwd=cwd))


@asynccontextmanager
async def _http_transport(url: str, headers_env: dict[str, str]) -> AsyncIterator[Any]:
    """A streamable-HTTP connection whose headers come from the environment (a token never sits in the file)."""
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = {header: os.environ.get(variable, "") for header, variable in headers_env.items()}
    async with (
        create_mcp_http_client(headers=headers) as http_client,
        streamable_http_client(url, http_client=http_client) as streams,
    ):
        yield streams


class _Connection:
    """One running session with the server, held open by a task of its own until `close()`."""

    def __init__(self, transport: Callable[[], Transport], start_timeout: float, name: str) -> None:
        import anyio

        self.name = name
        self.lost = asyncio.Event()  # the server went away: its connection is of no more use
        self.tools: list[Tool] = []
        self._start_timeout = start_timeout
        self._ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self._ready.add_done_callback(_retrieved)  # a start nobody waited for does not warn at exit
        self._scope = anyio.CancelScope()  # cancelled to stop the connection, whatever it is doing
        self._task = asyncio.create_task(self._hold(transport), name=f"mcp server {name}")

    @property
    def client(self) -> Client:
        return self._ready.result()

    async def started(self) -> None:
        """Wait for the server to start and list its tools; ServerProblem if it does not within the time."""
        try:
            async with asyncio.timeout(self._start_timeout):
                client = await asyncio.shield(self._ready)
                self.tools = await _all_tools(client)
        except TimeoutError:
            await self.close()
            raise ServerProblem(
                f"The tool server {self.name} did not start within {self._start_timeout:g} s."
            ) from None
        except ServerProblem:
            await self.close()
            raise
        except Exception as error:
            await self.close()
            raise ServerProblem(f"The tool server {self.name} could not list its tools: {_sentence(error)}") from None

    async def close(self) -> None:
        self._scope.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _hold(self, transport: Callable[[], Transport]) -> None:
        import anyio
        from mcp import Client

        try:
            with self._scope:
                async with Client(_watched(transport(), self.lost.set)) as client:
                    self._ready.set_result(client)
                    await anyio.sleep_forever()  # until close() cancels the scope
        except Exception as error:
            if not self._ready.done():
                self._ready.set_exception(ServerProblem(f"The tool server {self.name} {_start_failure(error)}"))
            else:
                log.warning("MCP server %s: %s", self.name, _sentence(error))
        finally:
            self.lost.set()
            if not self._ready.done():
                self._ready.set_exception(ServerProblem(f"The tool server {self.name} was stopped."))


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


@asynccontextmanager
async def _watched(transport: Transport, lost: Callable[[], None]) -> AsyncIterator[Any]:
    """`transport`'s streams, calling `lost` the moment the server's side closes (a stdio server exiting), so the
    next call starts it again instead of failing on a dead connection."""
    import anyio

    async with transport as (read_stream, write_stream):
        send, receive = anyio.create_memory_object_stream[Any](0)

        async def forward() -> None:
            try:
                async with send:
                    async for item in read_stream:
                        await send.send(item)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the session went first: the connection is closing
            lost()

        async with anyio.create_task_group() as forwarding:
            forwarding.start_soon(forward)
            try:
                yield receive, write_stream
            finally:
                forwarding.cancel_scope.cancel()


async def _all_tools(client: Client) -> list[Tool]:
    tools: list[Tool] = []
    cursor: str | None = None
    for _ in range(100):  # a server whose listing never ends cannot hang the start
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _spec(name: str, tool: Tool) -> dict[str, Any]:
    description = tool.description or tool.title or tool.name
    parameters = tool.input_schema or {"type": "object", "properties": {}}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


def result_text(result: CallToolResult) -> str:
    """A call's result as text: its text parts joined; other parts named (an image is not sent on as text);
    structured content as JSON when there is nothing else."""
    import json

    from mcp_types import EmbeddedResource, ImageContent, ResourceLink, TextContent, TextResourceContents

    parts: list[str] = []
    for part in result.content:
        if isinstance(part, TextContent):
            parts.append(part.text)
        elif isinstance(part, EmbeddedResource) and isinstance(part.resource, TextResourceContents):
            parts.append(part.resource.text)
        elif isinstance(part, EmbeddedResource):
            parts.append(f"[resource {part.resource.uri}]")
        elif isinstance(part, ResourceLink):
            parts.append(f"[link {part.name}: {part.uri}]")
        elif isinstance(part, ImageContent):
            parts.append(f"[an image, {part.mime_type}]")
        else:
            parts.append(f"[{part.type} content]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def _leaf(error: BaseException) -> BaseException:
    """The first real error inside anyio's exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _sentence(error: BaseException) -> str:
    error = _leaf(error)
    return str(error) or type(error).__name__


def _start_failure(error: BaseException) -> str:
    """Why a server did not start, as the end of a sentence beginning with its name."""
    error = _leaf(error)
    if isinstance(error, FileNotFoundError) and error.filename:  # its program, or its cwd
        return f"could not start: {error.filename} not found."
    if isinstance(error, OSError) and error.filename:
        return f"could not start: {error.strerror or error} ({error.filename})."
    from mcp import MCPError

    if isinstance(error, MCPError):
        return f"stopped while starting ({error.message}); its own messages are in the app's log."
    return f"could not start: {_sentence(error)}"
