"""A scripted upstream that speaks the OpenAI chat-completions wire format over real HTTP on 127.0.0.1.

Tests and benchmarks queue replies (text pieces, reasoning, tool calls, usage, HTTP errors, raw bytes) and
faults (stall, drop mid-stream, malformed events, error events, UTF-8 split across network writes); the server
records every request, including when the client hung up. It runs its own event loop in a thread, so sync
tests, async tests and a Gradio app in the same process can all use it.

Embedding requests (OpenAI's `/v1/embeddings`, Ollama's `/api/embed`) are answered with `embedding(text)`, a
deterministic bag of words hashed into EMBEDDING_DIMENSIONS numbers (texts that share words are near), OpenAI's in
reverse order of `index` (a client must put them back); `embedding_replies` queues other answers for them.

A `ToolScript` set as `upstream.script` plays a model that calls tools, in any of the four wire formats (OpenAI,
Anthropic, Gemini, Ollama): each request is answered by the step its conversation has reached (how many rounds
of tool calls it already holds), the calls streamed in pieces, then a final text; `tool_results` reads back what
the app sent as the tools' results, in that wire format's own shape.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """One scripted response. `frames` are written as separate HTTP chunks (so separate network writes)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    frames: list[bytes] = field(default_factory=list)
    delay: float = 0.0  # pause before each frame
    rate: float | None = None  # frames per second, kept to the clock (no drift, as a model streams tokens)
    stall_after: int | None = None  # stop sending (but keep the connection open) after this many frames
    hold_after: int | None = None  # after this many frames, wait until `released` is set, then go on
    released: threading.Event = field(default_factory=threading.Event)
    drop_after: int | None = None  # close the connection abruptly after this many frames
    chunked: bool = True

    @classmethod
    def text(
        cls,
        pieces: list[str],
        *,
        reasoning: list[str] = (),
        tool_calls: list[dict] = (),
        finish: str = "stop",
        usage: tuple[int, int] | None = (5, None),
        delay: float = 0.0,
        **options,
    ) -> Reply:
        """A well-formed stream: reasoning deltas, content deltas, tool calls, finish, usage chunk, [DONE]."""
        events = [_chunk({"role": "assistant", "content": ""})]
        events += [_chunk({"reasoning_content": piece}) for piece in reasoning]
        events += [_chunk({"content": piece}) for piece in pieces]
        events += [_chunk({"tool_calls": [call]}) for call in tool_calls]
        events.append(_chunk({}, finish_reason=finish))
        if usage is not None:
            prompt, completion = usage
            completion = len(pieces) if completion is None else completion
            events.append(
                {
                    "id": "chatcmpl-scripted",
                    "object": "chat.completion.chunk",
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    },
                }
            )
        frames = [sse(event) for event in events] + [b"data: [DONE]\n\n"]
        return cls(headers={"content-type": "text/event-stream"}, frames=frames, delay=delay, **options)

    @classmethod
    def error(cls, status: int, message: str = "scripted error", headers: dict[str, str] | None = None) -> Reply:
        body = json.dumps({"error": {"message": message, "type": "error", "code": status}}).encode()
        return cls(
            status=status, headers={"content-type": "application/json", **(headers or {})}, frames=[body], chunked=False
        )

    @classmethod
    def body(cls, data: bytes, content_type: str = "application/json", *, chunked: bool = False) -> Reply:
        """A whole answer with status 200 (JSON, a proxy's HTML page, garbage); `chunked` sends no length."""
        frames = [data[i : i + 65536] for i in range(0, len(data), 65536)] if chunked else [data]
        return cls(headers={"content-type": content_type}, frames=frames, chunked=chunked)

    @classmethod
    def events(cls, frames: list[bytes], **options) -> Reply:
        """Raw SSE frames, for malformed or unusual streams."""
        return cls(headers={"content-type": "text/event-stream"}, frames=frames, **options)


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


EMBEDDING_DIMENSIONS = 64
EMBEDDING_PATHS = ("/embeddings", "/api/embed")


