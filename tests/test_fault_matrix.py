"""The fault matrix: every chat adapter kind, every way an upstream fails, through the real service layer.

Each kind (openai, ollama, anthropic, gemini) meets each fault of its table below (FAULTS: how that protocol shows
the fault on the wire), served by a scripted upstream over real HTTP on 127.0.0.1 and requested through
`Backend(...).chat.stream(...)`, in two modes:

- alone: the faulty provider is the only target. The request ends in the expected typed error (EXPECT), whose
  `user_message()` and `str()` are one line without the API key or the upstream's address; text that streamed
  before the fault is the error's `partial_text`; and the same backend then answers a normal request on that
  provider (cooldowns are set so they do not block it: a 429 asks for 0.2 s, which the next request waits out).
- route: the faulty provider comes first in a route, a healthy provider of the SAME kind second, so that each
  kind's own continuation request is checked on the wire. The caller gets one complete answer: a fault before the
  first token fails over (`Retrying`, then `Started` of the second); a fault mid-stream is continued by the second
  (`Resumed`; the text is partial + continuation; the continuation request carries the partial answer, in prefill
  style for ollama and anthropic, prompt style for openai and gemini).

Timeouts are short (0.5 s) and nothing is retried on the same provider (max_retries = 0), so the whole matrix takes
seconds; each case must end within a generous bound, which proves nothing hangs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from backend import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    Backend,
    InternalServerError,
    RateLimitError,
    Resumed,
    Retrying,
    ServiceUnavailableError,
    Started,
    StreamError,
    load_settings,
)
from backend.providers.continuation import CONTINUE_PROMPT
from backend.providers.http import ERROR_BODY_LIMIT, LINE_LIMIT
from tests.conftest import QUESTION, ask, chat_events, free_port, text
from tests.upstream import Reply, ScriptedUpstream, sse
from tests.wire import (
    NDJSON,
    SSE,
    anthropic_error,
    anthropic_error_event,
    anthropic_event,
    anthropic_events,
    anthropic_message_start,
    anthropic_reply,
    gemini_error,
    gemini_events,
    gemini_reply,
    gemini_sse,
    json_reply,
    ndjson,
    ollama_error,
    ollama_lines,
    ollama_reply,
)

KINDS = ("openai", "ollama", "anthropic", "gemini")
MODELS = {"openai": "gpt-4o-mini", "ollama": "llama3.2", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
KEY_ENV = "FAULT_MATRIX_KEY"
KEY = "sk-fault-matrix-4f1c9a77e2b0"

PIECES = ["The ", "quick ", "brown ", "fox."]
ANSWER = "The quick brown fox."
PARTIAL = "The quick "  # the first two pieces: what has streamed when a mid-stream fault strikes
CONTINUED = ["brown ", "fox."]  # what the route's second provider sends to continue the partial answer

# Upstream error texts quote the API key and the upstream's own address, as servers that echo request details do;
# WHERE is replaced by that upstream's host:port when the reply is queued. Neither may reach the user.
WHERE = "@upstream@"
RATE_LIMITED = "Rate limit reached for requests"
SERVER_ERROR = "The server had an error while processing your request"
UNAVAILABLE = "The service is temporarily unavailable"
OVERLOADED = "The model is overloaded"
RETRY_SOON = {"retry-after": "0.2"}  # the cooldown this starts is short enough for the next request to wait out
# Bytes of one line that never ends, and of an error body. Far beyond what the loopback socket buffers can hold
# once the kernel has grown them for a fast reader (tcp_rmem max is 32 MB here): a body that fits in them is
# written to its end however early we hang up, and "not read to its end" could no longer be observed.
HUGE = 16 * LINE_LIMIT
HUGE_BODY = [b"x" * 1_000_000] * (HUGE // 1_000_000)  # one object, written HUGE / 1 MB times
CASE_LIMIT = 10.0  # seconds: a case slower than this hangs somewhere


def quoting(message: str) -> str:
    """`message` as a careless upstream words it: with its own address and the key it was called with."""
    return f"{message} (upstream http://{WHERE}/, key {KEY})"


# --- how each protocol shows each fault on the wire ----------------------------------------------------------------


def answer(kind: str, pieces: list[str] = PIECES, **options) -> Reply:
    """A well-formed streamed answer in `kind`'s wire format; `options` are the upstream's fault options."""
    build = {"openai": Reply.text, "ollama": ollama_reply, "anthropic": anthropic_reply, "gemini": gemini_reply}
    return build[kind](list(pieces), **options)


def then(reply: Reply, frames: int, last: bytes) -> Reply:
    """The first `frames` frames of `reply`, then `last` (an error event), then the end of the body."""
    return dataclasses.replace(reply, frames=[*reply.frames[:frames], last])


def endless_line(headers: dict[str, str], start: bytes, lead: list[bytes] = ()) -> Reply:
    """`lead` frames, then one line of HUGE bytes without a newline that starts like an event, 1 MB per write."""
    return Reply(headers=headers, frames=[*lead, start, *HUGE_BODY])


def huge_error(start: bytes) -> Reply:
    """HTTP 500 whose JSON body starts like that protocol's error and goes on for HUGE bytes, 1 MB per write."""
    return Reply(status=500, headers={"content-type": "application/json"}, frames=[start, *HUGE_BODY])


