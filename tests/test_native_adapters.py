"""The Ollama, Anthropic and Gemini adapters against the scripted upstream over real HTTP: the exact request each
sends, how each stream is read, and the faults (errors mid-stream, rate limits, malformed events, drops)."""

from __future__ import annotations

import base64
import io
import textwrap

import pytest

from backend import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    Finish,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    ReasoningDelta,
    ServiceUnavailableError,
    StreamError,
    TextDelta,
    ToolCallDelta,
    UnsupportedCapabilityError,
    Usage,
    load_settings,
)
from backend.providers import create_provider
from tests.conftest import text
from tests.wire import (
    anthropic_error,
    anthropic_error_event,
    anthropic_events,
    anthropic_message_start,
    anthropic_reply,
    anthropic_text_delta,
    gemini_chunk,
    gemini_error,
    gemini_events,
    gemini_reply,
    json_reply,
    ollama_chunk,
    ollama_error,
    ollama_lines,
    ollama_reply,
    rechunked,
)

KEY = "sk-native-very-secret-key"
MODELS = {"ollama": "llama3.2", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a word up.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "additionalProperties": False},
    },
}


@pytest.fixture
def make_provider(upstream, write_config, monkeypatch):
    """Build one adapter against the upstream; `extra` lines are added to its provider table."""
    monkeypatch.setenv("NATIVE_KEY", KEY)

    def build(kind: str, extra: str = "", models: str | None = None):
        model = MODELS[kind]
        config = textwrap.dedent(
            f"""
            [app]
            embedded_model = false

            [providers.{kind}]
            kind = "{kind}"
            base_url = "http://127.0.0.1:{upstream.port}"
            api_key_env = "NATIVE_KEY"
            models = {models if models is not None else f'["{model}"]'}
            vision_models = ["{model}"]
            headers = {{"X-Team" = "switchboard"}}
            connect_timeout = 2
            idle_timeout = 5
            first_token_timeout = 5
            """
        ) + textwrap.dedent(extra)
        return create_provider(kind, load_settings(write_config(config)).providers[kind])

    return build


@pytest.fixture
def ollama(make_provider):
    return make_provider("ollama", 'keep_alive = "10m"\n')


@pytest.fixture
def anthropic(make_provider):
    return make_provider("anthropic", "thinking_budget = 2048\n")


@pytest.fixture
def gemini(make_provider):
    return make_provider("gemini")


def tiny_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


PNG = tiny_png()
PNG_B64 = base64.b64encode(PNG).decode()
PNG_URL = f"data:image/png;base64,{PNG_B64}"


def with_image(text: str) -> dict:
    return {
        "role": "user",
        "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": PNG_URL}}],
    }


async def collect(provider, **request) -> list:
    request.setdefault("messages", [{"role": "user", "content": "hi"}])
    return [event async for event in provider.stream_chat(ChatRequest(model=MODELS[provider.kind], **request))]


async def until_error(provider, error: type[Exception], **request):
    """Run a stream that must fail; returns (events seen before the failure, the error)."""
    request.setdefault("messages", [{"role": "user", "content": "hi"}])
    seen = []
    with pytest.raises(error) as caught:
        async for event in provider.stream_chat(ChatRequest(model=MODELS[provider.kind], **request)):
            seen.append(event)
    assert caught.value.provider == provider.kind
    assert caught.value.model == MODELS[provider.kind]
    assert KEY not in str(caught.value)
    assert KEY not in caught.value.user_message()
    return seen, caught.value


def test_the_three_kinds_are_registered(make_provider):
    for kind in MODELS:
        provider = make_provider(kind)
        assert provider.kind == kind
        assert type(provider).__name__.lower() == f"{kind}provider"


@pytest.mark.parametrize(
    ("kind", "refused"),
    [("ollama", {"n": 2}), ("ollama", {"tool_choice": "auto"}), ("anthropic", {"seed": 1}), ("anthropic", {"n": 2})],
)
def test_parameters_the_protocol_lacks_are_refused_before_any_call(make_provider, upstream, kind, refused):
    provider = make_provider(kind)
    with pytest.raises(UnsupportedCapabilityError):
        provider.check(ChatRequest(model=MODELS[kind], messages=[], **refused))
    assert upstream.requests == []


