"""The chat service when providers misbehave, over real HTTP to scripted upstreams: silence timed out before and
during a reply, answers continued by the next provider after a mid-stream failure, and cooldowns."""

from __future__ import annotations

import asyncio
import textwrap
import time

import pytest

from backend import (
    APIConnectionError,
    APITimeoutError,
    Backend,
    BadRequestError,
    CoolingDownError,
    RateLimitError,
    Resumed,
    Retrying,
    Started,
    load_settings,
)
from backend.providers.continuation import CONTINUE_PROMPT, OverlapTrimmer
from backend.services.cooldown import Cooldowns
from tests.conftest import ask, chat_events, text
from tests.upstream import Reply, ScriptedUpstream, sse


def pieces(words: str) -> list[str]:
    return [word + " " for word in words.split()]


@pytest.fixture
def pair(write_config):
    """Two OpenAI-compatible upstreams, `first/a` and `second/b`, and a route `both` trying them in that order.
    Short timeouts so stalls end quickly; no retries on `first`, so each fault is seen once."""

    def build(extra: str = ""):
        first, second = ScriptedUpstream().start(), ScriptedUpstream().start()
        config = textwrap.dedent(
            f"""
            [app]
            embedded_model = false
            [providers.first]
            kind = "openai"
            base_url = "{first.base_url}"
            models = ["a"]
            max_retries = 0
            first_token_timeout = 1.0
            idle_timeout = 0.5
            {extra}
            [providers.second]
            kind = "openai"
            base_url = "{second.base_url}"
            models = ["b"]
            [routes]
            both = ["first/a", "second/b"]
            """
        )
        started.extend([first, second])
        return Backend(load_settings(write_config(config))), first, second

    started: list[ScriptedUpstream] = []
    yield build
    for upstream in started:
        upstream.stop()


# --- timeouts ----------------------------------------------------------------------------------------------------


async def test_silence_before_the_first_output_times_out(pair):
    backend, first, _ = pair()
    first.enqueue(Reply.text(["never"], stall_after=1))  # headers and the empty role chunk, then nothing
    began = time.monotonic()
    with pytest.raises(APITimeoutError) as caught:
        await chat_events(backend, "first/a")
    assert 0.9 < time.monotonic() - began < 5
    assert caught.value.message == "no output within 1 s"
    assert caught.value.user_message() == "first/a did not answer in time: no output within 1 s"
    assert first.wait_for(lambda: first.chat_requests()[0].disconnected_at is not None)


async def test_keepalive_pings_are_not_output(pair):
    """SSE comments keep the connection busy but bring no answer: they do not hold off the first-output limit."""
    backend, first, _ = pair()
    first.enqueue(Reply.events([b": ping\n\n"] * 100, delay=0.1))
    with pytest.raises(APITimeoutError, match="no output within 1 s"):
        await chat_events(backend, "first/a")


async def test_stall_mid_stream_keeps_the_partial_answer(pair):
    backend, first, _ = pair()
    first.enqueue(Reply.text(pieces("The quick brown fox"), stall_after=3))  # role chunk, "The ", "quick "
    events = []
    with pytest.raises(APITimeoutError) as caught:
        async for event in backend.chat.stream(ask("first/a")):
            events.append(event)
    assert text(events) == "The quick "
    assert caught.value.partial_text == "The quick "
    assert caught.value.message == "no output for 0.5 s"
    assert caught.value.user_message() == "first/a stopped sending for too long; the answer is incomplete."


async def test_a_slow_consumer_is_not_a_stall(pair):
    """Time the caller spends between two events is not upstream silence."""
    backend, first, _ = pair()
    first.enqueue(Reply.text(pieces("one two three")))
    events = []
    async for event in backend.chat.stream(ask("first/a")):
        events.append(event)
        await asyncio.sleep(0.4)  # with idle_timeout = 0.5, three of these add up to more
    assert text(events) == "one two three "


async def test_stop_during_a_timed_stream_is_a_plain_cancellation(pair):
    backend, first, _ = pair()
    first.enqueue(Reply.text(pieces("w " * 200), delay=0.05))

    async def consume():
        async for _ in backend.chat.stream(ask("first/a")):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert first.wait_for(lambda: first.chat_requests()[0].disconnected_at is not None)


