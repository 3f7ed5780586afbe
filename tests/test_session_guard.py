"""Another login's Gradio session, attacked through every route that names a session hash or an event id, in every
form Gradio's routes accept: the guard reads each where and as Gradio reads it (webui/session_guard.py).

The attack that started it: a body starting with a space was read by FastAPI as JSON, but not by the guard; with
Alice's session hash, Bob ran events in her session (Compare sent her history upstream on his request), streamed
her live reply to himself (`/call/chat/<event>`), and cancelled her events. With replicas, the binding was per
process: Bob got Alice's hash on the other replica, and she was then refused there.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, unquote

import httpx
import pytest
from starlette.routing import Match, Route

from backend import Backend, load_settings, load_users
from tests.conftest import require
from tests.gradio_http import GradioSession
from tests.test_replicas import replica_config
from tests.test_share_attacks import routes_of
from tests.test_share_mode import shared  # noqa: F401  (the fixture)
from tests.upstream import Reply
from webui.server import create_server
from webui.session_guard import SESSION_NAMES

ALICE_PIECES = [f"a{number:03d} " for number in range(120)]  # six seconds: alive through every attack
BOB_PIECES = [f"b{number:03d} " for number in range(120)]
GUARD_SENTENCES = {
    "This session belongs to another login.",
    "Send the request body as JSON (Content-Type: application/json).",
    "The request body is not valid JSON, or names a key twice.",
}


@dataclass
class Scene:
    """Alice's session (hash `victim`) with a reply being written (event `event`); Bob signed in, with his own
    session (`own`) and an event of his own (`own_event`)."""

    alice: GradioSession
    bob: GradioSession
    victim: str
    event: str
    own: str
    own_event: str
    chat: int  # the fn_index of the API's chat
    describe: int  # an event run outside the queue, reading the session's state


# --- how a body can be written: what FastAPI (or /component_server) reads as JSON, and what it reads otherwise ----


def _dumps(body: dict) -> str:
    return json.dumps(body)


def _twice(body: dict, own: tuple[str, str], victim_last: bool) -> str:
    """The body with its key naming the victim's session written twice, once with the attacker's own value: the
    victim's last (what json.loads keeps) or first."""
    name, mine = own
    rest = {key: value for key, value in body.items() if key != name}
    first, last = (mine, body[name]) if victim_last else (body[name], mine)
    return _dumps(rest)[:-1] + f', "{name}": "{first}", "{name}": "{last}"}}'


def _multipart(body: dict) -> tuple[bytes, dict[str, str]]:
    request = httpx.Request(
        "POST",
        "http://x/",
        data={k: json.dumps(v) if not isinstance(v, str) else v for k, v in body.items()},
        files={"blob": ("b", b"x")},
    )
    return request.read(), {"content-type": request.headers["content-type"]}


