"""The OpenAI-compatible adapter against the scripted upstream over real HTTP: wire parsing and faults."""

from __future__ import annotations

import json

import pytest

from backend import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    Finish,
    InternalServerError,
    RateLimitError,
    ReasoningDelta,
    ServiceUnavailableError,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
    load_settings,
)
from backend.providers import create_provider
from tests.conftest import scripted_config, text
from tests.upstream import Reply, sse


@pytest.fixture
def provider(upstream, write_config, monkeypatch):
    monkeypatch.setenv("SCRIPTED_KEY", "sk-very-secret-key")
    config = scripted_config(upstream) + 'api_key_env = "SCRIPTED_KEY"\nheaders = {"X-Team" = "switchboard"}\n'
    settings = load_settings(write_config(config))
    return create_provider("scripted", settings.providers["scripted"])


async def events_of(provider, **request):
    request.setdefault("messages", [{"role": "user", "content": "hi"}])
    return [event async for event in provider.stream_chat(ChatRequest(model="scripted-1", **request))]


async def test_stream_parses_text_reasoning_tools_usage_and_finish(provider, upstream):
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":'}}
    upstream.enqueue(
        Reply.text(["Hel", "lo"], reasoning=["think", "ing"], tool_calls=[call], usage=(7, 3), finish="tool_calls")
    )
    events = await events_of(provider, temperature=0.2, max_tokens=50, seed=3, stop=["\n\n"])
    assert [e.text for e in events if isinstance(e, ReasoningDelta)] == ["think", "ing"]
    assert text(events) == "Hello"
    assert [e for e in events if isinstance(e, ToolCallDelta)] == [ToolCallDelta(0, "call_1", "lookup", '{"q":')]
    assert Finish("tool_calls") in events
    assert Usage(7, 3) in events
    sent = upstream.chat_requests()[0]
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert (sent.body["temperature"], sent.body["max_tokens"], sent.body["seed"], sent.body["stop"]) == (
        0.2,
        50,
        3,
        ["\n\n"],
    )
    assert sent.headers["authorization"] == "Bearer sk-very-secret-key"
    assert sent.headers["x-team"] == "switchboard"


async def test_reasoning_field_variant_and_tool_arguments(provider, upstream):
    frames = [
        sse({"choices": [{"index": 0, "delta": {"reasoning": "plan"}}]}),
        sse({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]}),
        sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        b"data: [DONE]\n\n",
    ]
    upstream.enqueue(Reply.events(frames))
    events = await events_of(provider)
    assert ReasoningDelta("plan") in events
    assert ToolCallDelta(0, None, None, "1}") in events


async def test_multibyte_utf8_split_across_network_writes(provider, upstream):
    payload = sse({"choices": [{"index": 0, "delta": {"content": "héllo 世界 👋"}, "finish_reason": None}]})
    cut_inside_chars = [payload.index("é".encode()) + 1, payload.index("世".encode()) + 2, payload.index(b"\xf0") + 3]
    pieces, start = [], 0
    for cut in cut_inside_chars:
        pieces.append(payload[start:cut])
        start = cut
    pieces.append(payload[start:])
    finish = sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    upstream.enqueue(Reply.events([*pieces, finish, b"data: [DONE]\n\n"], delay=0.02))
    assert text(await events_of(provider)) == "héllo 世界 👋"


async def test_sse_comments_and_crlf_lines_are_handled(provider, upstream):
    body = b": keep-alive\r\n\r\n" + sse({"choices": [{"index": 0, "delta": {"content": "ok"}}]}).replace(
        b"\n", b"\r\n"
    )
    finish = sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    upstream.enqueue(Reply.events([body, finish, b"data: [DONE]\n\n"]))
    assert text(await events_of(provider)) == "ok"


async def test_json_answer_to_a_stream_request_is_accepted(provider, upstream):
    completion = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
    }
    upstream.enqueue(Reply(headers={"content-type": "application/json"}, frames=[json.dumps(completion).encode()]))
    events = await events_of(provider)
    assert text(events) == "whole"
    assert Usage(2, 1) in events


