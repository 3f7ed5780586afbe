"""A shared instance, through the real HTTP app: users never reach each other's data by any route, no secret
reaches a visitor (page, config, API info, errors, exported files) or the log, per-visitor limits hold with a
clear sentence, and the server itself enforces the upload size limit."""

from __future__ import annotations

import json
import logging
import textwrap

import httpx
import pytest
from gradio_client import Client

from backend import Backend, load_settings
from backend.auth import load_users
from backend.conversations import Conversation, StoredMessage
from backend.limits import TooManyRequestsError, VisitorLimits
from tests.gradio_http import GradioSession
from tests.test_images_vision import png
from tests.upstream import Reply, ScriptedUpstream

SECRET = "sk-live-switchboard-secret-0123456789"


@pytest.fixture
def shared(tmp_path, write_config, serve_app, monkeypatch):
    """The real app with logins for alice and bob, in front of one scripted provider whose key is SECRET."""
    monkeypatch.setenv("TEAM", "alice:alice-secret,bob:bob-secret")
    monkeypatch.setenv("CLOUD_KEY", SECRET)

    def start(app_settings: str = "") -> tuple[str, ScriptedUpstream, Backend]:
        cloud = ScriptedUpstream(models=["chat"]).start()
        started.append(cloud)
        config = textwrap.dedent(
            f"""
            [app]
            embedded_model = false
            max_upload_mb = 1
            {app_settings}
            [auth]
            users_env = "TEAM"
            [providers.cloud]
            kind = "openai"
            base_url = "{cloud.base_url}"
            api_key_env = "CLOUD_KEY"
            models = ["chat"]
            vision_models = ["chat"]
            max_retries = 0
            """
        )
        settings = load_settings(write_config(config))
        backend = Backend(settings)
        url = serve_app(backend, users=load_users(settings.auth.users_file, settings.auth.users_env))
        return url, cloud, backend

    started: list[ScriptedUpstream] = []
    yield start
    for upstream in started:
        upstream.stop()


def secrets_of(cloud: ScriptedUpstream) -> list[str]:
    """What no visitor may see: the key, and where the upstream is."""
    return [SECRET, cloud.base_url, f"127.0.0.1:{cloud.port}"]


def assert_clean(text: str, cloud: ScriptedUpstream, where: str) -> None:
    for secret in secrets_of(cloud):
        assert secret not in text, f"{secret!r} reached {where}"


# --- isolation -----------------------------------------------------------------------------------------------------


async def test_no_route_leads_into_another_users_data(shared):
    """Alice's conversation (with an attached image) is unreachable for Bob through the page's own events called
    with forged inputs, through Gradio's file route and through search, while Alice herself opens it."""
    url, cloud, backend = shared()
    store = backend.conversations
    image = await store.save_image("alice", png(), "image/png")
    secret_chat = Conversation(
        messages=[
            StoredMessage(role="user", text="alice's merger plan", images=[image]),
            StoredMessage(role="assistant", text="Keep it quiet."),
        ]
    )
    await store.save("alice", secret_chat)
    database = backend.settings.app.data_dir / "switchboard.db"  # where the conversation is kept

    bob = GradioSession(url, "bob", "bob-secret")
    # The page's own load and search events list only Bob's chats.
    listing = bob.call(_load_fn(bob), [None])
    assert listing["success"] and _listed_ids(listing["output"]["data"][-1]) == []
    found = bob.call(bob.fn_index("chat-search", "change"), ["merger", None])
    assert found["success"] and _listed_ids(found["output"]["data"][0]) == []
    # Opening, renaming, exporting or deleting Alice's chat by its id is refused and returns nothing of it.
    for event, action in (
        ("select", {"kind": "open"}),
        ("edit", {"kind": "rename", "title": "mine now"}),
        ("download", {"kind": "export", "format": "json"}),
        ("delete", {"kind": "delete"}),
    ):
        value = {"groups": [], "action": {**action, "id": secret_chat.id}}
        inputs = {"edit": [value, None, "", ""], "delete": [value, "", ""]}
        answer = bob.call(bob.fn_index("chat-list", event), inputs.get(event, [value]))
        assert "merger" not in json.dumps(answer) and "Keep it quiet" not in json.dumps(answer), event
    # A forged chat history pointing at Alice's stored image is refused before anything is sent upstream.
    respond = bob.fn_index("message", "submit") + 1  # the reply that follows a submitted message
    forged = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "describe"},
                {"type": "file", "file": {"path": str(store.image_path("alice", image)), "meta": FILE_META}},
            ],
        }
    ]
    answer = bob.call(respond, [forged, None, "cloud/chat", "", 0.7, 1, 0, -1, ""])
    assert not answer["success"] and "not uploaded by a user" in answer["output"]["error"]
    assert cloud.chat_requests() == []
    # Naming Alice's conversation as the open one (the page keeps its id) gives Bob a new one of his own.
    message = [{"text": "add to the plan", "files": []}, [], None, "cloud/chat", "", 0.7, 1, 0, -1, "", secret_chat.id]
    added = bob.call(bob.fn_index("message", "submit"), message)
    assert added["success"] and added["output"]["data"][-1] != secret_chat.id
    assert "merger" not in json.dumps(added)
    assert (await store.get("alice", secret_chat.id)).messages == secret_chat.messages  # untouched
    assert [s.id for s in await store.list("bob")] == [added["output"]["data"][-1]]
    # Gradio's file route serves neither the conversation nor the image, to Bob or to Alice.
    alice = GradioSession(url, "alice", "alice-secret")
    for session in (bob, alice):
        for path in (database, store.image_path("alice", image)):
            assert session.http.get(f"gradio_api/file={path}").status_code == 403
    # Alice, on the other hand, lists and opens it.
    assert _listed_ids(alice.call(_load_fn(alice), [None])["output"]["data"][-1]) == [secret_chat.id]
    assert (await store.get("alice", secret_chat.id)).title == secret_chat.title  # Bob's rename did nothing
    opening = {"groups": [], "action": {"kind": "open", "id": secret_chat.id}}
    mine = alice.call(alice.fn_index("chat-list", "select"), [opening])
    assert mine["success"] and "alice's merger plan" in json.dumps(mine["output"]["data"][0])
    bob.close()
    alice.close()