def embedding(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """The scripted upstream's vector for `text`: how often each of its words (lowercase) occurs, each word counted
    in the number its hash names. Not of unit length (a client normalises)."""
    vector = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()):
        vector[int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big") % dimensions] += 1.0
    return vector


def embeddings_answer(path: str, body: Any) -> bytes:
    """What the scripted upstream answers to an embeddings request: OpenAI's shape (its items in reverse order of
    `index`) or Ollama's (`/api/embed`)."""
    texts = body.get("input", []) if isinstance(body, dict) else []
    texts = [texts] if isinstance(texts, str) else texts
    model = body.get("model", "") if isinstance(body, dict) else ""
    if path.endswith("/api/embed"):
        return json.dumps(
            {"model": model, "embeddings": [embedding(t) for t in texts], "prompt_eval_count": 1}
        ).encode()
    items = [{"object": "embedding", "index": i, "embedding": embedding(t)} for i, t in enumerate(texts)]
    usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
    return json.dumps({"object": "list", "data": items[::-1], "model": model, "usage": usage}).encode()


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float
    disconnected_at: float | None = None
    finished_at: float | None = None


class ScriptedUpstream:
    """`with ScriptedUpstream() as up:` serves on `up.base_url` (…/v1) until the block ends."""

    def __init__(self, models: list[str] = ("scripted-1",), default: Reply | None = None) -> None:
        self.models = list(models)
        self.default = default or Reply.text(["Hello", " from", " the", " scripted", " upstream."])
        self.replies: deque[Reply] = deque()
        self.listing: Reply | None = None  # answers GET …/models instead of the list of `models`
        self.script: ToolScript | None = None  # answers chat requests by the conversation's step, before the queue
        self.embedding_replies: deque[Reply] = deque()  # answers embedding requests instead of `embedding(text)`
        self.requests: list[Recorded] = []
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="scripted-upstream", daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def start(self) -> ScriptedUpstream:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result()
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedUpstream:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def embedding_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(EMBEDDING_PATHS)]

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                keep_open = await self._respond(request, reader, writer)
                if not keep_open:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the server is shutting down
        finally:
            writer.close()

    async def _respond(self, request: Recorded, reader, writer) -> bool:
        if request.method == "GET" and request.path.endswith("/models") and self.listing is None:
            body = json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]})
            await _write_plain(writer, 200, {"content-type": "application/json"}, body.encode())
            return True
        if request.method == "POST" and request.path.endswith(EMBEDDING_PATHS) and not self.embedding_replies:
            await _write_plain(
                writer, 200, {"content-type": "application/json"}, embeddings_answer(request.path, request.body)
            )
            return True
        if request.method == "GET" and request.path.endswith("/models"):
            reply = self.listing
        elif request.method == "POST" and request.path.endswith(EMBEDDING_PATHS):
            reply = self.embedding_replies.popleft()
        elif self.script is not None and request.method == "POST":
            reply = self.script.reply(request.body)
        else:
            reply = self.replies.popleft() if self.replies else self.default
        watcher = asyncio.ensure_future(_watch_disconnect(reader, request))
        try:
            if not reply.chunked:
                await _write_plain(writer, reply.status, reply.headers, b"".join(reply.frames))
                return True
            head = [f"HTTP/1.1 {reply.status} Scripted", "transfer-encoding: chunked", "connection: close"]
            head += [f"{k}: {v}" for k, v in reply.headers.items()]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
            await writer.drain()
            began = time.monotonic()
            for number, frame in enumerate(reply.frames):
                if reply.rate:
                    await asyncio.sleep(max(0.0, began + number / reply.rate - time.monotonic()))
                if reply.drop_after is not None and number >= reply.drop_after:
                    writer.transport.abort()
                    return False
                if reply.stall_after is not None and number >= reply.stall_after:
                    await asyncio.sleep(3600)
                while number == reply.hold_after and not reply.released.is_set() and not request.disconnected_at:
                    await asyncio.sleep(0.01)
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                if request.disconnected_at is not None:
                    return False
                writer.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            request.finished_at = time.monotonic()
            return False
        finally:
            watcher.cancel()


async def _watch_disconnect(reader: asyncio.StreamReader, request: Recorded) -> None:
    """Record the moment the client hangs up (EOF on the socket) while we are still answering."""
    try:
        while await reader.read(1024):
            pass
    except ConnectionError:
        pass
    request.disconnected_at = time.monotonic()


