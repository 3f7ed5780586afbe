"""Scripted replies in the native wire formats of Ollama, Anthropic and Gemini, for the scripted upstream.

Each builder returns a `tests.upstream.Reply`, so the upstream's fault options (`delay`, `stall_after`,
`drop_after`) pass straight through, and `rechunked()` cuts any reply at arbitrary byte offsets.

- Ollama: NDJSON (application/x-ndjson), one object a line, the last with `done: true`.
- Anthropic: SSE with `event:` names (message_start ... message_stop), errors as an `error` event.
- Gemini: SSE whose `data:` are whole GenerateContentResponse objects, CRLF-separated, no end marker.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any

from tests.upstream import Reply

# --- shared -----------------------------------------------------------------------------------------------------


def json_reply(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """A plain JSON answer (a model list, an HTTP error body), sent with a content-length."""
    return Reply(
        status=status,
        headers={"content-type": "application/json", **(headers or {})},
        frames=[json.dumps(payload).encode()],
        chunked=False,
    )


def rechunked(reply: Reply, size: int, delay: float = 0.01) -> Reply:
    """`reply` with its body cut every `size` bytes (mid-line, mid-JSON) and inside every multi-byte UTF-8
    character, one network write each."""
    data = b"".join(reply.frames)
    cuts = set(range(size, len(data), size))
    cuts.update(position + 1 for position, byte in enumerate(data) if byte >= 0xC0)  # after a lead byte
    bounds = [0, *sorted(cuts), len(data)]
    frames = [data[start:end] for start, end in itertools.pairwise(bounds) if end > start]
    return dataclasses.replace(reply, frames=frames, delay=delay)


# --- Ollama -----------------------------------------------------------------------------------------------------

NDJSON = {"content-type": "application/x-ndjson"}


def ndjson(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode() + b"\n"


def ollama_chunk(content: str = "", *, thinking: str | None = None, tool_calls: list[dict] | None = None) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking is not None:
        message["thinking"] = thinking
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {"model": "scripted", "created_at": "2026-01-01T00:00:00Z", "message": message, "done": False}


def ollama_done(done_reason: str = "stop", usage: tuple[int, int] = (5, 1)) -> dict:
    return {
        "model": "scripted",
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": done_reason,
        "total_duration": 1_000_000,
        "load_duration": 1000,
        "prompt_eval_count": usage[0],
        "prompt_eval_duration": 1000,
        "eval_count": usage[1],
        "eval_duration": 1000,
    }


def ollama_reply(
    pieces: list[str],
    *,
    thinking: list[str] = (),
    tool_calls: list[dict] = (),
    done_reason: str = "stop",
    usage: tuple[int, int | None] = (5, None),
    **options,
) -> Reply:
    """Thinking lines, content lines, one line with the tool calls (Ollama sends them whole), the done line.
    `tool_calls` are Ollama's own shape: `{"function": {"name": ..., "arguments": {...}}}`."""
    lines = [ollama_chunk(thinking=piece) for piece in thinking]
    lines += [ollama_chunk(piece) for piece in pieces]
    if tool_calls:
        lines.append(ollama_chunk(tool_calls=list(tool_calls)))
    prompt, completion = usage
    lines.append(ollama_done(done_reason, (prompt, len(pieces) if completion is None else completion)))
    return Reply(headers=dict(NDJSON), frames=[ndjson(line) for line in lines], **options)


def ollama_lines(lines: list[dict | bytes], **options) -> Reply:
    """Raw NDJSON lines (dicts are encoded), for malformed or unusual streams."""
    frames = [line if isinstance(line, bytes) else ndjson(line) for line in lines]
    return Reply(headers=dict(NDJSON), frames=frames, **options)


def ollama_error(status: int, message: str = "scripted error", headers: dict[str, str] | None = None) -> Reply:
    return json_reply({"error": message}, status, headers)


# --- Anthropic --------------------------------------------------------------------------------------------------

SSE = {"content-type": "text/event-stream; charset=utf-8"}


def anthropic_event(payload: dict[str, Any]) -> bytes:
    """One named SSE event; the name is the payload's `type`, as Anthropic sends it."""
    data = json.dumps(payload, ensure_ascii=False).encode()
    return b"event: " + payload["type"].encode() + b"\ndata: " + data + b"\n\n"


def anthropic_message_start(input_tokens: int = 5, **usage: int) -> dict:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_scripted",
            "type": "message",
            "role": "assistant",
            "model": "scripted",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1, **usage},
        },
    }


def anthropic_text_delta(text: str, index: int = 0) -> dict:
    return {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}