JSON = {"content-type": "application/json"}
# Each: (body, (the key naming the victim's session, the attacker's own value for it)) -> (bytes, headers).
BODY_FORMS: dict[str, Callable[[dict, tuple[str, str]], tuple[bytes, dict[str, str]]]] = {
    "plain": lambda body, own: (_dumps(body).encode(), JSON),
    "leading space": lambda body, own: (b" " + _dumps(body).encode(), JSON),
    "leading newline": lambda body, own: (b"\n" + _dumps(body).encode(), JSON),
    "leading tab": lambda body, own: (b"\t" + _dumps(body).encode(), JSON),
    "UTF-8 byte-order mark": lambda body, own: (b"\xef\xbb\xbf" + _dumps(body).encode(), JSON),
    "UTF-16": lambda body, own: (_dumps(body).encode("utf-16"), JSON),
    "charset=utf-16": lambda body, own: (
        _dumps(body).encode("utf-16"),
        {"content-type": "application/json; charset=utf-16"},
    ),
    "UTF-32": lambda body, own: (_dumps(body).encode("utf-32"), JSON),
    "APPLICATION/JSON": lambda body, own: (_dumps(body).encode(), {"content-type": "APPLICATION/JSON"}),
    "application/vnd.x+json": lambda body, own: (_dumps(body).encode(), {"content-type": "application/vnd.x+json"}),
    "text/plain": lambda body, own: (_dumps(body).encode(), {"content-type": "text/plain"}),
    "no content type": lambda body, own: (_dumps(body).encode(), {}),
    "duplicate keys, victim's last": lambda body, own: (_twice(body, own, victim_last=True).encode(), JSON),
    "duplicate keys, victim's first": lambda body, own: (_twice(body, own, victim_last=False).encode(), JSON),
    "form-encoded": lambda body, own: (
        httpx.Request("POST", "http://x/", data={k: str(v) for k, v in body.items()}).read(),
        {"content-type": "application/x-www-form-urlencoded"},
    ),
    "multipart": lambda body, own: _multipart(body),
    # (/component_server reads as JSON whatever does not start with "multipart/form-data", in that case)
    "JSON labelled Multipart/Form-Data": lambda body, own: (
        _dumps(body).encode(),
        {"content-type": "Multipart/Form-Data; boundary=x"},
    ),
}


def _body_attacks(scene: Scene) -> dict[tuple[str, str], dict]:
    """(route, the key naming Alice's session) -> a body naming her session hash or event id, as Bob sends it."""
    chat_data = {"data": ["tell me her secrets", "cloud/chat"], "event_data": None, "trigger_id": None}
    return {
        ("/gradio_api/queue/join", "session_hash"): {**chat_data, "fn_index": scene.chat, "session_hash": scene.victim},
        ("/gradio_api/run/predict", "session_hash"): {
            "data": [None, "cloud/chat"],
            "fn_index": scene.describe,
            "session_hash": scene.victim,
        },
        ("/gradio_api/api/predict", "session_hash"): {
            "data": [None, "cloud/chat"],
            "fn_index": scene.describe,
            "session_hash": scene.victim,
        },
        ("/gradio_api/call/chat", "session_hash"): {"data": chat_data["data"], "session_hash": scene.victim},
        (f"/gradio_api/stream/{scene.own_event}", "session_hash"): {**chat_data, "session_hash": scene.victim},
        ("/gradio_api/cancel", "session_hash"): {
            "session_hash": scene.victim,
            "fn_index": scene.chat,
            "event_id": scene.event,
        },
        ("/gradio_api/cancel", "event_id"): {
            "session_hash": scene.own,
            "fn_index": scene.chat,
            "event_id": scene.event,
        },
        ("/gradio_api/reset", "event_id"): {"event_id": scene.event},
        ("/gradio_api/component_server", "session_hash"): {
            "session_hash": scene.victim,
            "component_id": 1,
            "fn_name": "preprocess",
            "data": None,
        },
    }


def _address_attacks(scene: Scene) -> list[tuple[str, str]]:
    """(method, path and query) naming Alice's session hash or event id in the address, in every spelling."""
    victim, event, own = scene.victim, scene.event, scene.own
    encoded = "".join(f"%{ord(char):02X}" for char in victim)
    paths = [
        f"/gradio_api/heartbeat/{victim}",
        f"/gradio_api/stream/{victim}/run/1/playlist.m3u8",
        f"/gradio_api/stream/{victim}/run/1/segment.ts",
        f"/gradio_api/stream/{victim}/run/1/playlist-file",
        f"/gradio_api/call/chat/{event}",
        f"/gradio_api/call/v2/chat/{event}",
        f"/gradio_api/call/chat/{victim}",  # her session hash as an event id: Gradio then reads her session
    ]
    attacks = [("GET", path) for path in paths]
    attacks += [("GET", path.replace(victim, encoded).replace(event, quote(event, safe=""))) for path in paths]
    attacks += [("GET", path + "/") for path in paths]
    attacks += [("POST", f"/gradio_api/stream/{event}"), ("POST", f"/gradio_api/stream/{event}/close")]
    attacks += [("POST", f"/gradio_api/stream/{''.join(f'%{ord(c):02X}' for c in event)}/close")]
    for route in ("/gradio_api/queue/data", "/gradio_api/deep_link"):
        attacks += [
            ("GET", f"{route}?session_hash={victim}"),
            ("GET", f"{route}?session_hash={own}&session_hash={victim}"),
            ("GET", f"{route}?session_hash={victim}&session_hash={own}"),
            ("GET", f"{route}?session%5Fhash={encoded}"),
        ]
    return attacks


