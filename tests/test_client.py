"""The Python API shapes: AsyncClient, Client and the g4f-style ChatCompletion facade, over real HTTP."""

from __future__ import annotations

import asyncio

import pytest

from backend import (
    APIError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    ChatCompletion,
    ChatCompletionEvent,
    ChatCompletionRole,
    Client,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UnknownModelError,
    load_settings,
    models,
)
from backend.api.types import ChatCompletion as CompletionObject
from backend.api.types import ChatCompletionChunk
from tests.conftest import scripted_config
from tests.upstream import Reply


@pytest.fixture
def settings(upstream, write_config):
    return load_settings(write_config(scripted_config(upstream)))


async def test_async_create_returns_a_completion(settings, upstream):
    upstream.enqueue(Reply.text(["Hello", " world"], usage=(4, 2)))
    async with AsyncClient(settings=settings) as client:
        reply = await client.chat.completions.create(
            model="scripted/scripted-1", messages=[{"role": "user", "content": "hi"}]
        )
    assert isinstance(reply, CompletionObject)
    assert reply.choices[0].message.content == "Hello world"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (4, 2, 6)
    assert reply.model == "scripted/scripted-1" and reply.provider == "scripted"
    assert reply.object == "chat.completion"


async def test_async_stream_both_iteration_forms(settings, upstream):
    upstream.enqueue(Reply.text(["a", "b", "c"]), Reply.text(["x", "y"]))
    async with AsyncClient(settings=settings) as client:
        direct = [c async for c in client.chat.completions.create(messages="hi", stream=True)]
        awaited = [c async for c in await client.chat.completions.create(messages="hi", stream=True)]
    for chunks, expected in ((direct, "abc"), (awaited, "xy")):
        assert all(isinstance(c, ChatCompletionChunk) and c.choices for c in chunks)
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert chunks[-1].usage is not None


async def test_parameters_are_passed_through(settings, upstream):
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    async with AsyncClient(settings=settings) as client:
        await client.chat.completions.create(
            messages="hi",
            temperature=0.1,
            top_p=0.9,
            max_tokens=12,
            n=1,
            seed=42,
            stop=["END"],
            timeout=30,
            response_format=schema,
            tools=tools,
            tool_choice="auto",
        )
    body = upstream.chat_requests()[0].body
    expected = {
        "temperature": 0.1,
        "top_p": 0.9,
        "max_tokens": 12,
        "n": 1,
        "seed": 42,
        "stop": ["END"],
        "response_format": schema,
        "tools": tools,
        "tool_choice": "auto",
    }
    assert {key: body[key] for key in expected} == expected
    assert body["messages"] == [{"role": "user", "content": "hi"}]


async def test_a_keyword_create_does_not_take_is_refused_at_the_call(settings, upstream):
    """`create` takes its keywords from one TypedDict (backend/client/params.py): a name it does not know is a
    TypeError at the call, as a misspelt keyword of any function, even one the request itself has (`server_tools`:
    the app's own tools, never a caller's), and nothing is sent."""
    async with AsyncClient(settings=settings) as client:
        for wrong in ({"temprature": 0.5}, {"server_tools": True}):
            with pytest.raises(TypeError, match="unexpected keyword argument"):
                client.chat.completions.create(messages="hi", **wrong)
    assert upstream.chat_requests() == []


async def test_tool_calls_are_assembled(settings, upstream):
    calls = [
        {"index": 0, "id": "call_9", "type": "function", "function": {"name": "lookup", "arguments": '{"q": '}},
        {"index": 0, "function": {"arguments": '"paris"}'}},
    ]
    upstream.enqueue(Reply.text([], tool_calls=calls, finish="tool_calls"))
    async with AsyncClient(settings=settings) as client:
        reply = await client.chat.completions.create(messages="weather?")
    call = reply.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == ("call_9", "lookup", '{"q": "paris"}')
    assert reply.choices[0].finish_reason == "tool_calls"


async def test_errors_are_typed_and_raised_at_the_call(settings, upstream):
    upstream.enqueue(*[Reply.error(429, "slow", {"retry-after": "120"})] * 3)
    async with AsyncClient(settings=settings) as client:
        with pytest.raises(RateLimitError):
            await client.chat.completions.create(messages="hi")
        with pytest.raises(UnknownModelError):
            client.chat.completions.create(model="ghost/model", messages="hi", stream=True)


async def test_gather_runs_requests_concurrently(settings, upstream):
    upstream.default = Reply.text(["same"], delay=0.05)
    async with AsyncClient(settings=settings) as client:
        replies = await asyncio.gather(*(client.chat.completions.create(messages=f"q{i}") for i in range(5)))
    assert [r.choices[0].message.content for r in replies] == ["same"] * 5


def test_sync_client_create_and_stream(settings, upstream):
    upstream.enqueue(Reply.text(["sync"]), Reply.text(["s", "t", "r"]))
    with Client(settings=settings) as client:
        reply = client.chat.completions.create(messages="hi")
        assert reply.choices[0].message.content == "sync"
        pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(messages="hi", stream=True)]
    assert "".join(pieces) == "str"


def test_sync_stream_closed_early_closes_upstream(settings, upstream):
    upstream.enqueue(Reply.text([f"w{i}" for i in range(400)], delay=0.02))
    with Client(settings=settings) as client:
        stream = client.chat.completions.create(messages="hi", stream=True)
        next(stream)
        next(stream)
        stream.close()
    sent = upstream.chat_requests()[0]
    assert upstream.wait_for(lambda: sent.disconnected_at is not None, timeout=5)