def login_page() -> Reply:
    """A proxy's sign-in page, answered with 200 instead of the stream."""
    page = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\n<body><form>...</form></body></html>\n"
    return Reply(headers={"content-type": "text/html; charset=utf-8"}, frames=[page])


OPENAI_ROLE = Reply.text([]).frames[0]  # the empty assistant-role chunk that opens an OpenAI stream
REFUSED = None  # no reply at all: nobody listens on the provider's port

# One table per kind: each entry scripts one fault; frame counts say where in the stream it strikes.
FAULTS: dict[str, dict[str, Callable[[], Reply] | None]] = {
    "openai": {
        "rate-limited": lambda: Reply.error(429, quoting(RATE_LIMITED), RETRY_SOON),
        "http-500": lambda: Reply.error(500, quoting(SERVER_ERROR)),
        "http-503": lambda: Reply.error(503, quoting(UNAVAILABLE)),
        "connection-refused": REFUSED,
        # the role chunk, then only SSE keep-alive comments (as OpenRouter sends while a model loads)
        "first-token-timeout": lambda: Reply.events([OPENAI_ROLE, *[b": keep-alive\n\n"] * 50], delay=0.2),
        "stall-mid-stream": lambda: answer("openai", stall_after=3),  # role chunk, "The ", "quick "
        "drop-mid-stream": lambda: answer("openai", drop_after=3),
        "malformed-event": lambda: Reply.events([OPENAI_ROLE, b'data: {"choices": [{"delta": \n\n']),
        "wrong-content-type": login_page,
        "json-error-200": lambda: json_reply({"error": {"message": quoting(SERVER_ERROR), "type": "server_error"}}),
        "error-event": lambda: then(
            answer("openai"), 3, sse({"error": {"message": quoting(OVERLOADED), "type": "server_error", "code": None}})
        ),
        "huge-line": lambda: endless_line(
            {"content-type": "text/event-stream"}, b'data: {"choices": [{"index": 0, "delta": {"content": "'
        ),
        "huge-error-body": lambda: huge_error(b'{"error": {"message": "'),
    },
    "ollama": {
        "rate-limited": lambda: ollama_error(429, quoting(RATE_LIMITED), RETRY_SOON),
        "http-500": lambda: ollama_error(500, quoting(SERVER_ERROR)),
        "http-503": lambda: ollama_error(503, quoting(UNAVAILABLE)),
        "connection-refused": REFUSED,
        "first-token-timeout": lambda: answer("ollama", stall_after=0),  # headers, then nothing
        "stall-mid-stream": lambda: answer("ollama", stall_after=2),  # "The ", "quick "
        "drop-mid-stream": lambda: answer("ollama", drop_after=2),
        "malformed-event": lambda: ollama_lines([b'{"model": "llama3.2", "message": {"role": "assistant", \n']),
        "wrong-content-type": login_page,
        "json-error-200": lambda: json_reply({"error": quoting(SERVER_ERROR)}),
        "error-event": lambda: then(answer("ollama"), 2, ndjson({"error": quoting(OVERLOADED)})),
        "huge-line": lambda: endless_line(NDJSON, b'{"model": "llama3.2", "message": {"content": "'),
        "huge-error-body": lambda: huge_error(b'{"error": "'),
    },
    "anthropic": {
        "rate-limited": lambda: anthropic_error(429, "rate_limit_error", quoting(RATE_LIMITED), RETRY_SOON),
        "http-500": lambda: anthropic_error(500, "api_error", quoting(SERVER_ERROR)),
        "http-503": lambda: anthropic_error(503, "api_error", quoting(UNAVAILABLE)),
        "connection-refused": REFUSED,
        "first-token-timeout": lambda: answer("anthropic", stall_after=2),  # message_start, ping, then nothing
        # message_start, ping, content_block_start, "The ", "quick "
        "stall-mid-stream": lambda: answer("anthropic", stall_after=5),
        "drop-mid-stream": lambda: answer("anthropic", drop_after=5),
        "malformed-event": lambda: anthropic_events(
            [anthropic_message_start(), b'event: content_block_delta\ndata: {"type": "content_block_delta", \n\n']
        ),
        "wrong-content-type": login_page,
        "json-error-200": lambda: json_reply(
            {"type": "error", "error": {"type": "api_error", "message": quoting(SERVER_ERROR)}}
        ),
        "error-event": lambda: then(
            answer("anthropic"), 5, anthropic_event(anthropic_error_event("overloaded_error", quoting(OVERLOADED)))
        ),
        "huge-line": lambda: endless_line(
            SSE,
            b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": {"text": "',
            lead=[anthropic_event(anthropic_message_start())],
        ),
        "huge-error-body": lambda: huge_error(b'{"type": "error", "error": {"type": "api_error", "message": "'),
    },
    "gemini": {
        "rate-limited": lambda: gemini_error(429, "RESOURCE_EXHAUSTED", quoting(RATE_LIMITED), RETRY_SOON),
        "http-500": lambda: gemini_error(500, "INTERNAL", quoting(SERVER_ERROR)),
        "http-503": lambda: gemini_error(503, "UNAVAILABLE", quoting(UNAVAILABLE)),
        "connection-refused": REFUSED,
        "first-token-timeout": lambda: answer("gemini", stall_after=0),  # headers, then nothing
        "stall-mid-stream": lambda: answer("gemini", stall_after=2),  # "The ", "quick "
        "drop-mid-stream": lambda: answer("gemini", drop_after=2),
        "malformed-event": lambda: gemini_events([b'data: {"candidates": [{"content": \r\n\r\n']),
        "wrong-content-type": login_page,
        "json-error-200": lambda: json_reply({"error": {"code": 500, "message": quoting(SERVER_ERROR)}}),
        "error-event": lambda: then(
            answer("gemini"),
            2,
            gemini_sse({"error": {"code": 503, "message": quoting(OVERLOADED), "status": "UNAVAILABLE"}}),
        ),
        "huge-line": lambda: endless_line(
            {"content-type": "text/event-stream"}, b'data: {"candidates": [{"content": {"parts": [{"text": "'
        ),
        "huge-error-body": lambda: huge_error(b'{"error": {"code": 500, "status": "INTERNAL", "message": "'),
    },
}