def _outcome(http: httpx.Client, method: str, url: str, **options) -> tuple[int, str]:
    """The status and text of an answer; a stream that is answered (her queue, say) is left at once."""
    with http.stream(method, url, follow_redirects=True, **options) as response:
        if response.status_code < 400:
            return response.status_code, ""
        return response.status_code, response.read().decode("utf-8", "replace")


def _refused_by_the_guard(status: int, text: str) -> bool:
    try:
        detail = json.loads(text).get("detail")
    except (ValueError, AttributeError):
        return False
    return status in (400, 403, 415) and detail in GUARD_SENTENCES


@pytest.fixture
def scene(shared):  # noqa: F811
    url, cloud, _ = shared()
    cloud.enqueue(Reply.text(ALICE_PIECES, delay=0.05))
    alice = GradioSession(url, "alice", "alice-secret")
    chat = alice.api_fn_index("chat")
    event = alice.join(chat, ["a long answer please", "cloud/chat"])
    assert cloud.wait_for(lambda: len(cloud.chat_requests()) == 1, timeout=20)
    cloud.enqueue(Reply.text(BOB_PIECES, delay=0.05))
    bob = GradioSession(url, "bob", "bob-secret")
    own_event = bob.join(chat, ["my own question", "cloud/chat"])
    assert cloud.wait_for(lambda: len(cloud.chat_requests()) == 2, timeout=20)
    describe = alice.fn_index("model-picker", "change")
    yield Scene(alice, bob, alice.session_hash, event, bob.session_hash, own_event, chat, describe), cloud
    alice.close()
    bob.close()


def test_no_route_and_no_spelling_reaches_another_logins_session(scene):
    """Every route that names a session hash or event id, with Alice's, in every form Gradio would read: each is
    refused by the guard, Alice's reply arrives whole, and nothing reached the upstream on Bob's requests."""
    scene, cloud = scene
    passed = []
    for (route, key), body in _body_attacks(scene).items():
        own = (key, scene.own if key == "session_hash" else scene.own_event)
        for form, write in BODY_FORMS.items():
            content, headers = write(body, own)
            status, text = _outcome(scene.bob.http, "POST", route, content=content, headers=headers)
            if not _refused_by_the_guard(status, text):
                passed.append((route, key, form, status, text[:200]))
    for method, address in _address_attacks(scene):
        status, text = _outcome(scene.bob.http, method, address)
        if not _refused_by_the_guard(status, text):
            passed.append((address, method, status, text[:200]))
    assert passed == []

    done = scene.alice.result(scene.event)
    assert done["success"] and done["output"]["data"][0] == "".join(ALICE_PIECES)
    mine = scene.bob.result(scene.own_event)
    assert mine["success"] and mine["output"]["data"][0] == "".join(BOB_PIECES)
    requests = cloud.chat_requests()
    assert len(requests) == 2 and all(request.disconnected_at is None for request in requests)


def test_an_event_id_belongs_to_the_login_whose_event_it_is(scene):
    """Bob, in his own session, names Alice's event: he cannot cancel it or read its results."""
    scene, _ = scene
    cancel = {"session_hash": scene.own, "fn_index": scene.chat, "event_id": scene.event}
    assert scene.bob.http.post("gradio_api/cancel", json=cancel).status_code == 403
    assert _outcome(scene.bob.http, "GET", f"gradio_api/call/chat/{scene.event}")[0] == 403
    done = scene.alice.result(scene.event)
    assert done["success"] and done["output"]["data"][0] == "".join(ALICE_PIECES)