FILE_META = {"_type": "gradio.FileData"}


def _listed_ids(listing: dict) -> list[str]:
    """The chat ids a chat-list value holds, in order (an update carries it as its `value`)."""
    value = listing.get("value", listing) if listing.get("__type__") == "update" else listing
    return [chat["id"] for group in value["groups"] for chat in group["chats"]]


def _load_fn(session: GradioSession) -> int:
    """The page-load event that opens the chat the address names and lists the chats (the one with the most
    outputs; others fill in smaller things, such as the presets)."""
    loads = [dep for dep in session.config["dependencies"] if dep["targets"] and dep["targets"][0][1] == "load"]
    return max(loads, key=lambda dep: len(dep["outputs"]))["id"]


# --- secrets -------------------------------------------------------------------------------------------------------


def test_no_secret_reaches_a_visitor_an_export_or_the_log(shared, caplog):
    """The key and the upstream's address appear nowhere a visitor can look, even when the upstream's own error
    message repeats both: page, config, API info and schema, the streamed error, the stored and exported
    conversation, and the server's log."""
    caplog.set_level(logging.DEBUG)
    url, cloud, backend = shared()
    echo = f"invalid key {SECRET} for {cloud.base_url}/chat/completions"
    cloud.enqueue(Reply.error(500, echo), Reply.error(500, echo))

    alice = GradioSession(url, "alice", "alice-secret")
    for route in ("", "config", "gradio_api/info", "gradio_api/info?all_endpoints=true", "gradio_api/openapi.json"):
        response = alice.http.get(route)
        assert response.status_code == 200, route
        assert_clean(response.text, cloud, f"/{route}")

    # Through the public API: the error is one clean sentence.
    client = Client(url, auth=("alice", "alice-secret"), verbose=False)
    with pytest.raises(Exception, match="server error") as caught:
        client.predict(message="hi", api_name="/chat")
    assert_clean(str(caught.value), cloud, "the API error")

    # Through the chat tab: the failed reply is stored and exported without the secret.
    submit = alice.fn_index("message", "submit")
    added = alice.call(submit, [{"text": "hi", "files": []}, [], None, "cloud/chat", "", 0.7, 1, 0, -1, "", ""])
    assert added["success"], added
    history = added["output"]["data"][0]
    replied = alice.call(submit + 1, [history, None, "cloud/chat", "", 0.7, 1, 0, -1, ""])
    assert "server error" in json.dumps(replied)
    assert_clean(json.dumps(replied), cloud, "the chat")
    for kind in ("json", "md"):
        export = {"groups": [], "action": {"kind": "export", "id": added["output"]["data"][-1], "format": kind}}
        exported = alice.call(alice.fn_index("chat-list", "download"), [export])
        path = exported["output"]["data"][0]["path"]
        download = alice.http.get(f"gradio_api/file={path}")
        assert download.status_code == 200 and "server error" in download.text
        assert_clean(download.text, cloud, f"the {kind} export")
    stored = [path for path in backend.settings.app.data_dir.rglob("*") if path.is_file()]
    assert any(path.name.startswith("switchboard.db") for path in stored)  # the database and its write-ahead log
    for path in stored:
        assert_clean(path.read_bytes().decode("utf-8", "replace"), cloud, str(path))
    assert "server error" in "".join(path.read_bytes().decode("utf-8", "replace") for path in stored)
    assert SECRET not in caplog.text
    alice.close()


