"""Which Gradio sessions a request names, read as Gradio reads them, so that each is checked against its login.

A Gradio session hash (chosen by the browser, shown in URLs) or event id belongs to the first login that names it
(backend/session_owners.py). Gradio's routes read them from three places, and the guard reads each the way Gradio
does, never with a parser of its own that could disagree:

- **The path** (`/heartbeat/{session_hash}`, `/stream/{session_hash}/...`, `/stream/{event_id}`,
  `/call/{api_name}/{event_id}`...): matched with each Gradio route's own compiled pattern, by Starlette's own
  matching, on the decoded path Starlette routes by (percent-encoding, trailing slashes and all). Which routes
  these are is read from the Gradio app itself, so a route Gradio adds is covered.
- **The query** (`/queue/data?session_hash=`, `/deep_link?session_hash=`): with Starlette's own `QueryParams`;
  every value of a repeated name is checked (FastAPI takes the last).
- **A JSON body** (`/queue/join`, `/run`, `/call`, `/stream`, `/cancel`, `/component_server`...): FastAPI parses a
  body as JSON for any `application/json` or `application/*+json` type with `json.loads`, which takes leading
  whitespace, a byte-order mark, UTF-16 and UTF-32, and the last of two equal keys; `/component_server` parses
  *any* body that is not multipart. A second parser was how another login's session was reached (a body starting
  with a space). So every POST to Gradio's API with a body is parsed once here, with `json.loads`; what is not
  JSON-typed, not JSON, or names a key twice (parsers differ on which one counts) is refused; and Gradio is handed
  the canonical re-encoding of what was checked (`application/json`, UTF-8, one key each): whatever parser Gradio
  uses reads the same value. That costs about 8 ms for a 0.6 MB body (a 2,000-message chat the page sends back
  with a message), beside FastAPI's own 3 ms to parse it; only with logins. Only Gradio's upload and recording
  routes take other bodies (multipart files; they name no session).

As a second line, `bind_events` binds at the one point where Gradio's queue meets the session hash and the login
(`Queue.push`): an event is refused a session that is not its login's, and the event id it is given is bound to
that login there, where Gradio makes it.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Iterator, MutableMapping
from typing import Any

from starlette.datastructures import Headers, QueryParams
from starlette.routing import Match, Route

from backend import SessionOwners

SESSION_NAMES = ("session_hash", "event_id")  # what names a session in Gradio's routes: path, query or body
API_PREFIX = "/gradio_api/"
# Multipart uploads: files, no session (Gradio's upload and audio recording routes).
FORM_PATHS = frozenset({"/gradio_api/upload", "/gradio_api/upload/", "/gradio_api/process_recording"})
NOT_YOURS = "This session belongs to another login."


class Refusal(Exception):
    """A request the guard does not pass on: `status`, and the one sentence to answer with."""

    def __init__(self, status: int, sentence: str) -> None:
        super().__init__(sentence)
        self.status = status


def takes_json(method: str, path: str) -> bool:
    """Whether a request's body is a JSON body of Gradio's API."""
    return method not in ("GET", "HEAD", "OPTIONS") and path.startswith(API_PREFIX) and path not in FORM_PATHS


def read_request(
    scope: MutableMapping[str, Any], body: bytes | None, routes: SessionRoutes | None
) -> tuple[MutableMapping[str, Any], bytes | None, list[str]]:
    """The request as Gradio is to see it (a JSON body of its API in canonical form), and every session hash and
    event id it names, where Gradio reads them; Refusal for a body Gradio is not handed."""
    named = ids_in_query(scope.get("query_string", b""))
    if routes is not None:
        named += routes.ids_in_path(scope)
    if body and takes_json(scope["method"], scope["path"]):
        value, body = canonical_json(Headers(scope=scope).get("content-type"), body)
        named += ids_in_body(value)
        scope = {**scope, "headers": _json_headers(scope["headers"], len(body))}
    return scope, body, named


def _json_headers(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    replaced = (b"content-type", b"content-length", b"transfer-encoding")
    kept = [(name, value) for name, value in headers if name.lower() not in replaced]
    return [*kept, (b"content-type", b"application/json"), (b"content-length", str(length).encode())]


def canonical_json(content_type: str | None, body: bytes) -> tuple[Any, bytes]:
    """The value a JSON body holds, and its canonical encoding; Refusal for anything else."""
    if not _is_json_type(content_type):
        raise Refusal(415, "Send the request body as JSON (Content-Type: application/json).")
    try:
        value = json.loads(body, object_pairs_hook=_one_of_each)
    except (ValueError, RecursionError):  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        raise Refusal(400, "The request body is not valid JSON, or names a key twice.") from None
    return value, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _is_json_type(content_type: str | None) -> bool:
    """FastAPI's test: application/json or application/*+json, whatever the parameters."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def _one_of_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("a key named twice")
    return value


def ids_in_body(value: Any) -> list[str]:
    """The session hash and event id a parsed body names (Refusal if either is not text)."""
    if not isinstance(value, dict):
        return []
    named = [value[name] for name in SESSION_NAMES if value.get(name) is not None]
    if not all(isinstance(name, str) for name in named):
        raise Refusal(400, "A session hash or event id must be text.")
    return named


def ids_in_query(query_string: bytes) -> list[str]:
    params = QueryParams(query_string)
    return [value for name in SESSION_NAMES for value in params.getlist(name)]


class SessionRoutes:
    """Gradio's routes whose path names a session hash or an event id, matched as Starlette matches them."""

    def __init__(self, gradio_app: Any) -> None:
        routes = (Route(path, endpoint=endpoint) for path, endpoint in _route_paths(gradio_app.routes))
        self.routes = [route for route in routes if set(SESSION_NAMES) & set(route.param_convertors)]

    def ids_in_path(self, scope: MutableMapping[str, Any]) -> list[str]:
        named = []
        for route in self.routes:
            match, child = route.matches(scope)  # (PARTIAL: the path matches, not the method; checked all the same)
            if match is not Match.NONE:
                named += [str(child["path_params"][name]) for name in SESSION_NAMES if name in child["path_params"]]
        return named


def _route_paths(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path pattern, endpoint) of every route of an app, FastAPI's included routers opened."""
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's included router (its routes' paths carry their prefix)
            yield from _route_paths(route.original_router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Route):
            yield prefix + route.path, route.endpoint


def bind_events(queue: Any, owners: SessionOwners) -> None:
    """Gradio's queue refuses an event a session hash another login owns, and binds each event id it makes to the
    login whose event it is (see the module's docstring)."""
    push = queue.push

    async def bound_push(body: Any, request: Any, username: str | None) -> Any:
        claimed = username is None or body.session_hash is None or await owners.claim(body.session_hash, username)
        if not claimed:
            return False, NOT_YOURS, "error"
        success, event_id, state = await push(body=body, request=request, username=username)
        if success and username is not None:
            await owners.claim(event_id, username)
        return success, event_id, state

    queue.push = bound_push