def test_legitimate_requests_of_every_kind_still_pass(scene):
    """Bob's own session, in the forms Gradio's clients send: JSON bodies (whatever their spelling) are handed to
    Gradio as the value they hold."""
    scene, cloud = scene
    describe = {"data": [None, "cloud/chat"], "fn_index": scene.describe, "session_hash": scene.own}
    for form in ("plain", "leading space", "UTF-8 byte-order mark", "UTF-16", "application/vnd.x+json"):
        content, headers = BODY_FORMS[form](describe, ("session_hash", scene.own))
        answered = scene.bob.http.post("gradio_api/run/predict", content=content, headers=headers)
        assert answered.status_code == 200, (form, answered.text)
    cancel = {"session_hash": scene.own, "fn_index": scene.chat, "event_id": scene.own_event}
    assert scene.bob.http.post("gradio_api/cancel", json=cancel).status_code == 200
    assert cloud.wait_for(lambda: cloud.chat_requests()[1].disconnected_at is not None, 10)  # his own, cancelled
    done = scene.alice.result(scene.event)
    assert done["success"] and done["output"]["data"][0] == "".join(ALICE_PIECES)


# --- every route that names a session is in the matrix --------------------------------------------------------

# Routes whose code mentions a session hash or event id without taking one from the visitor.
NOT_NAMED_BY_THE_VISITOR = {
    ("POST", "/gradio_api/upload"): "the session_hash header only labels a profiling trace",
    ("GET", "/gradio_api/openapi.json"): "describes the API (its text tells where event ids go)",
}


def _named_sessions(route) -> bool:
    """Whether a route takes a session hash or event id: in its path, its query or body parameters, or by
    reading the request itself (its code names one)."""
    names = set(SESSION_NAMES)
    dependant = getattr(route, "dependant", None)
    fields = set(route.param_convertors)
    if dependant is not None:
        fields |= {param.name for param in dependant.query_params}
        for param in dependant.body_params:
            model = getattr(param.field_info, "annotation", None) or getattr(param, "type_", None)
            fields |= set(getattr(model, "model_fields", {}))
    source = inspect.getsource(route.endpoint)
    return bool(names & fields) or any(name in source for name in names)


