"""Every configured tool (`ToolBox`), and the ones one reply may use (`ToolSet`).

Who may use what is the caller's to say, as a predicate over the tool's name and table (`ToolPolicy`): with
`tool_access(admin)`, admins and the one local owner use every tool, other visitors of a shared instance only
tools with `shared = true`. A ToolSet holds only tools its policy allowed and the chat turned on; a call to any
other name (a model's invention, a forged event) gets "no such tool" as its result and runs nothing.

Calls never raise: an unknown tool, arguments that are not a JSON object, a refused confirmation, a timeout, a
server that cannot start or stops, are each the call's result (one sentence, `error` set), which the model reads
and can act on. Only cancellation goes through, cancelling the calls still running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import Any

from ..config import McpToolConfig, ToolConfig
from .calls import Outcome, ToolCall
from .mcp_server import McpServer, ServerProblem
from .web_search import WebSearch

ToolPolicy = Callable[[str, ToolConfig], bool]
"""Whether the person a reply is for may use the tool of this name and table."""
Confirm = Callable[[ToolCall], Awaitable[bool]]
"""Asks the person whether call may run (a `confirm = true` tool): True to run it, False to refuse."""
Source = McpServer | WebSearch


def tool_access(admin: bool) -> ToolPolicy:
    """Admins (and the local owner, when there are no logins) may use every tool; others only shared ones. Tools
    are not shared by default because a tool acts as the app's user: a filesystem server reads (and may write)
    whatever its folder holds, for whoever is chatting."""
    return lambda name, config: admin or config.shared


class ToolBox:
    """The `[tools.*]` tables, each built once; MCP servers start when first needed and stop at `aclose()`."""

    def __init__(self, tools: dict[str, ToolConfig]) -> None:
        self._sources: dict[str, Source] = {
            name: McpServer(name, config) if isinstance(config, McpToolConfig) else WebSearch(name, config)
            for name, config in tools.items()
        }

    def offered(self, may_use: ToolPolicy) -> list[str]:
        """The tools this person may turn on, in the config's order."""
        return [name for name, source in self._sources.items() if may_use(name, source.config)]

    def defaults(self, may_use: ToolPolicy) -> list[str]:
        """The tools on in a new chat (`default = true`) that this person may use."""
        return [name for name in self.offered(may_use) if self._sources[name].config.default]

    def select(self, names: Iterable[str], may_use: ToolPolicy) -> ToolSet:
        """The tools of `names` (a chat's choice) this person may use; unknown names (a tool since taken out of
        the config) and forbidden ones are left out."""
        chosen = set(names)
        return ToolSet([self._sources[name] for name in self.offered(may_use) if name in chosen])

    async def check(self) -> dict[str, list[str] | str]:
        """Each tool's functions as the model is offered them, or the one sentence saying why it cannot be used
        (starting every MCP server: for `switchboard check`)."""

        async def one(source: Source) -> list[str] | str:
            if isinstance(source, WebSearch):
                return [source.name]
            try:
                functions = await source.functions()
            except ServerProblem as problem:
                return str(problem)
            missing = sorted(set(source.config.allowed_tools or ()) - {function.tool for function in functions})
            if missing:
                return f"allowed_tools names {', '.join(missing)}, which the server does not offer."
            return [function.name for function in functions]

        found = await asyncio.gather(*(one(source) for source in self._sources.values()))
        return dict(zip(self._sources, found, strict=True))

    async def aclose(self) -> None:
        """Stop every MCP server that was started."""
        await asyncio.gather(*(source.aclose() for source in self._sources.values()))


class ToolSet:
    """The tools one reply may use: their function specs for the model, and the calls the model makes."""

    def __init__(self, sources: list[Source]) -> None:
        self.sources = sources
        self.problems: dict[str, str] = {}  # tool name -> why it is left out (a server that cannot start)
        self._functions: dict[str, tuple[Source, str]] | None = None  # function name -> (source, its tool name)
        self._specs: list[dict[str, Any]] = []

    async def specs(self) -> list[dict[str, Any]]:
        """OpenAI function tools for the model, listing (so starting) the MCP servers; one that cannot start is
        left out, its sentence in `problems`."""
        if self._functions is None:
            self._functions = {}
            listings = await asyncio.gather(*(_functions(source) for source in self.sources))
            for source, listing in zip(self.sources, listings, strict=True):
                if isinstance(listing, str):
                    self.problems[source.name] = listing
                    continue
                for name, tool, spec in listing:
                    self._functions[name] = (source, tool)
                    self._specs.append(spec)
        return self._specs

    def needs_confirmation(self, call: ToolCall) -> bool:
        found = (self._functions or {}).get(call.name)
        return found is not None and found[0].config.confirm

    async def run(self, call: ToolCall, *, confirm: Confirm | None = None, deadline: float | None = None) -> Outcome:
        """Run one call (asking `confirm` first for a `confirm = true` tool), within the tool's timeout and the
        `deadline` (a time.monotonic() instant). Never raises, but for cancellation."""
        outcome, _ = await self._run(call, confirm, deadline)
        return outcome

    async def run_all(
        self, calls: list[ToolCall], *, confirm: Confirm | None = None, deadline: float | None = None
    ) -> AsyncGenerator[tuple[ToolCall, Outcome, float], None]:
        """Run `calls` at once; yield each with its outcome and the seconds it ran (a wait for the person's OK
        aside) as it finishes. Leaving early, or being cancelled, cancels the calls still running."""
        tasks = {asyncio.create_task(self._run(call, confirm, deadline)): call for call in calls}
        order = list(tasks)
        try:
            pending: set[asyncio.Task[tuple[Outcome, float]]] = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=order.index):
                    outcome, seconds = task.result()
                    yield tasks[task], outcome, seconds
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, call: ToolCall, confirm: Confirm | None, deadline: float | None) -> tuple[Outcome, float]:
        await self.specs()
        assert self._functions is not None
        found = self._functions.get(call.name)
        if found is None:
            return Outcome(f"There is no tool {call.name!r} here; use only the tools offered.", error=True), 0.0
        source, tool = found
        try:
            arguments = call.parsed_arguments()
        except ValueError as problem:
            return Outcome(str(problem), error=True), 0.0
        if source.config.confirm:
            refusal = await _confirmation(confirm, call)
            if refusal is not None:
                return refusal, 0.0
        timeout = source.config.timeout
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                return Outcome("The time for tools in this reply ran out before this call could run.", True), 0.0
        started = time.monotonic()
        if isinstance(source, WebSearch):
            outcome = await source.search(arguments, timeout)
        else:
            outcome = await source.call(tool, arguments, timeout)
        return outcome, time.monotonic() - started


async def _functions(source: Source) -> list[tuple[str, str, dict[str, Any]]] | str:
    """(function name, tool name, spec) for each tool of `source`, or why there are none."""
    if isinstance(source, WebSearch):
        return [(source.name, source.name, source.spec())]
    try:
        return [(function.name, function.tool, function.spec) for function in await source.functions()]
    except ServerProblem as problem:
        return str(problem)


async def _confirmation(confirm: Confirm | None, call: ToolCall) -> Outcome | None:
    """None when the person approved `call`; otherwise the outcome saying it did not run."""
    if confirm is None:
        return Outcome("This tool runs only with the person's OK, and nobody can give it here.", error=True)
    try:
        approved = await confirm(call)
    except Exception as error:
        return Outcome(f"Asking the person for their OK failed ({error}); the call did not run.", error=True)
    if not approved:
        return Outcome("The person refused this call; it did not run.", error=True)
    return None