# --- failover that continues the answer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"drop_after": 4}, id="drop"),
        pytest.param({"stall_after": 4}, id="stall"),
    ],
)
async def test_mid_stream_failure_is_continued_by_the_next_provider(pair, fault):
    backend, first, second = pair()
    first.enqueue(Reply.text(pieces("The quick brown fox jumps over the lazy dog."), **fault))
    second.enqueue(Reply.text(["fox jumps ", "over the ", "lazy dog."]))
    events = await chat_events(backend, "both")
    assert text(events) == "The quick brown fox jumps over the lazy dog."
    resumed = [event for event in events if isinstance(event, Resumed)]
    assert len(resumed) == 1 and (resumed[0].provider, resumed[0].model) == ("second", "b")
    assert "first/a" in resumed[0].reason
    # One answer: the first provider's text, then the marker, then only the continuation.
    at = events.index(resumed[0])
    assert text(events[:at]) == "The quick brown " and text(events[at:]) == "fox jumps over the lazy dog."
    assert events.index(Started("first", "a")) < at
    # The second provider saw the question, the partial answer and the request to continue it.
    sent = second.chat_requests()[0].body["messages"]
    assert sent == [
        {"role": "user", "content": "Tell me about foxes."},
        {"role": "assistant", "content": "The quick brown"},
        {"role": "user", "content": CONTINUE_PROMPT},
    ]


async def test_error_event_mid_stream_is_continued(pair):
    backend, first, second = pair()
    overloaded = sse({"error": {"message": "Overloaded", "type": "server_error", "code": 503}})
    frames = [*Reply.text(pieces("Foxes are small")).frames[:3], overloaded]
    first.enqueue(Reply.events(frames))
    second.enqueue(Reply.text(["Foxes are small omnivores."]))  # the whole answer again: the repeat is trimmed
    events = await chat_events(backend, "both")
    assert text(events) == "Foxes are small omnivores."
    assert any(isinstance(event, Resumed) for event in events)


async def test_a_request_error_mid_stream_is_not_continued(pair):
    """Only passing failures move on: a content-policy style 400 ends the answer, partial text kept."""
    backend, first, second = pair()
    refusal = sse({"error": {"message": "content policy", "type": "invalid_request_error", "code": 400}})
    first.enqueue(Reply.events([*Reply.text(pieces("I will")).frames[:3], refusal]))
    with pytest.raises(BadRequestError) as caught:
        await chat_events(backend, "both")
    assert caught.value.partial_text == "I will "
    assert second.chat_requests() == []


async def test_without_another_provider_the_error_keeps_the_partial_answer(pair):
    backend, first, _ = pair()
    first.enqueue(Reply.text(pieces("only part of it"), drop_after=3))
    with pytest.raises(APIConnectionError) as caught:
        await chat_events(backend, "first/a")
    assert caught.value.partial_text == "only part "


async def test_continuation_that_fails_before_output_moves_on(write_config):
    """A continuation is retried and failed over like any request before its first output."""
    with ScriptedUpstream() as one, ScriptedUpstream() as two, ScriptedUpstream() as three:
        config = "[app]\nembedded_model = false\n"
        for name, upstream in (("one", one), ("two", two), ("three", three)):
            config += f'[providers.{name}]\nkind = "openai"\nbase_url = "{upstream.base_url}"\nmodels = ["m"]\n'
            config += "max_retries = 0\n"
        config += '[routes]\nchain = ["one/m", "two/m", "three/m"]\n'
        backend = Backend(load_settings(write_config(config)))
        one.enqueue(Reply.text(pieces("Red sky at night"), drop_after=3))
        two.enqueue(Reply.error(503, "down"))
        three.enqueue(Reply.text(["at night, ", "shepherd's delight."]))
        events = await chat_events(backend, "chain")
    assert text(events) == "Red sky at night, shepherd's delight."
    assert [(e.provider, e.model) for e in events if isinstance(e, Resumed)] == [("three", "m")]
    assert [(e.provider, e.model) for e in events if isinstance(e, Retrying)] == [("two", "m"), ("three", "m")]


async def test_python_client_streams_one_answer_across_providers(pair):
    from backend import AsyncClient

    backend, first, second = pair()
    first.enqueue(Reply.text(pieces("Once upon a time"), drop_after=4))
    second.enqueue(Reply.text(["time there was a fox."]))
    async with AsyncClient(settings=backend.settings) as client:
        stream = await client.chat.completions.create(model="both", messages="story", stream=True)
        chunks = [chunk async for chunk in stream]
    content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert content == "Once upon a time there was a fox."
    assert {chunk.provider for chunk in chunks if chunk.choices[0].delta.content} == {"first", "second"}