@pytest.mark.parametrize(
    ("reply", "error", "status"),
    [
        (Reply.error(400, "bad parameter"), BadRequestError, 400),
        (Reply.error(401, "Incorrect API key provided: sk-very-secret-key"), AuthenticationError, 401),
        (Reply.error(429, "slow down", {"retry-after": "7"}), RateLimitError, 429),
        (Reply.error(500, "boom"), InternalServerError, 500),
        (Reply.error(503, "overloaded"), ServiceUnavailableError, 503),
    ],
)
async def test_http_errors_map_to_typed_errors(provider, upstream, reply, error, status):
    upstream.enqueue(reply)
    with pytest.raises(error) as caught:
        await events_of(provider)
    assert caught.value.status == status
    assert caught.value.provider == "scripted"
    assert caught.value.model == "scripted-1"
    assert "sk-very-secret-key" not in str(caught.value)
    assert "sk-very-secret-key" not in caught.value.user_message()


async def test_rate_limit_carries_retry_after(provider, upstream):
    upstream.enqueue(Reply.error(429, "slow down", {"retry-after-ms": "1500"}))
    with pytest.raises(RateLimitError) as caught:
        await events_of(provider)
    assert caught.value.retry_after == 1.5
    assert "try again in 2 s" in caught.value.user_message()


async def test_error_event_inside_the_stream(provider, upstream):
    frames = [
        sse({"choices": [{"index": 0, "delta": {"content": "partial"}}]}),
        sse({"error": {"message": "upstream overloaded mid-answer", "type": "server_error"}}),
    ]
    upstream.enqueue(Reply.events(frames))
    seen = []
    with pytest.raises(InternalServerError, match="overloaded mid-answer"):
        async for event in provider.stream_chat(ChatRequest(model="scripted-1", messages=[])):
            seen.append(event)
    assert text(seen) == "partial"


async def test_rate_limit_error_event(provider, upstream):
    upstream.enqueue(Reply.events([sse({"error": {"message": "quota", "type": "rate_limit_exceeded"}})]))
    with pytest.raises(RateLimitError):
        await events_of(provider)


async def test_malformed_event(provider, upstream):
    upstream.enqueue(Reply.events([b"data: {not json\n\n"]))
    with pytest.raises(StreamError, match="malformed event"):
        await events_of(provider)


async def test_wrong_content_type(provider, upstream):
    upstream.enqueue(Reply(headers={"content-type": "text/html"}, frames=[b"<html>proxy login</html>"]))
    with pytest.raises(StreamError, match="expected an event stream"):
        await events_of(provider)


async def test_drop_mid_stream(provider, upstream):
    upstream.enqueue(Reply.text(["a", "b", "c", "d", "e"], drop_after=3))
    with pytest.raises(APIConnectionError):
        await events_of(provider)


async def test_clean_end_without_finish_is_an_incomplete_answer(provider, upstream):
    upstream.enqueue(Reply.events([sse({"choices": [{"index": 0, "delta": {"content": "cut"}}]})]))
    with pytest.raises(APIConnectionError, match="ended before the answer was complete"):
        await events_of(provider)


async def test_connection_refused(write_config):
    from tests.conftest import free_port

    config = f"""
    [app]
    embedded_model = false
    [providers.gone]
    kind = "openai"
    base_url = "http://127.0.0.1:{free_port()}/v1"
    models = ["m"]
    """
    provider = create_provider("gone", load_settings(write_config(config)).providers["gone"])
    with pytest.raises(APIConnectionError) as caught:
        [event async for event in provider.stream_chat(ChatRequest(model="m", messages=[]))]
    assert "Could not connect to gone/m" in caught.value.user_message()


async def test_list_models_from_endpoint(upstream, write_config):
    config = scripted_config(upstream).replace('models = ["scripted-1"]', "models = []")
    provider = create_provider("scripted", load_settings(write_config(config)).providers["scripted"])
    upstream.models = ["b-model", "a-model"]
    assert await provider.list_models() == ["a-model", "b-model"]


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        ({"content": "hi"}, [TextDelta("hi")]),
        ({"role": "assistant", "content": "hi"}, [TextDelta("hi")]),
        ({"content": "hi", "reasoning_content": "hm"}, [ReasoningDelta("hm"), TextDelta("hi")]),
        ({"content": "hi", "refusal": None, "role": "assistant"}, [TextDelta("hi")]),
        ({"reasoning": "hm"}, [ReasoningDelta("hm")]),
        ({"role": "assistant", "content": ""}, []),
    ],
)
def test_every_field_of_a_delta_is_read(delta, expected):
    """The per-token fast path (content alone, or with a role) never drops another field of the same delta."""
    from backend.providers.openai import chunk_events

    assert chunk_events({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}) == expected
