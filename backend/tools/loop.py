"""The tool loop: the model asks for tool calls, the app runs them and gives the results back, the model goes on,
until it answers without calling a tool.

One step is one model request (through `stream`, e.g. ChatService.stream, so retries, failover and timeouts
apply to each) and the calls it asked for. Every event of every step is passed on as it comes; around the calls
the loop adds `ToolCallStarted` (before a call runs, or waits for the person's OK) and `ToolResult` (as each
finishes: calls the model made at once run at once). The request's messages grow by the assistant message with
its `tool_calls` and one `role: "tool"` message per result, in the model's order, which is what the next step
sends and what a caller stores.

It stops, with a sentence the person reads as the end of the answer, when the model asks for more than
`max_steps` rounds of calls, or when `deadline` seconds have passed since its first step began (time waiting for
a person's OK counts: a reply does not hold a visitor's slot for ever). Closing the stream, or cancelling its task
(Stop), cancels the calls running and the model request alike.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing

from ..events import StreamEvent, TextDelta, ToolCallDelta, ToolCallStarted, ToolResult
from ..request import ChatRequest
from .calls import CallCollector, assistant_message, call_ids, tool_message
from .toolbox import Confirm, ToolSet

StreamFunction = Callable[[ChatRequest], AsyncIterator[StreamEvent]]


def steps_limit_sentence(steps: int) -> str:
    return f"\n\n(Stopped: the model asked for more than {steps} rounds of tool calls, the limit for one reply.)"


def deadline_sentence(seconds: float) -> str:
    return f"\n\n(Stopped: the tools of this reply ran out of time ({seconds:g} s).)"


async def tool_loop(
    stream: StreamFunction,
    request: ChatRequest,
    tools: ToolSet,
    *,
    max_steps: int = 8,
    deadline: float = 300.0,
    confirm: Confirm | None = None,
) -> AsyncIterator[StreamEvent]:
    """Stream `request` with `tools` offered to the model, running the calls it makes (see the module's
    docstring). The request's `tools` become the tool set's specs (after any it already had) and its messages grow
    step by step. With no tool in the set (none chosen, or none could start) this is one plain request."""
    specs = await tools.specs()  # starting the servers is bounded by their own start_timeout
    ends = time.monotonic() + deadline
    if specs:
        request.tools = [*(request.tools or ()), *specs]
        request.server_tools = True
    taken = call_ids(request.messages)
    for step in range(max_steps + 1):
        collector = CallCollector()
        text: list[str] = []
        events = stream(request)
        try:
            async for event in events:
                if type(event) is TextDelta and event.index == 0:
                    text.append(event.text)
                elif type(event) is ToolCallDelta and event.index == 0:
                    collector.add(event)
                yield event
        finally:
            if isinstance(events, AsyncGenerator):  # its upstream request is closed at once, not when collected
                await events.aclose()
        if not collector or not specs:
            return
        if step == max_steps:
            yield TextDelta(steps_limit_sentence(max_steps))
            return
        if time.monotonic() >= ends:
            yield TextDelta(deadline_sentence(deadline))
            return
        calls = collector.calls(taken)
        request.messages.append(assistant_message("".join(text), calls))
        for call in calls:
            yield ToolCallStarted(call.id, call.name, call.arguments, tools.needs_confirmation(call))
        results = {}
        async with aclosing(tools.run_all(calls, confirm=confirm, deadline=ends)) as finished:
            async for call, outcome, seconds in finished:
                results[call.id] = outcome
                yield ToolResult(call.id, call.name, call.arguments, outcome.text, outcome.error, seconds)
        request.messages.extend(tool_message(call, results[call.id]) for call in calls)