def anthropic_reply(
    pieces: list[str],
    *,
    thinking: list[str] = (),
    tool_calls: list[dict] = (),
    stop_reason: str = "end_turn",
    usage: tuple[int, int | None] = (5, None),
    ping: bool = True,
    **options,
) -> Reply:
    """message_start, ping, a thinking block, a text block, one tool_use block per call, message_delta,
    message_stop. `tool_calls` are `{"id": ..., "name": ..., "json": ["{\\"q\\":", " 1}"]}` (the JSON fragments)."""
    prompt, completion = usage
    events = [anthropic_message_start(prompt)]
    if ping:
        events.append({"type": "ping"})
    block = 0
    if thinking:
        events.append(
            {"type": "content_block_start", "index": block, "content_block": {"type": "thinking", "thinking": ""}}
        )
        events += [
            {"type": "content_block_delta", "index": block, "delta": {"type": "thinking_delta", "thinking": piece}}
            for piece in thinking
        ]
        events.append(
            {"type": "content_block_delta", "index": block, "delta": {"type": "signature_delta", "signature": "c2ln"}}
        )
        events.append({"type": "content_block_stop", "index": block})
        block += 1
    if pieces:
        events.append({"type": "content_block_start", "index": block, "content_block": {"type": "text", "text": ""}})
        events += [anthropic_text_delta(piece, block) for piece in pieces]
        events.append({"type": "content_block_stop", "index": block})
        block += 1
    for call in tool_calls:
        start = {"type": "tool_use", "id": call["id"], "name": call["name"], "input": {}}
        events.append({"type": "content_block_start", "index": block, "content_block": start})
        events += [
            {"type": "content_block_delta", "index": block, "delta": {"type": "input_json_delta", "partial_json": part}}
            for part in call.get("json", ())
        ]
        events.append({"type": "content_block_stop", "index": block})
        block += 1
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": len(pieces) if completion is None else completion},
        }
    )
    events.append({"type": "message_stop"})
    return Reply(headers=dict(SSE), frames=[anthropic_event(event) for event in events], **options)


def anthropic_events(events: list[dict | bytes], **options) -> Reply:
    """Raw events (dicts are encoded as named events), for malformed or unusual streams."""
    frames = [event if isinstance(event, bytes) else anthropic_event(event) for event in events]
    return Reply(headers=dict(SSE), frames=frames, **options)


def anthropic_error_event(error_type: str, message: str = "scripted error") -> dict:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def anthropic_error(
    status: int, error_type: str, message: str = "scripted error", headers: dict[str, str] | None = None
) -> Reply:
    body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_scripted"}
    return json_reply(body, status, headers)


# --- Gemini -----------------------------------------------------------------------------------------------------


def gemini_sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\r\n\r\n"


def gemini_chunk(
    parts: list[dict] = (),
    *,
    finish_reason: str | None = None,
    usage: tuple[int, int, int] | None = None,
    index: int = 0,
) -> dict:
    """One GenerateContentResponse with one candidate; `usage` is (prompt, candidates, thoughts) tokens."""
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": index}
    if finish_reason:
        candidate["finishReason"] = finish_reason
    payload: dict[str, Any] = {"candidates": [candidate], "modelVersion": "scripted", "responseId": "scripted"}
    if usage is not None:
        prompt, candidates, thoughts = usage
        payload["usageMetadata"] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": candidates,
            "totalTokenCount": prompt + candidates + thoughts,
            **({"thoughtsTokenCount": thoughts} if thoughts else {}),
        }
    return payload


def gemini_reply(
    pieces: list[str],
    *,
    thoughts: list[str] = (),
    function_calls: list[dict] = (),
    finish_reason: str = "STOP",
    usage: tuple[int, int | None, int] = (5, None, 0),
    **options,
) -> Reply:
    """Thought chunks, text chunks, a function-call chunk; the last chunk carries the finishReason. Every chunk
    carries usageMetadata counted so far, as Gemini does. `function_calls` are `{"name": ..., "args": {...}}`."""
    prompt, completion, thought_tokens = usage
    completion = len(pieces) if completion is None else completion
    parts = [[{"text": piece, "thought": True}] for piece in thoughts]
    parts += [[{"text": piece}] for piece in pieces]
    if function_calls:
        parts.append([{"functionCall": dict(call)} for call in function_calls])
    parts = parts or [[]]
    chunks = []
    for number, chunk_parts in enumerate(parts, 1):
        last = number == len(parts)
        counted = (prompt, completion if last else min(number, completion), thought_tokens)
        chunks.append(gemini_chunk(chunk_parts, finish_reason=finish_reason if last else None, usage=counted))
    return Reply(headers={"content-type": "text/event-stream"}, frames=[gemini_sse(c) for c in chunks], **options)


def gemini_events(payloads: list[dict | bytes], **options) -> Reply:
    """Raw events (dicts are encoded as `data:` events), for malformed or unusual streams."""
    frames = [payload if isinstance(payload, bytes) else gemini_sse(payload) for payload in payloads]
    return Reply(headers={"content-type": "text/event-stream"}, frames=frames, **options)


def gemini_error(
    status: int,
    status_name: str,
    message: str = "scripted error",
    headers: dict[str, str] | None = None,
    *,
    retry_delay: str | None = None,
    as_list: bool = False,
) -> Reply:
    """A google.rpc error body; `retry_delay` (e.g. "37s") adds a RetryInfo detail, `as_list` wraps it in a list
    as Gemini sometimes does."""
    error: dict[str, Any] = {"code": status, "message": message, "status": status_name}
    if retry_delay is not None:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}]
    body: Any = {"error": error}
    return json_reply([body] if as_list else body, status, headers)