async def test_sync_client_works_inside_a_running_event_loop(settings, upstream):
    upstream.enqueue(Reply.text(["inside"]))
    with Client(settings=settings) as client:
        assert client.chat.completions.create(messages="hi").choices[0].message.content == "inside"


@pytest.fixture
def facade(upstream, write_config, monkeypatch):
    """ChatCompletion uses a shared default client that reads the config like the app does."""
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(write_config(scripted_config(upstream))))
    ChatCompletion._client = None
    yield
    if ChatCompletion._client is not None:
        ChatCompletion._client.close()
    ChatCompletion._client = None


def test_chat_completion_facade_strings(facade, upstream):
    upstream.enqueue(Reply.text(["Hi", " there"]), Reply.text(["str", "eam"]))
    assert ChatCompletion.create(model="scripted/scripted-1", messages=[{"role": "user", "content": "x"}]) == "Hi there"
    pieces = list(ChatCompletion.create(messages=[{"role": "user", "content": "x"}], stream=True))
    assert pieces == ["str", "eam"]


async def test_chat_completion_create_async(facade, upstream):
    upstream.enqueue(Reply.text(["async", " text"]))
    assert await ChatCompletion.create_async(messages=[{"role": "user", "content": "x"}]) == "async text"


# --- The typed SDK's dialect (seed 003): chat.create / chat.stream with a request dict or keywords ---------------


def test_typed_create_and_stream_take_a_request_or_keywords(upstream):
    upstream.enqueue(Reply.text(["whole"]), Reply.text(["in", " parts"]))
    with Client(api_key_auth="sk-typed", server_url=upstream.base_url) as s:
        reply = s.chat.create(
            request={"model": "small", "messages": [{"role": ChatCompletionRole.SYSTEM, "content": "Be brief."}]},
            random_seed=7,
            safe_prompt=True,
        )
        events = list(s.chat.stream(model="small", messages=[{"role": ChatCompletionRole.USER, "content": "hi"}]))
    assert reply.choices[0].message.content == "whole"
    assert all(isinstance(event, ChatCompletionEvent) for event in events)
    assert "".join(event.data.choices[0].delta.content or "" for event in events) == "in parts"
    created, streamed = (request.body for request in upstream.chat_requests())
    assert created["messages"] == [{"role": "system", "content": "Be brief."}]
    assert created["seed"] == 7 and created["safe_prompt"] is True  # a field create does not name goes as it is
    assert streamed["model"] == "small" and streamed["messages"][0]["role"] == "user"
    assert upstream.chat_requests()[0].headers["authorization"] == "Bearer sk-typed"


def test_typed_stream_raises_at_the_call(upstream):
    upstream.enqueue(Reply.error(401, "no such key"))
    with Client(api_key_auth="sk-typed", server_url=upstream.base_url) as s:
        with pytest.raises(models.Unauthorized) as refused:
            s.chat.stream(request={"model": "small", "messages": "hi"})  # before any iteration
    assert refused.value.status_code == 401


def test_typed_stream_left_early_closes_the_upstream(upstream):
    upstream.enqueue(Reply.text([f"w{i}" for i in range(400)], delay=0.02))
    with Client(server_url=upstream.base_url) as s, s.chat.stream(model="small", messages="hi") as events:
        next(events)
    sent = upstream.chat_requests()[0]
    assert upstream.wait_for(lambda: sent.disconnected_at is not None, timeout=5)


async def test_typed_async_twins(upstream):
    upstream.default = Reply.text(["a", "b"])
    request = {"model": "small", "messages": [{"role": "user", "content": "hi"}]}
    async with AsyncClient(server_url=upstream.base_url) as client:
        created = await client.chat.create(request=request)
        streamed = [event async for event in await client.chat.stream(request=request)]
        also = await client.chat.create_async(request=request)
    with Client(server_url=upstream.base_url) as s:  # the SDK's async names on the sync client, from this loop
        from_sync = await s.chat.create_async(request=request)
        async with await s.chat.stream_async(**request) as events:
            from_sync_streamed = [event async for event in events]
    assert [c.choices[0].message.content for c in (created, also, from_sync)] == ["ab"] * 3
    for events in (streamed, from_sync_streamed):
        assert "".join(event.data.choices[0].delta.content or "" for event in events) == "ab"


def test_typed_requests_that_contradict_themselves(upstream):
    with Client(server_url=upstream.base_url) as s:
        with pytest.raises(ValueError, match=r"use chat\.stream"):
            s.chat.create(request={"model": "small", "messages": "hi", "stream": True})
        with pytest.raises(ValueError, match="random_seed or seed"):
            s.chat.create(model="small", messages="hi", random_seed=1, seed=2)
    with pytest.raises(ValueError, match="api_key_auth or api_key"):
        Client(api_key_auth="one", api_key="two", server_url=upstream.base_url)
    assert upstream.chat_requests() == []


def test_the_typed_sdk_names_are_our_errors():
    assert (models.BadRequest, models.Unauthorized, models.Forbidden, models.NotFound) == (
        BadRequestError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
    )
    assert (models.TooManyRequests, models.ServiceUnavailable, models.SDKError) == (
        RateLimitError,
        ServiceUnavailableError,
        APIError,
    )
    assert models.InternalServerError is InternalServerError
    assert [role.value for role in ChatCompletionRole] == ["user", "assistant", "system", "tool"]