# --- continuation text ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("partial", "continued", "expected"),
    [
        ("Hello wor", ["ld, how", " are you"], "Hello world, how are you"),  # mid-word, prefill style
        ("Hello ", [" world"], "Hello world"),  # both bring the space: one is kept
        ("Hello", [" world"], "Hello world"),
        ("The quick brown fox jumps", [" The quick brown", " fox jumps over"], "The quick brown fox jumps over"),
        ("The quick brown fox jumps ", ["quick brown fox jumps over"], "The quick brown fox jumps over"),
        ("Once upon a time there", ["Once upon a ", "time there was ", "a king" + "." * 200], None),
        ("I said no", ["no more"], "I said nono more"),  # too short to tell a repeat from the text itself
    ],
)
def test_overlap_trimmer(partial, continued, expected):
    trimmer = OverlapTrimmer(partial)
    result = partial + "".join(trimmer.feed(piece) for piece in continued) + trimmer.flush()
    assert result == (expected or "Once upon a time there was a king" + "." * 200)


# --- cooldowns -------------------------------------------------------------------------------------------------------


async def test_after_a_429_the_model_rests_and_the_route_skips_it(pair):
    backend, first, second = pair()
    first.enqueue(Reply.error(429, "slow down", {"retry-after": "60"}))
    assert text(await chat_events(backend, "both")) == "Hello from the scripted upstream."
    assert len(first.chat_requests()) == 1
    # The next request goes straight to the second provider: the first is not asked again while it rests.
    events = await chat_events(backend, "both")
    assert text(events) == "Hello from the scripted upstream."
    assert len(first.chat_requests()) == 1 and len(second.chat_requests()) == 2
    assert not any(isinstance(event, Retrying) for event in events)
    # Asked for directly, it refuses at once, saying when to come back.
    with pytest.raises(RateLimitError) as caught:
        await chat_events(backend, "first/a")
    assert 55 < caught.value.retry_after <= 60
    assert len(first.chat_requests()) == 1


async def test_repeated_failures_start_a_cooldown_that_ends(pair):
    backend, first, _ = pair("cooldown = 0.6\nfailures_before_cooldown = 2\nretry_after_cap = 0.1")
    first.enqueue(Reply.error(500, "boom"), Reply.error(500, "boom"))
    for _ in range(2):
        with pytest.raises(Exception, match="boom"):
            await chat_events(backend, "first/a")
    with pytest.raises(CoolingDownError) as caught:
        await chat_events(backend, "first/a")
    assert "failed several times in a row and is resting" in caught.value.user_message()
    assert len(first.chat_requests()) == 2
    await asyncio.sleep(0.7)
    assert text(await chat_events(backend, "first/a")) == "Hello from the scripted upstream."


async def test_a_short_rest_is_waited_out(pair):
    backend, first, _ = pair("cooldown = 0.3\nfailures_before_cooldown = 1")
    first.enqueue(Reply.error(503, "busy"))
    with pytest.raises(Exception, match="busy"):
        await chat_events(backend, "first/a")
    events = await chat_events(backend, "first/a")
    assert text(events) == "Hello from the scripted upstream."
    assert [e.reason for e in events if isinstance(e, Retrying)] == ["first/a is resting after failures."]


def test_cooldown_policy():
    now = [100.0]
    cooldowns = Cooldowns(clock=lambda: now[0])
    cooldowns.failed("p/m", RateLimitError("x", retry_after=7), cooldown=10, failures_before_cooldown=3)
    assert cooldowns.remaining("p/m") == 7  # Retry-After wins over the default
    cooldowns.failed("p/n", RateLimitError("x"), cooldown=10, failures_before_cooldown=3)
    assert cooldowns.remaining("p/n") == 10
    cooldowns.failed("p/o", BadRequestError("x"), cooldown=10, failures_before_cooldown=1)
    assert cooldowns.remaining("p/o") == 0  # the request's fault, not the model's
    now[0] += 8
    assert cooldowns.remaining("p/m") == 0 and cooldowns.remaining("p/n") == 2
    cooldowns.succeeded("p/n")
    assert cooldowns.remaining("p/n") == 0