async def _read_request(reader: asyncio.StreamReader) -> Recorded | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    raw = await reader.readexactly(int(headers.get("content-length", "0")))
    try:
        body = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        body = raw
    return Recorded(method, path, headers, body, time.monotonic())


async def _write_plain(writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: bytes) -> None:
    head = [f"HTTP/1.1 {status} Scripted", f"content-length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()


@dataclass
class ToolScript:
    """A model that calls tools, in wire format `wire` ("openai", "anthropic", "gemini" or "ollama").

    `steps[n]` is what the model asks for once its conversation holds n rounds of tool calls: a list of
    `(name, arguments)` calls (made at once), streamed after `preamble` text; from `len(steps)` rounds on it answers
    `final`. With `endless`, the last step repeats for ever (a model that never stops calling tools). Each answer
    goes out cut in `piece_bytes` network writes, and OpenAI's and Anthropic's arguments in three pieces each."""

    wire: str
    steps: list[list[tuple[str, dict[str, Any]]]]
    final: str = "All done."
    preamble: str = "Let me check."
    endless: bool = False
    piece_bytes: int = 40

    def reply(self, body: Any) -> Reply:
        from tests.wire import rechunked

        step = self.rounds(body)
        if step >= len(self.steps) and self.endless:
            step = len(self.steps) - 1
        if step >= len(self.steps):
            answer = self._text_reply([self.final[: len(self.final) // 2], self.final[len(self.final) // 2 :]])
        else:
            answer = self._calls_reply(self.steps[step], step)
        return rechunked(answer, self.piece_bytes, delay=0)

    def rounds(self, body: Any) -> int:
        """How many rounds of tool calls the conversation in a request body already holds."""
        if not isinstance(body, dict):
            return 0
        if self.wire == "gemini":
            return sum(
                1
                for content in body.get("contents", ())
                if content.get("role") == "model" and any("functionCall" in part for part in content.get("parts", ()))
            )
        if self.wire == "anthropic":
            return sum(
                1
                for message in body.get("messages", ())
                if message.get("role") == "assistant"
                and any(isinstance(b, dict) and b.get("type") == "tool_use" for b in message.get("content", ()))
            )
        return sum(1 for m in body.get("messages", ()) if m.get("role") == "assistant" and m.get("tool_calls"))

    def tool_results(self, body: Any) -> list[tuple[str, Any]]:
        """(the call's id, or its name where the wire format matches results by name; the result) for every tool
        result in a request body, as that wire format carries it."""
        if self.wire == "gemini":
            return [
                (part["functionResponse"]["name"], part["functionResponse"]["response"])
                for content in body.get("contents", ())
                for part in content.get("parts", ())
                if "functionResponse" in part
            ]
        if self.wire == "anthropic":
            return [
                (block["tool_use_id"], "".join(piece.get("text", "") for piece in block.get("content", ())))
                for message in body.get("messages", ())
                if isinstance(message.get("content"), list)
                for block in message["content"]
                if block.get("type") == "tool_result"
            ]
        key = "tool_name" if self.wire == "ollama" else "tool_call_id"
        return [(m.get(key), m.get("content")) for m in body.get("messages", ()) if m.get("role") == "tool"]

    def call_id(self, step: int, number: int) -> str:
        """The id this script gives a call (Anthropic and OpenAI send one; Gemini and Ollama none)."""
        return f"{'toolu' if self.wire == 'anthropic' else 'call'}_s{step}n{number}"

    def _calls_reply(self, calls: list[tuple[str, dict[str, Any]]], step: int) -> Reply:
        from tests.wire import anthropic_reply, gemini_reply, ollama_reply

        pieces = [self.preamble] if self.preamble else []
        if self.wire == "anthropic":
            blocks = [
                {"id": self.call_id(step, n), "name": name, "json": _thirds(json.dumps(arguments))}
                for n, (name, arguments) in enumerate(calls)
            ]
            return anthropic_reply(pieces, tool_calls=blocks, stop_reason="tool_use")
        if self.wire == "gemini":
            return gemini_reply(pieces, function_calls=[{"name": name, "args": args} for name, args in calls])
        if self.wire == "ollama":
            return ollama_reply(
                pieces, tool_calls=[{"function": {"name": name, "arguments": args}} for name, args in calls]
            )
        deltas = []
        for n, (name, arguments) in enumerate(calls):
            first, *rest = _thirds(json.dumps(arguments))
            head = {"index": n, "id": self.call_id(step, n), "type": "function"}
            deltas.append({**head, "function": {"name": name, "arguments": first}})
            deltas += [{"index": n, "function": {"arguments": piece}} for piece in rest]
        return Reply.text(pieces, tool_calls=deltas, finish="tool_calls")

    def _text_reply(self, pieces: list[str]) -> Reply:
        from tests.wire import anthropic_reply, gemini_reply, ollama_reply

        if self.wire == "anthropic":
            return anthropic_reply(pieces)
        if self.wire == "gemini":
            return gemini_reply(pieces)
        if self.wire == "ollama":
            return ollama_reply(pieces)
        return Reply.text(pieces)


def _thirds(text: str) -> list[str]:
    """`text` in three pieces (cut anywhere, as a model streams JSON)."""
    third = max(1, len(text) // 3)
    return [text[:third], text[third : 2 * third], text[2 * third :]]


def tagged_tokens(tag: str, count: int) -> list[str]:
    """`<tag>:0 <tag>:1 ...`: a reply a load test can check token by token and tell apart from every other."""
    return [f"{tag}:{i} " for i in range(count)]


def last_user_text(body: Any) -> str:
    """The text of the last user message of a chat-completions request body ("" when there is none)."""
    messages = body.get("messages", []) if isinstance(body, dict) else []
    users = [message.get("content") for message in messages if message.get("role") == "user"]
    return users[-1] if users and isinstance(users[-1], str) else ""


class TaggedUpstream(ScriptedUpstream):
    """Answers every chat request with `tagged_tokens(<its last user message>, tokens)`, so concurrent replies are
    each unique and checkable: a lost, repeated or foreign token shows in the text the client receives. With
    `sized`, the last user message is instead the number of tokens to send (`t0 t1 ... t9 t0 ...`), so one
    upstream serves replies of any length."""

    def __init__(self, tokens: int, delay: float = 0.0, rate: float | None = None, sized: bool = False) -> None:
        super().__init__()
        self.tokens = tokens
        self.delay = delay
        self.rate = rate
        self.sized = sized

    async def _respond(self, request: Recorded, reader, writer) -> bool:
        if request.method == "POST" and request.path.endswith("/chat/completions"):
            message = last_user_text(request.body)
            if self.sized:
                pieces = numbered_tokens(int(message) if message.strip().isdigit() else self.tokens)
            else:
                pieces = tagged_tokens(message, self.tokens)
            # The base class takes this reply off the queue before its first await: no other request can take it.
            self.replies.appendleft(Reply.text(pieces, delay=self.delay, rate=self.rate))
        return await super()._respond(request, reader, writer)


def numbered_tokens(count: int) -> list[str]:
    return [f"t{i % 10} " for i in range(count)]


def main() -> None:
    """Serve one fixed streamed reply forever: `python -m tests.upstream --port P --tokens N` (for benchmarks,
    so the upstream does not share a process, and a GIL, with the client being measured). With `--tagged`, each
    reply is instead N tokens tagged with the request's last user message (`<message>:<i> `), for load tests;
    with `--sized`, the last user message says how many tokens to send. `--delay S` pauses S seconds before each
    frame (a slow model, so replies overlap for long); `--rate R` sends R frames a second, kept to the clock."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--tagged", action="store_true", help="tag each reply's tokens with its last user message")
    parser.add_argument("--sized", action="store_true", help="the last user message is the number of tokens")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each frame (default: none)")
    parser.add_argument("--rate", type=float, default=None, help="frames per second, per reply (default: no pacing)")
    args = parser.parse_args()
    if args.tagged or args.sized:
        server = TaggedUpstream(args.tokens, args.delay, args.rate, sized=args.sized)
    else:
        server = ScriptedUpstream(default=Reply.text(numbered_tokens(args.tokens), delay=args.delay, rate=args.rate))
    server._thread.start()
    asyncio.run_coroutine_threadsafe(asyncio.start_server(server._serve, "127.0.0.1", args.port), server._loop).result()
    print("ready", flush=True)
    server._thread.join()


if __name__ == "__main__":
    main()
