"""The OpenAI-compatible API (`/v1`, backend/api/) through the real app, driven by the official `openai` SDK
(sync and async, streamed and not, images, typed errors) and by plain httpx, against scripted upstreams."""

from __future__ import annotations

import asyncio
import base64
import logging
import textwrap

import httpx
import openai
import pytest

from backend import Backend, load_settings, load_users
from tests.conftest import scripted_config
from tests.test_browser_media import json_reply
from tests.test_share_mode import SECRET, shared  # noqa: F401  (the fixture)
from tests.upstream import Reply, ScriptedUpstream

HELLO = "Hello from the scripted upstream."
DOT_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@pytest.fixture
def local_api(upstream: ScriptedUpstream, write_config, serve_app) -> tuple[str, Backend]:
    """The app on loopback without logins: the API answers without a key, as the local owner."""
    extra = 'image_models = ["painter"]\ncontext_lengths = {"scripted-1" = 8192}\n'
    backend = Backend(load_settings(write_config(scripted_config(upstream, extra=extra))))
    return serve_app(backend) + "v1", backend


def sdk(base_url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)


def test_chat_completions_streamed_and_not(local_api, upstream: ScriptedUpstream):
    base_url, _ = local_api
    client = sdk(base_url)
    reply = client.chat.completions.create(
        model="scripted/scripted-1", messages=[{"role": "user", "content": "Hi"}], temperature=0.2, seed=7
    )
    assert reply.choices[0].message.content == HELLO
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "scripted/scripted-1" and reply.usage is not None
    sent = upstream.chat_requests()[-1].body
    assert sent["model"] == "scripted-1" and sent["temperature"] == 0.2 and sent["seed"] == 7

    upstream.enqueue(Reply.text(["Stre", "amed ", "answer."]))
    chunks = list(
        client.chat.completions.create(
            model="scripted/scripted-1",
            messages=[{"role": "user", "content": "Stream it"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Streamed answer."
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # OpenAI's usage chunk, last
    assert all(c.usage is None for c in chunks[:-1])
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


async def test_the_async_sdk_streams_too(local_api, upstream: ScriptedUpstream):
    base_url, _ = local_api
    upstream.enqueue(Reply.text(["one ", "two ", "three"]))
    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="scripted/scripted-1", messages=[{"role": "user", "content": "Count"}], stream=True
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text == "one two three"


def test_models_lists_every_model_with_what_it_can_do(local_api):
    base_url, _ = local_api
    listed = {model.id: model for model in sdk(base_url).models.list()}
    assert set(listed) == {"scripted/scripted-1", "scripted/painter"}
    chat = listed["scripted/scripted-1"].model_dump()
    assert chat["owned_by"] == "scripted" and chat["context_length"] == 8192
    assert chat["capabilities"] == {"chat": True, "vision": False, "images": False, "reasoning": False}
    assert listed["scripted/painter"].model_dump()["capabilities"]["images"] is True


def test_errors_are_openais_typed_errors(local_api, upstream: ScriptedUpstream):
    base_url, _ = local_api
    client = sdk(base_url)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="nobody/nothing", messages=[{"role": "user", "content": "Hi"}])
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="scripted/scripted-1", messages=[])

    upstream.enqueue(*[Reply.error(500, "boom")] * 3)
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model="scripted/scripted-1", messages=[{"role": "user", "content": "Hi"}])
    assert failed.value.status_code == 502 and "had a server error (HTTP 500)" in failed.value.message

    # Mid-stream: the text so far, then an error event the SDK raises.
    upstream.enqueue(Reply.text(["partial ", "answer ", "and more"], drop_after=3))
    received = []
    with pytest.raises(openai.APIError, match="dropped"):
        for chunk in client.chat.completions.create(
            model="scripted/scripted-1", messages=[{"role": "user", "content": "Hi"}], stream=True
        ):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "partial answer "

    # Last, as a 429 rests the model for its Retry-After. A wait longer than the provider's retry_after_cap is
    # not waited out: the 429 comes back at once, with its Retry-After.
    upstream.enqueue(Reply.error(429, "slow down", headers={"retry-after": "30"}))
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(
            model="scripted/scripted-1", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    assert limited.value.response.headers["retry-after"] == "30"


def test_plain_http_gets_server_sent_events_and_json_errors(local_api):
    base_url, _ = local_api
    body = {"model": "scripted/scripted-1", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    with httpx.stream("POST", base_url + "/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    bad = httpx.post(base_url + "/chat/completions", content=b"{not json", timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_images_as_base64_or_a_url_the_app_serves(local_api, upstream: ScriptedUpstream):
    base_url, _ = local_api
    picture = base64.b64decode(DOT_PNG)
    encoded = base64.b64encode(picture).decode()
    upstream.enqueue(
        json_reply({"created": 1, "data": [{"b64_json": encoded}]}),
        json_reply({"created": 1, "data": [{"b64_json": encoded}]}),
    )
    client = sdk(base_url)
    as_data = client.images.generate(model="scripted/painter", prompt="a dot", response_format="b64_json")
    assert base64.b64decode(as_data.data[0].b64_json) == picture
    as_url = client.images.generate(model="scripted/painter", prompt="a dot")
    fetched = httpx.get(as_url.data[0].url, timeout=10)
    assert fetched.status_code == 200 and fetched.content == picture
    assert httpx.get(base_url + "/files/not-a-token.png", timeout=10).status_code == 404


def test_with_logins_each_request_needs_a_key_that_can_be_revoked(shared, caplog):  # noqa: F811
    url, cloud, backend = shared()
    base_url = url + "v1"
    with pytest.raises(openai.AuthenticationError):
        sdk(base_url, "sb-wrong-key").models.list()
    assert httpx.get(base_url + "/models", timeout=10).status_code == 401  # no key at all
    key_id, key = asyncio.run(backend.api_keys.create("alice"))
    caplog.set_level(logging.DEBUG)
    client = sdk(base_url, key)
    reply = client.chat.completions.create(model="cloud/chat", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content == HELLO
    assert cloud.chat_requests()[-1].headers["authorization"] == f"Bearer {SECRET}"  # ours goes no further
    assert key not in caplog.text and SECRET not in caplog.text
    asyncio.run(backend.api_keys.revoke(key_id))
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_reachable_from_other_machines_without_logins_the_api_is_off(upstream, write_config, serve_app):
    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    base_url = serve_app(backend, exposed=True) + "v1"
    with pytest.raises(openai.PermissionDeniedError, match="API is off"):
        sdk(base_url).models.list()
    assert upstream.chat_requests() == []


def test_per_key_limits(shared):  # noqa: F811
    url, cloud, backend = shared("max_requests_per_minute = 2")
    _, key = asyncio.run(backend.api_keys.create("bob"))
    client = sdk(url + "v1", key)
    for _ in range(2):
        client.chat.completions.create(model="cloud/chat", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="cloud/chat", messages=[{"role": "user", "content": "Hi"}])
    assert int(limited.value.response.headers["retry-after"]) >= 1
    assert len(cloud.chat_requests()) == 2


def test_switchboard_token_makes_and_revokes_keys(upstream, write_config, serve_app, monkeypatch, capsys):
    """`switchboard token NAME` prints a key once (only its hash is kept); `--revoke ID` ends it."""
    from webui.cli import main

    monkeypatch.setenv("TEAM", "carol:carol-secret")
    config = write_config(scripted_config(upstream) + '\n[auth]\nusers_env = "TEAM"\n')
    assert main(["token", "nobody", "--config", str(config)]) == 2  # not a login
    assert main(["token", "carol", "--config", str(config)]) == 0
    printed = capsys.readouterr().out.split()
    key, key_id = printed[-1], printed[2]
    assert key.startswith(f"sb-{key_id}-")
    settings = load_settings(config)
    assert key not in (settings.app.data_dir / "switchboard.db").read_bytes().decode("latin-1")
    url = serve_app(Backend(settings), users=load_users(settings.auth.users_file, settings.auth.users_env))
    client = sdk(url + "v1", key)
    assert (
        client.chat.completions.create(model="scripted/scripted-1", messages=[{"role": "user", "content": "Hi"}])
        .choices[0]
        .message.content
        == HELLO
    )
    assert main(["token", "--revoke", key_id, "--config", str(config)]) == 0
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_a_route_fails_over_and_continues_mid_stream_through_the_api(write_config, serve_app):
    """A route's first provider drops mid-answer: the next continues the same answer, as in the UI; the SDK sees
    one answer, and the provider that finished it."""
    with ScriptedUpstream(models=["a"]) as first, ScriptedUpstream(models=["b"]) as second:
        config = f"""
        [app]
        embedded_model = false
        [providers.first]
        kind = "openai"
        base_url = "{first.base_url}"
        models = ["a"]
        max_retries = 0
        [providers.second]
        kind = "openai"
        base_url = "{second.base_url}"
        models = ["b"]
        [routes]
        steady = ["first/a", "second/b"]
        """
        url = serve_app(Backend(load_settings(write_config(textwrap.dedent(config)))))
        first.enqueue(Reply.text(["The answer ", "begins ", "here"], drop_after=3))
        second.enqueue(Reply.text(["and ends ", "there."]))
        chunks = list(
            sdk(url + "v1").chat.completions.create(
                model="steady", messages=[{"role": "user", "content": "Go"}], stream=True
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("The answer begins ") and text.endswith("and ends there.")
    assert chunks[-1].model == "second/b"


def test_switchboard_serve_is_the_api_alone(upstream, write_config):
    """`switchboard serve` answers /v1 and nothing else (no UI)."""
    import os
    import subprocess
    import sys
    import time

    from tests.conftest import free_port

    config = write_config(scripted_config(upstream))
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "webui", "serve", "--config", str(config), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                listed = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("switchboard serve did not start")
        assert [model["id"] for model in listed.json()["data"]] == ["scripted/scripted-1"]
        reply = sdk(f"http://127.0.0.1:{port}/v1").chat.completions.create(
            model="scripted/scripted-1", messages=[{"role": "user", "content": "Hi"}]
        )
        assert reply.choices[0].message.content == HELLO
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 404
        too_big = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", content=b"x" * 17_000_000, timeout=30)
        assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "invalid_request_error"
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_image_parts_reach_a_vision_model_and_others_refuse_them(upstream, write_config, serve_app):
    extra = 'vision_models = ["seer"]\n'
    backend = Backend(load_settings(write_config(scripted_config(upstream, extra=extra))))
    client = sdk(serve_app(backend) + "v1")
    dot = "data:image/png;base64," + DOT_PNG
    parts = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": dot}}]
    reply = client.chat.completions.create(model="scripted/seer", messages=[{"role": "user", "content": parts}])
    assert reply.choices[0].message.content == HELLO
    sent = upstream.chat_requests()[-1].body["messages"][0]["content"]
    assert sent[0] == {"type": "text", "text": "What is this?"} and sent[1]["type"] == "image_url"
    with pytest.raises(openai.BadRequestError, match="does not read images"):
        client.chat.completions.create(model="scripted/scripted-1", messages=[{"role": "user", "content": parts}])
    assert len(upstream.chat_requests()) == 1