# --- Ollama -----------------------------------------------------------------------------------------------------


async def test_ollama_stream_and_exact_request(ollama, upstream):
    upstream.enqueue(ollama_reply(["Hel", "lo"], thinking=["hm", "m"], usage=(7, 2)))
    messages = [{"role": "system", "content": "Be brief."}, with_image("What is this?")]
    events = await collect(
        ollama,
        messages=messages,
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        seed=3,
        stop="\n\n",
        response_format={"type": "json_object"},
    )
    assert events == [
        ReasoningDelta("hm"),
        ReasoningDelta("m"),
        TextDelta("Hel"),
        TextDelta("lo"),
        Finish("stop"),
        Usage(7, 2),
    ]
    sent = upstream.requests[0]
    assert (sent.method, sent.path) == ("POST", "/api/chat")
    assert sent.body == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is this?", "images": [PNG_B64]},
        ],
        "stream": True,
        "options": {"temperature": 0.2, "top_p": 0.9, "num_predict": 50, "seed": 3, "stop": ["\n\n"]},
        "keep_alive": "10m",
        "format": "json",
    }
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["x-team"] == "switchboard"


async def test_ollama_tools_schema_format_and_tool_turns(ollama, upstream):
    call = {"function": {"name": "lookup", "arguments": {"q": "otter"}}}
    upstream.enqueue(ollama_reply([], tool_calls=[call]))
    schema = {"type": "object", "properties": {"word": {"type": "string"}}}
    messages = [
        {"role": "user", "content": "Look up otter"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "otter"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "a river mammal"},
    ]
    events = await collect(
        ollama,
        messages=messages,
        tools=[TOOL],
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
    )
    assert events == [ToolCallDelta(0, "call_0", "lookup", '{"q": "otter"}'), Finish("tool_calls"), Usage(5, 0)]
    body = upstream.requests[0].body
    assert body["format"] == schema
    assert body["tools"] == [TOOL]
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "lookup", "arguments": {"q": "otter"}}}],
        },
        {"role": "tool", "content": "a river mammal", "tool_name": "lookup"},
    ]
    assert "options" not in body


async def test_ollama_lines_split_across_network_writes(ollama, upstream):
    # Cut mid-line, mid-JSON and inside every multi-byte character. U+0085 and U+2028 are line breaks to
    # str.splitlines (and so to httpx's aiter_lines) but plain characters inside Ollama's JSON strings.
    pieces = ["héllo 世界 👋", " next\x85line", " para\u2028graph"]
    upstream.enqueue(rechunked(ollama_reply(pieces, thinking=["plan"], done_reason="length"), 40))
    events = await collect(ollama)
    assert text(events) == "".join(pieces)
    assert ReasoningDelta("plan") in events
    assert events[-2:] == [Finish("length"), Usage(5, 3)]


async def test_ollama_error_line_mid_stream(ollama, upstream):
    upstream.enqueue(ollama_lines([ollama_chunk("partial"), {"error": "model runner has unexpectedly stopped"}]))
    seen, error = await until_error(ollama, InternalServerError)
    assert text(seen) == "partial"
    assert "unexpectedly stopped" in error.message


async def test_ollama_rate_limit_with_retry_after(ollama, upstream):
    upstream.enqueue(ollama_error(429, "too many concurrent requests", {"retry-after": "3"}))
    _, error = await until_error(ollama, RateLimitError)
    assert (error.status, error.retry_after) == (429, 3.0)
    assert "too many concurrent requests" in error.message


async def test_ollama_unknown_model_and_key_in_error_text(ollama, upstream):
    upstream.enqueue(ollama_error(404, f"model 'llama3.2' not found, try pulling it first (key {KEY})"))
    _, error = await until_error(ollama, NotFoundError)
    assert "not found" in error.message
    assert "[redacted]" in error.message


async def test_ollama_malformed_line(ollama, upstream):
    upstream.enqueue(ollama_lines([ollama_chunk("a"), b"{not json\n"]))
    _, error = await until_error(ollama, StreamError)
    assert "malformed event" in error.message