# --- what must come of each fault ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    error: type[APIError]  # the typed error, by isinstance (an error event may be the more specific 503 class)
    says: str  # a fragment of str(error), which holds its message and HTTP status
    status: int | None = None  # the HTTP status, for faults that have one
    mid_stream: bool = False  # text streamed first: kept as partial_text alone, continued by the next provider
    hangs_up: bool = False  # the upstream went silent: we close the connection rather than wait on it
    cut_short: bool = False  # the body is huge: we stop reading long before its end
    first_token_timeout: float = 0.5  # the faulty provider's


EXPECT: dict[str, Expect] = {
    "rate-limited": Expect(RateLimitError, RATE_LIMITED, 429),
    "http-500": Expect(InternalServerError, f"{SERVER_ERROR} (upstream", 500),
    "http-503": Expect(ServiceUnavailableError, f"{UNAVAILABLE} (upstream", 503),
    "connection-refused": Expect(APIConnectionError, ""),
    "first-token-timeout": Expect(APITimeoutError, "no output within 0.5 s", hangs_up=True),
    "stall-mid-stream": Expect(APITimeoutError, "no output for 0.5 s", mid_stream=True, hangs_up=True),
    "drop-mid-stream": Expect(APIConnectionError, "", mid_stream=True),
    "malformed-event": Expect(StreamError, "malformed event"),
    "wrong-content-type": Expect(StreamError, "text/html"),
    # any typed error: what matters is that an error is not taken for an empty answer
    "json-error-200": Expect(APIError, ""),
    "error-event": Expect(InternalServerError, OVERLOADED, mid_stream=True),
    # The watchdog is given longer here, so that on a busy machine the line limit, not the watchdog, ends it.
    "huge-line": Expect(StreamError, "longer than 16 MB", cut_short=True, first_token_timeout=5),
    "huge-error-body": Expect(InternalServerError, "(HTTP 500)", 500, cut_short=True),
}


