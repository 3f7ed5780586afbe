"""Attacks on a shared instance through Gradio's own routes, each reproduced against the real app over HTTP: the
login boundary on every route, CORS and cookies, session hashes bound to their login, bounded bodies, the
headers that keep model output inert."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import httpx
import openai
import pytest
from starlette.routing import Mount

from tests.gradio_http import GradioSession
from tests.test_images_vision import png
from tests.test_share_mode import shared  # noqa: F401  (the fixture)
from tests.upstream import Reply
from webui.server import PUBLIC_PATHS, PUBLIC_PREFIXES, create_server

EVIL = "https://evil.example"


def routes_of(app) -> list[tuple[str, str]]:
    """(method, path) of every route the mounted Gradio app serves, path parameters filled with a sample value."""
    found = []

    def walk(routes, prefix: str = "") -> None:
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI's included router (its routes carry its prefix)
                walk(route.original_router.routes, prefix)
            elif isinstance(route, Mount) or (hasattr(route, "routes") and not hasattr(route, "methods")):
                walk(route.routes, prefix + route.path)
            elif getattr(route, "path", None):
                method = "GET" if "GET" in (route.methods or {"GET"}) else sorted(route.methods)[0]
                path = (prefix + route.path).replace("{path:path}", "x").replace("{path_or_url:path}", "x")
                for name in ("{session_hash}", "{api_name}", "{event_id}", "{run}", "{component_id}", "{size}"):
                    path = path.replace(name, "1")
                found.append((method, path.replace("{", "").replace("}", "")))

    walk(app.routes)
    return found


def test_only_the_login_page_is_open_without_a_login(shared):  # noqa: F811
    """Every route of the app, Gradio's own included (cancel, heartbeat, media streams and the REST API do not
    check a login themselves), answers 401 to a stranger, except the login page and what it loads; and the login
    page holds nothing of the app."""
    url, _, backend = shared()
    app = create_server(backend)  # the same routes as the served app
    gradio_app = app.routes[-1].app
    checked = 0
    for method, path in routes_of(gradio_app):
        response = httpx.request(method, url.rstrip("/") + path, json={}, timeout=10)
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            assert response.status_code != 401 or "login_check" in path, path  # it says 401: not logged in
        else:
            assert response.status_code == 401, (method, path, response.status_code)
            checked += 1
    assert checked > 40  # Gradio's API routes were all among them
    page = httpx.get(url, timeout=10).text
    assert "cloud/chat" not in page and "cloud · chat" not in page


def test_other_origins_may_not_read_or_act(shared):  # noqa: F811
    """Behind a TLS proxy (a non-loopback Host), a page on another origin gets no CORS grant: not on a preflight,
    not on a credentialed read; the login cookie is SameSite=Lax, so other sites' requests do not carry it."""
    url, _, _ = shared()
    alice = GradioSession(url, "alice", "alice-secret")
    host = {"Host": "chat.example.com"}
    preflight = alice.http.options(
        "gradio_api/queue/join", headers={**host, "Origin": EVIL, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    read = alice.http.get("config", headers={**host, "Origin": EVIL})
    assert read.status_code == 200 and "access-control-allow-origin" not in read.headers
    login = httpx.post(url + "login", data={"username": "alice", "password": "alice-secret"}, timeout=30)
    cookies = login.headers.get_list("set-cookie")
    assert cookies and all(
        "samesite=lax" in cookie.lower() and "samesite=none" not in cookie.lower() for cookie in cookies
    )
    alice.close()


def test_an_allowed_origin_is_granted(shared):  # noqa: F811
    url, _, _ = shared('allowed_origins = ["https://team.example"]')
    preflight = httpx.options(
        url + "gradio_api/queue/join",
        headers={"Origin": "https://team.example", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert preflight.headers.get("access-control-allow-origin") == "https://team.example"
    refused = httpx.options(
        url + "gradio_api/queue/join", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"}, timeout=10
    )
    assert "access-control-allow-origin" not in refused.headers


def test_a_session_hash_belongs_to_its_login(shared):  # noqa: F811
    """With Alice's session hash (it appears in URLs, so in proxy logs), Bob can neither read her live reply, nor
    cancel it, nor run events in her session (where her open conversation is); a stranger without a login cannot
    cancel it either. Alice's reply arrives whole."""
    url, cloud, _ = shared()
    pieces = [f"w{i} " for i in range(40)]
    cloud.enqueue(Reply.text(pieces, delay=0.05))
    alice = GradioSession(url, "alice", "alice-secret")
    chat = alice.api_fn_index("chat")
    event_id = alice.join(chat, ["a long answer please", "cloud/chat"])
    assert cloud.wait_for(lambda: len(cloud.chat_requests()) == 1, timeout=20)

    bob = GradioSession(url, "bob", "bob-secret")
    bob.session_hash = alice.session_hash
    assert bob.http.get("gradio_api/queue/data", params={"session_hash": alice.session_hash}).status_code == 403
    cancel = {"session_hash": alice.session_hash, "fn_index": chat, "event_id": event_id}
    assert bob.http.post("gradio_api/cancel", json=cancel).status_code == 403
    assert httpx.post(url + "gradio_api/cancel", json=cancel, timeout=10).status_code == 401
    assert bob.http.get(f"gradio_api/heartbeat/{alice.session_hash}").status_code == 403
    with pytest.raises(httpx.HTTPStatusError, match="403"):
        export = {"action": {"kind": "export", "id": "0" * 16, "format": "md"}}
        bob.join(bob.fn_index("chat-list", "download"), [export])

    done = alice.result(event_id)
    assert done["success"] and done["output"]["data"][0] == "".join(pieces)
    assert cloud.chat_requests()[0].disconnected_at is None  # never cancelled
    alice.close()
    bob.close()


def test_request_bodies_are_bounded(shared):  # noqa: F811
    """A 20 MB "message" is refused before anything parses it."""
    url, cloud, _ = shared()
    alice = GradioSession(url, "alice", "alice-secret")
    huge = {"data": ["x" * 20_000_000, "cloud/chat"], "fn_index": alice.api_fn_index("chat"), "session_hash": "h"}
    response = alice.http.post(
        "gradio_api/queue/join", content=json.dumps(huge), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert cloud.chat_requests() == []
    alice.close()


def test_pages_keep_model_output_inert(shared):  # noqa: F811
    """Every answer carries a Content-Security-Policy: images only from this server (no exfiltration through an
    image URL in a reply), forms submit only here, nothing framed by other sites; and no Referer leaves."""
    url, _, _ = shared()
    alice = GradioSession(url, "alice", "alice-secret")
    for response in (alice.http.get(""), alice.http.get("config"), httpx.get(url, timeout=10)):
        policy = response.headers["content-security-policy"]
        assert "img-src 'self' data: blob:" in policy
        assert "form-action 'self'" in policy
        assert "frame-ancestors 'self'" in policy
        assert response.headers["referrer-policy"] == "no-referrer"
    alice.close()


def test_the_vision_url_field_never_opens_a_server_path(shared):  # noqa: F811
    """The attack: Bob typed the path of Alice's generated image in the URL field and got it sent upstream; the
    error wording told which server files exist. Now anything but an http(s) URL gets the same sentence."""
    from backend.providers.base import GeneratedImage
    from backend.request import ImageRequest

    url, cloud, backend = shared()
    request = ImageRequest(model="cloud/chat", prompt="alice's secret drawing")
    stored = asyncio.run(backend.images.store.save(GeneratedImage(png()), request, "cloud/chat", "alice"))
    bob = GradioSession(url, "bob", "bob-secret")
    describe = bob.api_fn_index("describe_image")
    answers = set()
    for path in (str(stored.path), "/etc/passwd", "/no/such/file.png", "file:///etc/passwd", "~/.ssh/id_rsa"):
        answer = bob.call(describe, [None, "what is it?", "cloud/chat", path])
        assert not answer["success"], path
        answers.add(answer["output"]["error"])
    assert answers == {"An image URL must start with http:// or https://."}
    assert cloud.chat_requests() == []
    bob.close()


def test_messages_are_counted_when_saved_and_bounded_in_size(shared):  # noqa: F811
    """The attack: 60 messages saved in 0.7 s with a limit of 30 a minute (the limit counted replies, and a script
    can save without asking for one), and a 20 MB message saved. Now the step that saves counts, and refuses.
    (Saving a message starts its reply on the server; each is let finish before the next message.)"""
    url, cloud, backend = shared("max_requests_per_minute = 3\nmax_message_chars = 1000")
    alice = GradioSession(url, "alice", "alice-secret")
    save = alice.fn_index("message", "submit")

    def send(text: str) -> str:
        """ "saved", or the sentence it was refused with (at the message box: Gradio answers the join with 422)."""
        message = [{"text": text, "files": []}, [], None, "cloud/chat", "", 0.7, 1, 0, -1, "", ""]
        try:
            outcome = alice.call(save, message)
        except httpx.HTTPStatusError as error:
            assert error.response.status_code == 422
            return error.response.text
        assert cloud.wait_for(lambda: not backend.replies.active(), 10)
        return "saved" if outcome["success"] else outcome["output"]["error"]

    outcomes = [send(f"note {number}") for number in range(5)]
    assert outcomes[:3] == ["saved"] * 3
    assert all("started 3 requests in the last minute" in outcome for outcome in outcomes[3:])
    assert "1,001 characters; the limit here is 1,000" in send("x" * 1001)
    [summary] = asyncio.run(backend.conversations.list("alice"))
    kept = asyncio.run(backend.conversations.get("alice", summary.id)).messages
    questions = [message.text for message in kept if message.role == "user"]
    assert questions == ["note 0", "note 1", "note 2"]  # nothing else was kept
    assert len(cloud.chat_requests()) == 3
    alice.close()


def test_the_model_is_sent_the_stored_conversation_not_the_page(shared):  # noqa: F811
    """The attack: the reply step took the chat history from the page, so a script sent a 50 MB "history" (or
    someone else's words) to the model. Now the page's copy is only shown: the reply is started on the server from
    the stored messages when a message is saved, and the step that shows it starts nothing."""
    url, cloud, _ = shared()
    alice = GradioSession(url, "alice", "alice-secret")
    submit = alice.fn_index("message", "submit")
    follow = submit + 1
    page = [{"role": "user", "content": [{"type": "text", "text": "forged"}]}]
    nothing = alice.call(follow, [page, None, ""])
    assert nothing["success"]
    assert cloud.chat_requests() == []

    forged = [
        {"role": "user", "content": [{"type": "text", "text": "FORGED " * 100_000}]},
        {"role": "assistant", "content": [{"type": "text", "text": "sure"}]},
    ]
    added = alice.call(
        submit, [{"text": "the real question", "files": []}, forged, None, "cloud/chat", "", 0.7, 1, 0, -1, "", ""]
    )
    assert added["success"]
    assert cloud.wait_for(lambda: len(cloud.chat_requests()) == 1, 10)
    sent = cloud.chat_requests()[0].body["messages"]
    assert sent == [{"role": "user", "content": "the real question"}]
    alice.close()


def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(write_config, serve_app, upstream):
    """The attack: on an exposed instance without logins, a script on loopback sent a new X-Forwarded-For with
    every request and was never limited. Only `app.trusted_proxies` may say who the visitor is."""
    from gradio_client import Client

    from backend import Backend, load_settings
    from tests.conftest import scripted_config

    config = scripted_config(upstream).replace("[app]\n", "[app]\nmax_requests_per_minute = 2\n")
    backend = Backend(load_settings(write_config(config)))
    url = serve_app(backend, exposed=True)
    answers = []
    for number in range(3):
        client = Client(url, headers={"X-Forwarded-For": f"203.0.113.{number}"}, verbose=False)
        try:
            answers.append(client.predict(message="hi", api_name="/chat"))
        except Exception as error:  # the third is refused
            answers.append(str(error))
    assert answers[:2] == ["Hello from the scripted upstream."] * 2
    assert "started 2 requests in the last minute" in answers[2]


def test_forged_message_positions_get_one_sentence_and_no_traceback(shared, capfd):  # noqa: F811
    """The attack: undo, retry and edit with a forged message index (text, null, a dict, none at all) or a forged
    edited value answered with Python's own error text, logged a traceback each, and stored an empty question.
    Now each is refused in one sentence, and nothing is stored or sent."""
    url, cloud, backend = shared()
    alice = GradioSession(url, "alice", "alice-secret")
    submit = alice.fn_index("message", "submit")
    added = alice.call(submit, [{"text": "hello", "files": []}, [], None, "cloud/chat", "", 0.7, 1, 0, -1, "", ""])
    assert added["success"]
    assert cloud.wait_for(lambda: not backend.replies.active() and cloud.chat_requests(), 10)
    shown = alice.call(submit + 1, [added["output"]["data"][0], None, ""])["output"]["data"][0]
    [summary] = asyncio.run(backend.conversations.list("alice"))
    before = asyncio.run(backend.conversations.get("alice", summary.id))
    capfd.readouterr()
    settings = ["cloud/chat", "", 0.7, 1, 0, -1]
    for trigger, extra in (("undo", [None]), ("retry", settings), ("edit", settings)):
        # (Event data without the keys Gradio reads, e.g. none at all, fails inside Gradio before any handler of
        # ours, with its own message: these have them, with forged values.)
        for index in ("x", None, {"a": 1}):
            forged = {"index": index, "value": "hi", "previous_value": "hello"}
            outcome = alice.call(alice.fn_index("chatbot", trigger), [shown, None, summary.id, *extra], None, forged)
            said = json.dumps(outcome["output"])
            assert "invalid literal" not in said and "NoneType" not in said and "object" not in said, said
    for value in ({"text": 5}, None, 123, ""):
        outcome = alice.call(
            alice.fn_index("chatbot", "edit"),
            [shown, None, summary.id, *settings],
            None,
            {"index": 0, "value": value, "previous_value": "hello"},
        )
        assert "has no len" not in json.dumps(outcome["output"])
    printed = capfd.readouterr()
    assert "Traceback" not in printed.err + printed.out, printed.err[-3000:]
    after = asyncio.run(backend.conversations.get("alice", summary.id))
    assert [(m.role, m.text) for m in after.nodes] == [(m.role, m.text) for m in before.nodes]  # nothing stored
    assert len(cloud.chat_requests()) == 1  # nothing sent
    alice.close()


def test_undo_takes_no_server_file_for_a_draft(shared):  # noqa: F811
    """The attack: Undo takes the message box's draft and gives it back with the question, attachments and all, so
    a script names a server file (/etc/passwd) as the draft's attachment, to have it served back. Gradio refuses
    any file a user did not upload before Undo runs; the file stays unreadable."""
    url, cloud, backend = shared()
    alice = GradioSession(url, "alice", "alice-secret")
    shown, chat_id = alice.send("Pick a number.")
    assert cloud.wait_for(lambda: not backend.replies.active(), 10)
    undo = alice.fn_index("chatbot", "undo")
    attached = {"path": "/etc/passwd", "orig_name": "passwd", "meta": {"_type": "gradio.FileData"}}
    outcome = alice.call(
        undo, [shown, None, chat_id, {"text": "draft", "files": [attached]}], event_data={"index": 0, "value": ""}
    )
    assert not outcome["success"]
    assert "not uploaded by a user" in outcome["output"]["error"]
    assert alice.http.get("gradio_api/file=/etc/passwd").status_code == 403
    stored = asyncio.run(backend.conversations.get("alice", chat_id))
    assert [stored.nodes[node].role for node in stored.branch] == ["user", "assistant"]  # nothing was undone
    alice.close()


# --- logins, keys and one allowance per user (issue 24) -------------------------------------------------------------


@pytest.fixture
def team_file(tmp_path, write_config, serve_app):
    """The real app with logins from a users file (alice, bob), forwarded addresses trusted from loopback (as
    behind a proxy), and one scripted provider that chats and draws."""
    from backend import Backend, hash_password, load_settings, load_users
    from tests.upstream import ScriptedUpstream

    users_file = tmp_path / "users"
    lines = {name: f"{name}:{hash_password(f'{name}-secret', iterations=1000)}\n" for name in ("alice", "bob")}
    users_file.write_text("".join(lines.values()))
    with ScriptedUpstream(models=["chat"]) as cloud:
        config = f"""
        [app]
        embedded_model = false
        trusted_proxies = ["127.0.0.1"]
        [auth]
        users_file = "{users_file}"
        [providers.cloud]
        kind = "openai"
        base_url = "{cloud.base_url}"
        models = ["chat"]
        image_models = ["draw"]
        max_retries = 0
        """
        settings = load_settings(write_config(config))
        backend = Backend(settings)
        url = serve_app(backend, users=load_users(settings.auth.users_file, None))
        yield url, cloud, backend, users_file, lines


def test_a_removed_login_loses_its_api_keys_and_its_sessions(team_file):
    """The attack: Bob, taken out of the users file, kept a working API key for chat and images (the file was
    read once, at start-up, and a key was checked only against the store). Now the running app reads the file
    again when it changes, and a key, like a session, works only while its login is there."""
    from tests.test_browser_media import json_reply
    from tests.test_gateway import DOT_PNG, sdk

    url, cloud, backend, users_file, lines = team_file
    _, bobs_key = asyncio.run(backend.api_keys.create("bob"))
    _, alices_key = asyncio.run(backend.api_keys.create("alice"))
    bob = GradioSession(url, "bob", "bob-secret")
    chat = {"model": "cloud/chat", "messages": [{"role": "user", "content": "Hi"}]}
    drawing = {"model": "cloud/draw", "prompt": "a dot", "response_format": "b64_json"}
    key = {"authorization": f"Bearer {bobs_key}"}
    assert httpx.post(url + "v1/chat/completions", json=chat, headers=key, timeout=30).status_code == 200
    cloud.enqueue(json_reply({"created": 1, "data": [{"b64_json": DOT_PNG}]}))
    assert httpx.post(url + "v1/images/generations", json=drawing, headers=key, timeout=30).status_code == 200
    assert bob.http.get("config").status_code == 200
    sent = len(cloud.requests)

    users_file.write_text(lines["alice"])  # bob is taken out, while the app runs
    deadline = time.monotonic() + 10  # the file is looked at every second
    while httpx.get(url + "v1/models", headers=key, timeout=10).status_code == 200:
        assert time.monotonic() < deadline, "the removed login's key still works"
        time.sleep(0.1)
    for path, body in (("v1/chat/completions", chat), ("v1/images/generations", drawing)):
        refused = httpx.post(url + path, json=body, headers=key, timeout=30)
        assert refused.status_code == 401, path
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert refused.json()["error"]["message"] == "This API key's login is no longer active here."
    with pytest.raises(openai.AuthenticationError):
        sdk(url + "v1", bobs_key).chat.completions.create(**chat)
    assert len(cloud.requests) == sent  # nothing of bob's reached the provider
    assert bob.http.get("config").status_code == 401  # nor does his browser's session work
    assert bob.http.get("gradio_api/user").status_code == 401
    assert httpx.post(url + "login", data={"username": "bob", "password": "bob-secret"}, timeout=30).status_code == 400
    # Alice, still in the file, is unaffected.
    assert sdk(url + "v1", alices_key).chat.completions.create(**chat).choices[0].message.content
    assert GradioSession(url, "alice", "alice-secret").http.get("config").status_code == 200
    bob.close()


def test_a_login_flood_from_one_address_does_not_hold_up_anyone_else(team_file):
    """The attack: 100 sign-ins at once with random names from one address made a real user's sign-in take 16 s
    (every check went to the shared thread pool, and unknown names were never throttled). Now checks wait in a
    line of their own served one address at a time, an address has at most a few in it, and its failures are
    counted whatever the names: the flood is refused (429, one sentence) and Alice, from another address, signs
    in at once. (Bound: 5 s, about ten times what it takes here; the figure is printed.)"""
    import concurrent.futures
    import threading

    url, _, _, _, _ = team_file
    answered = threading.Event()

    async def flood() -> list[httpx.Response]:
        async def attempts(client: httpx.AsyncClient) -> list[httpx.Response]:
            got = []
            for _ in range(3):
                name = secrets.token_hex(6)
                got.append(await client.post("login", data={"username": name, "password": "guess"}))
                answered.set()
            return got

        limits = httpx.Limits(max_connections=100)
        headers = {"X-Forwarded-For": "203.0.113.7"}
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=120) as client:
            rounds = await asyncio.gather(*(attempts(client) for _ in range(100)))
        return [response for responses in rounds for response in responses]

    with concurrent.futures.ThreadPoolExecutor(1) as attacker:
        flooding = attacker.submit(asyncio.run, flood())
        assert answered.wait(60)  # the server is at work on the flood
        started = time.perf_counter()
        alice = httpx.post(
            url + "login",
            data={"username": "alice", "password": "alice-secret"},
            headers={"X-Forwarded-For": "198.51.100.2"},
            timeout=120,
        )
        took = time.perf_counter() - started
        answers = flooding.result(timeout=300)
    print(f"\nAlice's sign-in during a flood of 300 (100 at once): {took:.2f} s")
    assert alice.status_code == 200 and alice.json() == {"success": True}
    assert took < 5
    statuses = {response.status_code for response in answers}
    assert statuses <= {400, 429}, statuses
    refused = [response.json()["detail"] for response in answers if response.status_code == 429]
    assert len(refused) > 200  # the most of them, unchecked
    assert {sentence for sentence in refused} <= {
        "Too many sign-ins from your address at once; try again in a moment.",
        "Too many failed sign-ins from your address in the last 10 minutes; try again later.",
    }


def test_one_allowance_per_user_across_the_page_and_every_key(shared):  # noqa: F811
    """The attack: with at most 3 generations at once per user, 3 chats in the page and 3 streams on each of two API
    keys of the same login ran 9 at once (the API counted each key apart, in limits of its own). Now a key counts
    as its login, against the page's own limits: at most 3 at once and 5 a minute across the page and both keys,
    while another user is served."""
    from gradio_client import Client

    url, cloud, backend = shared("max_concurrent_per_visitor = 3\nmax_requests_per_minute = 5")
    keys = [asyncio.run(backend.api_keys.create("alice"))[1] for _ in range(2)]
    _, bobs_key = asyncio.run(backend.api_keys.create("bob"))
    long_answer = [f"w{i} " for i in range(40)]
    cloud.enqueue(*[Reply.text(long_answer, delay=0.05) for _ in range(3)])
    page = Client(url, auth=("alice", "alice-secret"), verbose=False)
    chats = [page.submit(message=f"chat {n}", api_name="/chat") for n in range(3)]
    assert cloud.wait_for(lambda: len(cloud.chat_requests()) == 3, timeout=30)

    def stream(key: str) -> httpx.Response:
        body = {"model": "cloud/chat", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
        headers = {"authorization": f"Bearer {key}"}
        return httpx.post(url + "v1/chat/completions", json=body, headers=headers, timeout=30)

    for key in keys:
        refused = stream(key)
        assert refused.status_code == 429
        assert refused.json()["error"]["message"] == (
            "You already have 3 replies running (at most 3 generations at once here); wait for one to finish."
        )
    assert stream(bobs_key).status_code == 200  # another user is counted apart
    assert [chat.result(timeout=60) for chat in chats] == ["".join(long_answer)] * 3

    assert stream(keys[0]).status_code == 200  # the 4th and 5th requests of alice's minute
    assert stream(keys[1]).status_code == 200
    limited = stream(keys[0])
    assert limited.status_code == 429 and "started 5 requests in the last minute" in limited.json()["error"]["message"]
    with pytest.raises(Exception, match="started 5 requests in the last minute"):
        page.predict(message="and one more", api_name="/chat")
    assert len(cloud.chat_requests()) == 3 + 1 + 2  # alice's page, bob's key, alice's keys: nothing refused got out