async def test_ollama_drop_mid_stream(ollama, upstream):
    upstream.enqueue(ollama_reply(["a", "b", "c", "d"], drop_after=2))
    seen, _ = await until_error(ollama, APIConnectionError)
    assert text(seen) == "ab"


async def test_ollama_clean_end_without_done_is_incomplete(ollama, upstream):
    upstream.enqueue(ollama_lines([ollama_chunk("cut")]))
    _, error = await until_error(ollama, APIConnectionError)
    assert "ended before the answer was complete" in error.message


async def test_ollama_list_models_from_api_tags(make_provider, upstream):
    provider = make_provider("ollama", models="[]")
    tags = {"models": [{"name": "qwen3:0.6b", "size": 1}, {"name": "llama3.2:latest", "size": 2}]}
    upstream.enqueue(json_reply(tags))
    assert await provider.list_models() == ["llama3.2:latest", "qwen3:0.6b"]
    sent = upstream.requests[0]
    assert (sent.method, sent.path) == ("GET", "/api/tags")


# --- Anthropic --------------------------------------------------------------------------------------------------


async def test_anthropic_stream_and_exact_request(anthropic, upstream):
    upstream.enqueue(anthropic_reply(["Hel", "lo"], thinking=["think", "ing"], usage=(9, 2)))
    messages = [
        {"role": "system", "content": "Be brief."},
        with_image("What is this?"),
        {"role": "system", "content": [{"type": "text", "text": "Answer in English."}]},
    ]
    # With extended thinking, temperature must stay at its default, and the budget comes on top of max_tokens.
    events = await collect(anthropic, messages=messages, temperature=0.5, top_p=0.8, max_tokens=1024, stop="END")
    assert events == [
        ReasoningDelta("think"),
        ReasoningDelta("ing"),
        TextDelta("Hel"),
        TextDelta("lo"),
        Finish("stop"),
        Usage(9, 2),
    ]
    sent = upstream.requests[0]
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024 + 2048,
        "system": "Be brief.\n\nAnswer in English.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                ],
            }
        ],
        "stream": True,
        "top_p": 0.8,
        "stop_sequences": ["END"],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers


async def test_anthropic_merges_consecutive_roles_and_converts_tool_turns(make_provider, upstream):
    provider = make_provider("anthropic")  # no thinking budget, default max_tokens
    upstream.enqueue(anthropic_reply(["ok"]))
    call = {"id": "toolu_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "otter"}'}}
    messages = [
        {"role": "user", "content": "First."},
        {"role": "user", "content": [{"type": "text", "text": "Second."}, {"type": "text", "text": "  "}]},
        {"role": "assistant", "content": "Let me look."},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "a river mammal"},
        {"role": "system", "content": "Cite the tool."},
        {"role": "user", "content": "Thanks."},
    ]
    await collect(provider, messages=messages, temperature=0.7, top_p=1.0)  # what the chat tab sends
    body = upstream.requests[0].body
    assert (body["max_tokens"], body["temperature"]) == (4096, 0.7)
    assert "top_p" not in body  # a no-op, and recent models refuse temperature and top_p together
    assert body["system"] == "Cite the tool."
    assert "thinking" not in body
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "First."}, {"type": "text", "text": "Second."}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "otter"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "a river mammal"}],
                },
                {"type": "text", "text": "Thanks."},
            ],
        },
    ]


async def test_anthropic_tool_use_stream(anthropic, upstream):
    calls = [
        {"id": "toolu_1", "name": "lookup", "json": ['{"q":', ' "otter"}']},
        {"id": "toolu_2", "name": "now", "json": []},
    ]
    upstream.enqueue(anthropic_reply(["Checking."], tool_calls=calls, stop_reason="tool_use", usage=(4, 20)))
    events = await collect(anthropic, tools=[TOOL], tool_choice="required")
    assert events == [
        TextDelta("Checking."),
        ToolCallDelta(0, "toolu_1", "lookup"),
        ToolCallDelta(0, arguments='{"q":'),
        ToolCallDelta(0, arguments=' "otter"}'),
        ToolCallDelta(1, "toolu_2", "now"),
        ToolCallDelta(1, arguments="{}"),
        Finish("tool_calls"),
        Usage(4, 20),
    ]
    body = upstream.requests[0].body
    assert body["tools"] == [
        {"name": "lookup", "description": "Look a word up.", "input_schema": TOOL["function"]["parameters"]}
    ]
    assert body["tool_choice"] == {"type": "any"}