def cases() -> list:
    """Every (kind, fault, mode), with ids like "anthropic-stall-mid-stream-route"."""
    return [
        pytest.param(
            kind,
            fault,
            mode,
            id=f"{kind}-{fault}-{mode}",
        )
        for kind in KINDS
        for fault in EXPECT
        for mode in ("alone", "route")
    ]


# --- the matrix ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "fault", "mode"), cases())
async def test_fault(setup, kind, fault, mode):
    """One fault of one kind, alone or in a route (see the module docstring), ended within CASE_LIMIT."""
    case = setup(kind, fault, mode)
    began = time.monotonic()
    try:
        await (fails_alone if mode == "alone" else fails_over)(case, kind, fault)
    finally:
        await case.backend.aclose()
    assert time.monotonic() - began < CASE_LIMIT


async def fails_alone(case: Setup, kind: str, fault: str) -> None:
    """The typed error, one clean line, with the partial answer; then the same backend answers on that provider."""
    expect, model = EXPECT[fault], MODELS[kind]
    case.script(FAULTS[kind][fault])
    events, error = await until_error(case.backend, f"faulty/{model}")

    assert isinstance(error, expect.error), f"{type(error).__name__}: {error}"
    assert (error.provider, error.model) == ("faulty", model)
    assert expect.says in str(error)
    if expect.status is not None:
        assert error.status == expect.status
    if expect.error is RateLimitError:
        assert error.retry_after == pytest.approx(0.2)
    assert_one_clean_line(error.user_message(), case.faulty_port)
    assert_one_clean_line(str(error), case.faulty_port)
    streamed = PARTIAL if expect.mid_stream else ""
    assert text(events) == streamed and error.partial_text == streamed
    assert (Started("faulty", model) in events) == expect.mid_stream
    case.check_let_go(expect)

    case.revive()  # a refused address comes alive
    case.faulty.enqueue(answer(kind))
    assert text(await chat_events(case.backend, f"faulty/{model}")) == ANSWER


