"""ChatService policy over real HTTP: retries before the first token, failover along routes, cancellation."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from backend import (
    APIConnectionError,
    AuthenticationError,
    Backend,
    ChatRequest,
    InternalServerError,
    RateLimitError,
    Retrying,
    Started,
    TextDelta,
    UnknownModelError,
    UnsupportedCapabilityError,
    load_settings,
)
from backend.errors import APIError
from backend.providers.http import parse_retry_after
from backend.services.retry import backoff, retry_delay
from tests.conftest import text
from tests.upstream import Reply, ScriptedUpstream


def request(model: str = "scripted/scripted-1") -> ChatRequest:
    return ChatRequest(model=model, messages=[{"role": "user", "content": "hi"}])


async def run(backend: Backend, model: str = "scripted/scripted-1") -> list:
    return [event async for event in backend.chat.stream(request(model))]


def test_parse_retry_after_forms():
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_backoff_grows_with_jitter_and_a_cap():
    for attempt, full in [(0, 0.5), (1, 1.0), (2, 2.0), (6, 8.0)]:
        delays = {backoff(attempt) for _ in range(50)}
        assert all(0.75 * full <= d <= full for d in delays)
        assert len(delays) > 1  # jittered


def test_retry_delay_honours_retry_after_up_to_the_cap():
    assert retry_delay(RateLimitError("x", retry_after=3), 0, cap=20) == 3
    assert retry_delay(RateLimitError("x", retry_after=60), 0, cap=20) is None  # fail over instead of waiting
    assert retry_delay(AuthenticationError("x"), 0, cap=20) is None
    assert 0 < retry_delay(InternalServerError("x"), 0, cap=20) <= 0.5


async def test_retries_a_429_waiting_what_retry_after_says(scripted_backend, upstream):
    upstream.enqueue(Reply.error(429, "slow", {"retry-after-ms": "100"}), Reply.text(["fine"]))
    events = await run(scripted_backend)
    retries = [e for e in events if isinstance(e, Retrying)]
    assert [(r.provider, r.model, r.delay) for r in retries] == [("scripted", "scripted-1", 0.1)]
    assert "rate limiting" in retries[0].reason
    assert text(events) == "fine"
    assert len(upstream.chat_requests()) == 2


async def test_gives_up_after_max_retries(scripted_backend, upstream):
    upstream.enqueue(*[Reply.error(500, "down")] * 5)
    with pytest.raises(InternalServerError):
        await run(scripted_backend)
    assert len(upstream.chat_requests()) == 3  # one try + max_retries (2)


async def test_does_not_retry_auth_errors(scripted_backend, upstream):
    upstream.enqueue(Reply.error(401, "bad key"))
    with pytest.raises(AuthenticationError):
        await run(scripted_backend)
    assert len(upstream.chat_requests()) == 1


async def test_no_retry_after_the_first_token_and_partial_text_kept(scripted_backend, upstream):
    upstream.enqueue(Reply.text(["one ", "two ", "three"], drop_after=3))
    seen = []
    with pytest.raises(APIConnectionError) as caught:
        async for event in scripted_backend.chat.stream(request()):
            seen.append(event)
    assert caught.value.partial_text == "one two "
    assert text(seen) == "one two "
    assert caught.value.provider == "scripted" and caught.value.model == "scripted-1"
    assert len(upstream.chat_requests()) == 1


@pytest.fixture
def two_providers(write_config):
    with ScriptedUpstream() as first, ScriptedUpstream() as second:
        config = textwrap.dedent(
            f"""
            [app]
            embedded_model = false
            [providers.first]
            kind = "openai"
            base_url = "{first.base_url}"
            models = ["a"]
            max_retries = 1
            [providers.second]
            kind = "openai"
            base_url = "{second.base_url}"
            models = ["b"]
            [routes]
            fast = ["first/a", "second/b"]
            """
        )
        yield Backend(load_settings(write_config(config))), first, second


async def test_route_fails_over_before_the_first_token(two_providers):
    backend, first, second = two_providers
    first.enqueue(Reply.error(503, "down"), Reply.error(503, "still down"))
    second.enqueue(Reply.text(["from ", "second"]))
    events = await run(backend, "fast")
    assert text(events) == "from second"
    assert Started("second", "b") in events
    assert [(r.provider, r.model) for r in events if isinstance(r, Retrying)] == [("first", "a"), ("second", "b")]
    assert len(first.chat_requests()) == 2 and len(second.chat_requests()) == 1


async def test_long_retry_after_fails_over_instead_of_waiting(two_providers):
    backend, first, _ = two_providers
    first.enqueue(Reply.error(429, "come back in an hour", {"retry-after": "3600"}))
    events = await run(backend, "fast")
    assert text(events) == "Hello from the scripted upstream."
    assert len(first.chat_requests()) == 1


async def test_route_exhausted_raises_the_last_error(two_providers):
    backend, first, second = two_providers
    first.enqueue(Reply.error(401, "no"))
    second.enqueue(Reply.error(400, "bad"))
    with pytest.raises(APIError) as caught:
        await run(backend, "fast")
    assert caught.value.provider == "second"


async def test_closing_the_stream_closes_the_upstream_connection(scripted_backend, upstream):
    upstream.enqueue(Reply.text([f"w{i} " for i in range(500)], delay=0.02))
    stream = scripted_backend.chat.stream(request())
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()
    sent = upstream.chat_requests()[0]
    assert upstream.wait_for(lambda: sent.disconnected_at is not None, timeout=5)
    assert sent.finished_at is None


async def test_cancelling_the_consumer_task_closes_the_upstream(scripted_backend, upstream):
    upstream.enqueue(Reply.text([f"w{i} " for i in range(500)], delay=0.02))
    got_text = asyncio.Event()

    async def consume():
        async for event in scripted_backend.chat.stream(request()):
            if isinstance(event, TextDelta):
                got_text.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_text.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sent = upstream.chat_requests()[0]
    assert upstream.wait_for(lambda: sent.disconnected_at is not None, timeout=5)


async def test_unknown_model_and_unsupported_parameter_fail_before_any_request(scripted_backend, upstream):
    with pytest.raises(UnknownModelError, match="Unknown model 'scripted/nope'"):
        await run(scripted_backend, "scripted/nope")
    with pytest.raises(UnknownModelError):
        await run(scripted_backend, "nonsense")
    assert upstream.chat_requests() == []


async def test_local_model_refuses_tools_before_loading(write_config):
    backend = Backend(load_settings())
    tools_request = ChatRequest(
        model="local/gemma-3-270m", messages=[], tools=[{"type": "function", "function": {"name": "f"}}]
    )
    with pytest.raises(UnsupportedCapabilityError, match="tools not supported"):
        backend.chat.plan(tools_request)


async def test_model_suggests_a_title_and_failure_leaves_none(scripted_backend, upstream):
    from backend.services.chat import suggest_title

    upstream.enqueue(Reply.text(['"Tides ', "and the ", 'Moon"\n']), Reply.error(401, "no"))
    title = await suggest_title(scripted_backend.chat, "scripted/scripted-1", "How do tides work?", "The Moon pulls.")
    assert title == "Tides and the Moon"
    prompt = upstream.chat_requests()[0].body["messages"][0]["content"]
    assert "How do tides work?" in prompt and "The Moon pulls." in prompt
    assert await suggest_title(scripted_backend.chat, "scripted/scripted-1", "q", "a") == ""