async def test_anthropic_events_split_across_network_writes(anthropic, upstream):
    pieces = ["héllo ", "世界 👋"]
    upstream.enqueue(rechunked(anthropic_reply(pieces, thinking=["plan"], stop_reason="max_tokens"), 40))
    events = await collect(anthropic)
    assert text(events) == "héllo 世界 👋"
    assert ReasoningDelta("plan") in events
    assert events[-2:] == [Finish("length"), Usage(5, 2)]


async def test_anthropic_counts_cached_prompt_tokens(anthropic, upstream):
    start = anthropic_message_start(3, cache_read_input_tokens=100, cache_creation_input_tokens=10)
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}}
    upstream.enqueue(anthropic_events([start, anthropic_text_delta("x"), delta, {"type": "message_stop"}]))
    assert (await collect(anthropic))[-1] == Usage(113, 1)


@pytest.mark.parametrize(
    ("error_type", "error", "status"),
    [
        ("overloaded_error", ServiceUnavailableError, 529),
        ("rate_limit_error", RateLimitError, 429),
        ("api_error", InternalServerError, 500),
    ],
)
async def test_anthropic_error_event_mid_stream(anthropic, upstream, error_type, error, status):
    events = [
        anthropic_message_start(),
        anthropic_text_delta("partial"),
        anthropic_error_event(error_type, "Overloaded"),
    ]
    upstream.enqueue(anthropic_events(events))
    seen, caught = await until_error(anthropic, error)
    assert text(seen) == "partial"
    assert caught.status == status
    assert caught.message == "Overloaded"


async def test_anthropic_rate_limit_with_retry_after(anthropic, upstream):
    upstream.enqueue(
        anthropic_error(429, "rate_limit_error", "Number of request tokens exceeded", {"retry-after": "4"})
    )
    _, error = await until_error(anthropic, RateLimitError)
    assert (error.status, error.retry_after) == (429, 4.0)
    assert error.message == "Number of request tokens exceeded"


async def test_anthropic_http_overloaded(anthropic, upstream):
    upstream.enqueue(anthropic_error(529, "overloaded_error", "Overloaded"))
    _, error = await until_error(anthropic, ServiceUnavailableError)
    assert error.status == 529


async def test_anthropic_key_never_leaks(anthropic, upstream):
    upstream.enqueue(anthropic_error(401, "authentication_error", f"invalid x-api-key {KEY}"))
    _, error = await until_error(anthropic, AuthenticationError)
    assert error.message == "invalid x-api-key [redacted]"


async def test_anthropic_malformed_event(anthropic, upstream):
    upstream.enqueue(anthropic_events([anthropic_message_start(), b"event: content_block_delta\ndata: {oops\n\n"]))
    _, error = await until_error(anthropic, StreamError)
    assert "malformed event" in error.message


async def test_anthropic_drop_mid_stream(anthropic, upstream):
    upstream.enqueue(anthropic_reply(["a", "b", "c", "d"], thinking=[], ping=False, drop_after=4))
    seen, _ = await until_error(anthropic, APIConnectionError)
    assert text(seen) == "ab"


async def test_anthropic_clean_end_without_stop_reason_is_incomplete(anthropic, upstream):
    upstream.enqueue(anthropic_events([anthropic_message_start(), anthropic_text_delta("cut")]))
    _, error = await until_error(anthropic, APIConnectionError)
    assert "ended before the answer was complete" in error.message


# --- Gemini -----------------------------------------------------------------------------------------------------