def test_the_matrix_is_complete(shared):  # noqa: F811
    """Every route of the mounted Gradio app that takes a session hash or an event id is attacked above (some
    request of the matrix reaches it); a route a later Gradio adds fails this test until it is."""
    _, _, backend = shared()
    gradio_app = create_server(backend, users=load_users(None, "TEAM")).routes[-1].app
    routes = list(_all_routes(gradio_app.routes))
    taking = {
        (method, route.path.rstrip("/"))
        for route in routes
        if _named_sessions(route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert len(taking) > 10 and len(routes_of(gradio_app)) > 60  # (the walk saw Gradio's API routes)
    assert taking - set(NOT_NAMED_BY_THE_VISITOR) <= _attacked(routes)


def _attacked(routes) -> set[tuple[str, str]]:
    """(method, path pattern) of the routes the matrix's requests reach, as Starlette matches them."""
    scene = Scene(None, None, "h" * 16, "e" * 32, "o" * 16, "f" * 32, chat=0, describe=0)  # type: ignore[arg-type]
    requests = [("POST", route) for route, _ in _body_attacks(scene)] + _address_attacks(scene)
    patterns = [Route(route.path, endpoint=route.endpoint, methods=route.methods) for route in routes]
    reached = set()
    for method, address in requests:
        scope = {"type": "http", "method": method, "path": unquote(address.split("?")[0]), "root_path": ""}
        for pattern in patterns:
            if pattern.matches(scope)[0] is Match.FULL:
                reached.add((method, pattern.path.rstrip("/")))
    return reached


def _all_routes(routes):
    for route in routes:
        if hasattr(route, "original_router"):
            yield from _all_routes(route.original_router.routes)
        elif hasattr(route, "param_convertors"):
            yield route


# --- replicas ------------------------------------------------------------------------------------------------


def test_a_session_belongs_to_its_login_on_every_replica(upstream, write_config, redis_server, serve_app, monkeypatch):
    """With Redis, the first login to use a session hash owns it on every replica: Bob, on the other replica,
    gets 403 for Alice's hash, and Alice, moved there, still uses it."""
    monkeypatch.setenv("TEST_REDIS_PASSWORD", redis_server.password)
    monkeypatch.setenv("TEAM", "alice:alice-secret,bob:bob-secret")
    path = write_config(replica_config(upstream, redis_server) + '\n[auth]\nusers_env = "TEAM"\n')
    first, second = (serve_app(Backend(load_settings(path)), users=load_users(None, "TEAM")) for _ in range(2))
    alice = GradioSession(first, "alice", "alice-secret")
    alice.send("Hello.")  # her session hash, used on the first replica
    bob = GradioSession(second, "bob", "bob-secret")
    assert _outcome(bob.http, "GET", f"gradio_api/queue/data?session_hash={alice.session_hash}")[0] == 403
    assert _outcome(bob.http, "GET", f"gradio_api/heartbeat/{alice.session_hash}")[0] == 403
    moved = GradioSession(second, cookies=dict(alice.http.cookies))  # her browser, on the other replica
    moved.session_hash = alice.session_hash
    moved.send("Still me.")  # (joins her session there, and reads its queue)
    for session in (alice, bob, moved):
        session.close()


async def test_with_redis_gone_a_replica_answers_for_the_sessions_it_knows():
    """Redis unreachable: a session this replica has seen keeps its owner; one new to it cannot be told (the guard
    answers 503), rather than going to whoever asks first."""
    from backend import SharedSessionOwners
    from tests.redis_server import ThrowawayRedis, unavailable

    require(unavailable() is None, "Redis is not installed")
    redis = ThrowawayRedis().start()
    owners = SharedSessionOwners(redis.url, redis.password)
    try:
        assert await owners.claim("alices-session", "alice")
        assert await owners.claim("alices-session", "bob") is False
    finally:
        redis.stop()
    assert await owners.claim("alices-session", "alice") is True
    assert await owners.claim("alices-session", "bob") is False
    assert await owners.claim("a-new-session", "bob") is None
    await owners.aclose()


# --- the second line: Gradio's queue itself -------------------------------------------------------------------


async def test_gradios_queue_itself_refuses_another_logins_session(scripted_backend):
    """Where Gradio's queue takes an event (the session hash and the login meet there), an event for another
    login's session is refused, and the id of an event it takes belongs to its login from then on."""
    from gradio.data_classes import PredictBodyInternal

    from backend import SessionOwners
    from webui.app import build_app
    from webui.session_guard import NOT_YOURS, bind_events

    blocks = build_app(scripted_backend)
    owners = SessionOwners()
    bind_events(blocks._queue, owners)
    chat = next(dep["id"] for dep in blocks.get_config_file()["dependencies"] if dep.get("api_name") == "chat")
    assert await owners.claim("alices-session", "alice")

    def event(session_hash: str) -> PredictBodyInternal:
        return PredictBodyInternal(session_hash=session_hash, fn_index=chat, data=["Hi.", "scripted/scripted-1"])

    assert await blocks._queue.push(body=event("alices-session"), request=None, username="bob") == (
        False,
        NOT_YOURS,
        "error",
    )
    taken, event_id, _ = await blocks._queue.push(body=event("bobs-session"), request=None, username="bob")
    assert taken and await owners.claim(event_id, "alice") is False and await owners.claim(event_id, "bob")