async def fails_over(case: Setup, kind: str, fault: str) -> None:
    """One complete answer: a fault before the first token is failed over, one mid-stream is continued."""
    expect, model = EXPECT[fault], MODELS[kind]
    case.script(FAULTS[kind][fault])
    case.healthy.enqueue(answer(kind, CONTINUED if expect.mid_stream else PIECES))
    events = await chat_events(case.backend, "failover")

    assert text(events) == ANSWER
    retrying = [event for event in events if isinstance(event, Retrying)]
    resumed = [event for event in events if isinstance(event, Resumed)]
    started = [event for event in events if isinstance(event, Started)]
    sent = sent_turns(kind, case.healthy.requests[0].body)
    if expect.mid_stream:
        assert started == [Started("faulty", model)]
        assert [(event.provider, event.model) for event in resumed] == [("healthy", model)]
        at = events.index(resumed[0])
        assert text(events[:at]) == PARTIAL and text(events[at:]) == "".join(CONTINUED)
        # A status may announce the hand-over while the second provider is asked; it comes before the marker.
        assert all((e.provider, e.model) == ("healthy", model) and events.index(e) < at for e in retrying)
        assert_one_clean_line(resumed[0].reason, case.faulty_port)
        assert sent == continuation_turns(kind)
    else:
        assert resumed == [] and started == [Started("healthy", model)]
        assert [(event.provider, event.model) for event in retrying] == [("healthy", model)]
        assert events.index(retrying[0]) < events.index(started[0])
        assert_one_clean_line(retrying[0].reason, case.faulty_port)
        assert sent == [("user", QUESTION)]
    assert len(case.healthy.requests) == 1
    if case.faulty is not None:
        assert len(case.faulty.requests) == 1  # max_retries = 0: asked once, then the route moved on
    case.check_let_go(expect)


# --- a malformed event that quotes secrets ---------------------------------------------------------------------------

LEAKY_LINE = f"upstream http://{WHERE}/ reset (key {KEY})".encode()  # not JSON: a proxy's words in the stream
LEAKY_MALFORMED: dict[str, Callable[[], Reply]] = {
    "openai": lambda: Reply.events([OPENAI_ROLE, b"data: " + LEAKY_LINE + b"\n\n"]),
    "ollama": lambda: ollama_lines([LEAKY_LINE + b"\n"]),
    "anthropic": lambda: anthropic_events(
        [anthropic_message_start(), b"event: content_block_delta\ndata: " + LEAKY_LINE + b"\n\n"]
    ),
    "gemini": lambda: gemini_events([b"data: " + LEAKY_LINE + b"\r\n\r\n"]),
}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_malformed_event_is_quoted_without_secrets(setup, kind):
    """A line that is not JSON and quotes the key and the upstream's address: the error must show neither."""
    case = setup(kind, "malformed-event", "alone")
    case.script(LEAKY_MALFORMED[kind])
    try:
        _, error = await until_error(case.backend, f"faulty/{MODELS[kind]}")
    finally:
        await case.backend.aclose()
    assert isinstance(error, StreamError) and "malformed event" in str(error)
    assert_one_clean_line(error.user_message(), case.faulty_port)
    assert_one_clean_line(str(error), case.faulty_port)


def test_the_matrix_is_complete():
    """Every kind scripts every fault, every fault has its expectation, and the huge ones are huge."""
    for kind in KINDS:
        assert list(FAULTS[kind]) == list(EXPECT), kind
    assert HUGE > LINE_LIMIT + 64_000_000 and HUGE > 100 * ERROR_BODY_LIMIT


# --- the upstreams and the backend of one case --------------------------------------------------------------------


class UpstreamOn(ScriptedUpstream):
    """A scripted upstream on a chosen port (ScriptedUpstream picks its own), so that a provider whose address
    refused connections can come alive at that same address. Starts as tests/upstream.py's main() does."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def start(self) -> UpstreamOn:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port), self._loop
        ).result()
        return self


@dataclass
class Setup:
    backend: Backend
    faulty_port: int
    faulty: ScriptedUpstream | None  # None while nobody listens (connection refused)
    healthy: ScriptedUpstream | None  # the route's second provider
    started: list[ScriptedUpstream]  # stopped when the test ends

    def script(self, fault: Callable[[], Reply] | None) -> None:
        """Queue the fault on the faulty upstream, its texts quoting that upstream's real address."""
        if fault is REFUSED:
            return
        reply = fault()
        where = f"127.0.0.1:{self.faulty_port}".encode()
        frames = [frame.replace(WHERE.encode(), where) for frame in reply.frames]
        self.faulty.enqueue(dataclasses.replace(reply, frames=frames))

    def revive(self) -> None:
        """Start listening on the faulty provider's address, if nobody does yet."""
        if self.faulty is None:
            self.faulty = UpstreamOn(self.faulty_port).start()
            self.started.append(self.faulty)

    def check_let_go(self, expect: Expect) -> None:
        """A silent upstream's connection is closed by us; a huge body is not read to its end."""
        if self.faulty is None:
            return
        request = self.faulty.requests[0]
        if expect.hangs_up:
            assert self.faulty.wait_for(lambda: request.disconnected_at is not None, timeout=5)
        if expect.cut_short:
            assert request.finished_at is None, "the whole huge body was read"