async def test_gemini_stream_and_exact_request(gemini, upstream):
    upstream.enqueue(gemini_reply(["Hel", "lo"], thoughts=["plan"], usage=(11, 2, 30)))
    messages = [
        {"role": "system", "content": "Be brief."},
        with_image("What is this?"),
        {"role": "assistant", "content": "A square."},
        {"role": "user", "content": "Sure?"},
    ]
    events = await collect(gemini, messages=messages, temperature=0.1, top_p=0.7, max_tokens=99, seed=5, stop=["END"])
    assert events == [ReasoningDelta("plan"), TextDelta("Hel"), TextDelta("lo"), Finish("stop"), Usage(11, 32)]
    sent = upstream.requests[0]
    assert (sent.method, sent.path) == ("POST", "/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert sent.body == {
        "contents": [
            {
                "role": "user",
                "parts": [{"text": "What is this?"}, {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}],
            },
            {"role": "model", "parts": [{"text": "A square."}]},
            {"role": "user", "parts": [{"text": "Sure?"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {
            "temperature": 0.1,
            "topP": 0.7,
            "maxOutputTokens": 99,
            "seed": 5,
            "stopSequences": ["END"],
            "thinkingConfig": {"includeThoughts": True},
        },
    }
    assert sent.headers["x-goog-api-key"] == KEY
    assert KEY not in sent.path
    assert "authorization" not in sent.headers


async def test_gemini_schema_candidates_tools_and_function_calls(make_provider, upstream):
    provider = make_provider("gemini", "include_thoughts = false\n")
    upstream.enqueue(gemini_reply(["Let me check."], function_calls=[{"name": "lookup", "args": {"q": "otter"}}]))
    schema = {"type": "object", "properties": {"word": {"type": "string"}}, "additionalProperties": False}
    call = {"id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "otter"}'}}
    messages = [
        {"role": "user", "content": "Look up otter"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_a", "content": '{"meaning": "a river mammal"}'},
        {"role": "tool", "tool_call_id": "call_a", "content": "plain text"},
    ]
    events = await collect(
        provider,
        messages=messages,
        n=2,
        tools=[TOOL],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
    )
    assert events == [
        TextDelta("Let me check."),
        ToolCallDelta(0, "call_0", "lookup", '{"q": "otter"}'),
        Finish("tool_calls"),
        Usage(5, 1),
    ]
    body = upstream.requests[0].body
    assert body["generationConfig"] == {
        "candidateCount": 2,
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "lookup",
                    "description": "Look a word up.",
                    "parametersJsonSchema": TOOL["function"]["parameters"],
                }
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}}
    assert body["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"q": "otter"}}}]},
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "lookup", "response": {"meaning": "a river mammal"}}},
                {"functionResponse": {"name": "lookup", "response": {"content": "plain text"}}},
            ],
        },
    ]


async def test_gemini_json_object_sets_only_the_mime_type(gemini, upstream):
    upstream.enqueue(gemini_reply(["{}"]))
    await collect(gemini, response_format={"type": "json_object"})
    config = upstream.requests[0].body["generationConfig"]
    assert config == {"responseMimeType": "application/json", "thinkingConfig": {"includeThoughts": True}}


async def test_gemini_safety_finish_is_content_filter(gemini, upstream):
    upstream.enqueue(gemini_reply(["I can"], finish_reason="SAFETY"))
    events = await collect(gemini)
    assert events[-2:] == [Finish("content_filter"), Usage(5, 1)]


async def test_gemini_blocked_prompt_is_a_clear_refusal(gemini, upstream):
    blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 4}}
    upstream.enqueue(gemini_events([blocked]))
    _, error = await until_error(gemini, BadRequestError)
    assert "blocked the prompt (PROHIBITED_CONTENT)" in error.message
    assert not error.retryable


async def test_gemini_multiple_candidates(gemini, upstream):
    chunks = [
        {
            "candidates": [
                {"index": 0, "content": {"role": "model", "parts": [{"text": "A"}]}},
                {"index": 1, "content": {"role": "model", "parts": [{"text": "B"}]}},
            ]
        },
        {"candidates": [{"index": 0, "finishReason": "STOP"}, {"index": 1, "finishReason": "MAX_TOKENS"}]},
    ]
    upstream.enqueue(gemini_events(chunks))
    events = await collect(gemini, n=2)
    assert events == [TextDelta("A", 0), TextDelta("B", 1), Finish("stop", 0), Finish("length", 1)]