# --- per-visitor limits ---------------------------------------------------------------------------------------------


def test_per_visitor_limits_through_the_app(shared):
    """One generation at a time and three requests a minute per user: the second concurrent request and the fourth
    in a minute are refused with one sentence, while another user is served meanwhile."""
    url, cloud, _ = shared("max_concurrent_per_visitor = 1\nmax_requests_per_minute = 3")
    cloud.enqueue(Reply.text([f"w{i} " for i in range(40)], delay=0.05))
    alice = Client(url, auth=("alice", "alice-secret"), verbose=False)
    bob = Client(url, auth=("bob", "bob-secret"), verbose=False)

    running = alice.submit(message="a long one", api_name="/chat")
    assert cloud.wait_for(lambda: len(cloud.chat_requests()) == 1, timeout=20)
    with pytest.raises(Exception, match="You already have 1 reply running") as refused:
        alice.predict(message="another", api_name="/chat")
    assert "\n" not in str(refused.value).strip()
    assert bob.predict(message="mine", api_name="/chat") == "Hello from the scripted upstream."
    assert running.result(timeout=60) == "".join(f"w{i} " for i in range(40))

    assert alice.predict(message="second", api_name="/chat") == "Hello from the scripted upstream."
    assert alice.predict(message="third", api_name="/chat") == "Hello from the scripted upstream."
    with pytest.raises(Exception, match=r"started 3 requests in the last minute.*try again in \d+ s"):
        alice.predict(message="fourth", api_name="/chat")
    assert len(cloud.chat_requests()) == 4  # the refused ones never reached the provider


async def test_visitor_limits_policy():
    now = [0.0]
    limits = VisitorLimits(max_concurrent=2, max_per_minute=3, clock=lambda: now[0])
    async with limits.admit("a"), limits.admit("a"):
        with pytest.raises(TooManyRequestsError, match="2 replies running"):
            await limits.check("a")
        await limits.check("b")  # others are counted apart
    async with limits.admit("a"):
        pass
    with pytest.raises(TooManyRequestsError, match="try again in 60 s") as caught:
        await limits.check("a")
    assert caught.value.retry_after == 60
    now[0] = 61
    await limits.check("a")
    assert limits._running == {} and limits._started == {}  # nothing kept per visitor once idle
    await VisitorLimits.off().check("anyone")


def test_local_use_has_no_visitor_limits(write_config, serve_app, upstream):
    """Without logins, on loopback, one person runs as many replies at once as they like."""
    from tests.conftest import scripted_config

    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    upstream.default = Reply.text([f"w{i} " for i in range(20)], delay=0.05)
    url = serve_app(backend)
    clients = [Client(url, verbose=False) for _ in range(5)]
    jobs = [client.submit(message=f"n{i}", api_name="/chat") for i, client in enumerate(clients)]
    assert all(job.result(timeout=60) == "".join(f"w{i} " for i in range(20)) for job in jobs)


# --- uploads -------------------------------------------------------------------------------------------------------


def test_the_server_refuses_oversized_uploads(shared):
    """max_upload_mb is enforced by the server (Gradio's max_file_size), not only by the page."""
    url, _, _ = shared()
    bob = GradioSession(url, "bob", "bob-secret")
    small = bob.http.post("gradio_api/upload", files={"files": ("ok.png", png(), "image/png")})
    assert small.status_code == 200
    big = bob.http.post("gradio_api/upload", files={"files": ("big.png", b"\0" * 1_500_000, "image/png")})
    assert big.status_code == 413
    bob.close()


def test_logins_are_required_everywhere(shared):
    url, _, _ = shared()
    for route in ("config", "gradio_api/info", "gradio_api/file=/etc/hostname"):
        assert httpx.get(url + route, timeout=10).status_code == 401, route
    assert httpx.post(url + "login", data={"username": "mallory", "password": "x"}, timeout=30).status_code == 400