def base_url(kind: str, port: int) -> str:
    return f"http://127.0.0.1:{port}" + ("/v1" if kind == "openai" else "")


def provider_table(name: str, kind: str, port: int, first_token_timeout: float = 0.5) -> str:
    """Short timeouts, no retries on the same provider, and no cooldown from a few failures."""
    return textwrap.dedent(
        f"""
        [providers.{name}]
        kind = "{kind}"
        base_url = "{base_url(kind, port)}"
        api_key_env = "{KEY_ENV}"
        models = ["{MODELS[kind]}"]
        max_retries = 0
        first_token_timeout = {first_token_timeout}
        idle_timeout = 0.5
        connect_timeout = 1
        failures_before_cooldown = 100
        """
    )


@pytest.fixture
def setup(write_config, monkeypatch):
    """Builds one case: the provider `faulty` alone, or the route `failover` = [faulty, healthy]."""
    monkeypatch.setenv(KEY_ENV, KEY)
    started: list[ScriptedUpstream] = []

    def build(kind: str, fault: str, mode: str) -> Setup:
        refused = FAULTS[kind][fault] is REFUSED
        faulty = None if refused else ScriptedUpstream().start()
        port = free_port() if refused else faulty.port
        config = "[app]\nembedded_model = false\n"
        config += provider_table("faulty", kind, port, EXPECT[fault].first_token_timeout)
        healthy = None
        if mode == "route":
            healthy = ScriptedUpstream().start()
            config += provider_table("healthy", kind, healthy.port)
            config += f'[routes]\nfailover = ["faulty/{MODELS[kind]}", "healthy/{MODELS[kind]}"]\n'
        started.extend(server for server in (faulty, healthy) if server)
        return Setup(Backend(load_settings(write_config(config))), port, faulty, healthy, started)

    yield build
    for server in started:
        server.stop()


# --- reading requests and events -------------------------------------------------------------------------------------


async def until_error(backend: Backend, model: str) -> tuple[list, APIError]:
    """The events of a request that must fail, and the error it failed with."""
    events = []
    with pytest.raises(APIError) as caught:
        async for event in backend.chat.stream(ask(model)):
            events.append(event)
    return events, caught.value


def assert_one_clean_line(message: str, port: int) -> None:
    """A message for a person: one short line, no traceback, no API key, no upstream address."""
    assert message and "\n" not in message and "\r" not in message, repr(message)
    assert len(message) <= 400, f"{len(message)} characters: {message[:100]!r}..."
    assert "Traceback" not in message
    assert KEY not in message, message
    assert f"127.0.0.1:{port}" not in message, message


CONTINUATION_STYLE = {"openai": "prompt", "ollama": "prefill", "anthropic": "prefill", "gemini": "prompt"}


def continuation_turns(kind: str) -> list[tuple[str, str]]:
    """The turns a continuation request must carry: the question, the partial answer (without its trailing space,
    see backend/providers/continuation.py) and, in prompt style, the request to continue it."""
    turns = [("user", QUESTION), ("assistant", PARTIAL.rstrip())]
    return turns + ([("user", CONTINUE_PROMPT)] if CONTINUATION_STYLE[kind] == "prompt" else [])


def sent_turns(kind: str, body: dict) -> list[tuple[str, str]]:
    """The (role, text) turns of a chat request body, read from that protocol's own shape."""
    if kind in ("openai", "ollama"):
        return [(message["role"], message["content"]) for message in body["messages"]]
    if kind == "anthropic":
        return [
            (turn["role"], "".join(block["text"] for block in turn["content"] if block["type"] == "text"))
            for turn in body["messages"]
        ]
    return [
        ({"model": "assistant"}.get(content["role"], content["role"]), "".join(p["text"] for p in content["parts"]))
        for content in body["contents"]
    ]