async def test_gemini_events_split_across_network_writes(gemini, upstream):
    pieces = ["héllo ", "世界 ", "👋"]
    upstream.enqueue(rechunked(gemini_reply(pieces, thoughts=["plan"], finish_reason="MAX_TOKENS"), 40))
    events = await collect(gemini)
    assert text(events) == "héllo 世界 👋"
    assert ReasoningDelta("plan") in events
    assert events[-2:] == [Finish("length"), Usage(5, 3)]


async def test_gemini_error_event_mid_stream(gemini, upstream):
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    upstream.enqueue(gemini_events([gemini_chunk([{"text": "partial"}]), error]))
    seen, caught = await until_error(gemini, ServiceUnavailableError)
    assert text(seen) == "partial"
    assert (caught.status, caught.message) == (503, "The model is overloaded.")


async def test_gemini_rate_limit_with_retry_after(gemini, upstream):
    upstream.enqueue(gemini_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", {"retry-after": "6"}))
    _, error = await until_error(gemini, RateLimitError)
    assert (error.status, error.retry_after, error.message) == (429, 6.0, "Quota exceeded")


async def test_gemini_rate_limit_retry_info_in_the_body(gemini, upstream):
    upstream.enqueue(gemini_error(429, "RESOURCE_EXHAUSTED", "Please retry in 37.4s.", retry_delay="37s", as_list=True))
    _, error = await until_error(gemini, RateLimitError)
    assert (error.retry_after, error.message) == (37.0, "Please retry in 37.4s.")


async def test_gemini_key_never_leaks(gemini, upstream):
    upstream.enqueue(gemini_error(400, "INVALID_ARGUMENT", f"API key not valid: {KEY}"))
    _, error = await until_error(gemini, BadRequestError)
    assert error.message == "API key not valid: [redacted]"


async def test_gemini_malformed_event(gemini, upstream):
    upstream.enqueue(gemini_events([gemini_chunk([{"text": "a"}]), b"data: {broken\r\n\r\n"]))
    _, error = await until_error(gemini, StreamError)
    assert "malformed event" in error.message


async def test_gemini_drop_mid_stream(gemini, upstream):
    upstream.enqueue(gemini_reply(["a", "b", "c", "d"], drop_after=2))
    seen, _ = await until_error(gemini, APIConnectionError)
    assert text(seen) == "ab"


async def test_gemini_end_without_finish_reason_is_incomplete(gemini, upstream):
    upstream.enqueue(gemini_events([gemini_chunk([{"text": "cut"}], usage=(5, 1, 0))]))
    seen, error = await until_error(gemini, APIConnectionError)
    assert "ended before the answer was complete" in error.message
    assert not [e for e in seen if isinstance(e, Usage)]


async def test_gemini_list_models(make_provider, upstream):
    provider = make_provider("gemini", models="[]")
    listing = {
        "models": [
            {"name": "models/gemini-2.5-pro", "supportedGenerationMethods": ["generateContent", "countTokens"]},
            {"name": "models/text-embedding-004", "supportedGenerationMethods": ["embedContent"]},
            {"name": "models/gemini-2.5-flash", "supportedGenerationMethods": ["generateContent"]},
        ]
    }
    upstream.enqueue(json_reply(listing))
    assert await provider.list_models() == ["gemini-2.5-flash", "gemini-2.5-pro"]
    sent = upstream.requests[0]
    assert (sent.method, sent.path) == ("GET", "/models?pageSize=1000")
    assert sent.headers["x-goog-api-key"] == KEY


async def test_anthropic_list_models(make_provider, upstream):
    provider = make_provider("anthropic", models="[]")
    upstream.enqueue(json_reply({"data": [{"id": "claude-b"}, {"id": "claude-a"}], "has_more": False}))
    assert await provider.list_models() == ["claude-a", "claude-b"]
    assert upstream.requests[0].path == "/v1/models?limit=1000"
