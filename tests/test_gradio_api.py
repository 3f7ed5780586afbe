"""The `chat` endpoint for gradio_client users, through the real app over HTTP."""

from __future__ import annotations

import pytest
from gradio_client import Client

from backend import Backend, load_settings
from tests.conftest import scripted_config
from tests.upstream import Reply


@pytest.fixture
def app_url(upstream, write_config, serve_app, monkeypatch):
    monkeypatch.setenv("SCRIPTED_KEY", "sk-do-not-leak-123")
    config = scripted_config(upstream) + 'api_key_env = "SCRIPTED_KEY"\n'
    return serve_app(Backend(load_settings(write_config(config))))


def test_chat_endpoint_streams_the_reply(app_url, upstream):
    upstream.enqueue(Reply.text([f"w{i} " for i in range(40)], delay=0.02))
    client = Client(app_url, verbose=False)
    job = client.submit(message="Hello?", model="scripted/scripted-1", api_name="/chat")
    updates = list(job)
    assert updates[-1] == "".join(f"w{i} " for i in range(40))
    assert len(updates) > 1  # streamed, not one final value
    assert all(updates[-1].startswith(update) for update in updates)  # each update extends the last
    assert upstream.chat_requests()[0].body["messages"] == [{"role": "user", "content": "Hello?"}]


def test_chat_endpoint_defaults_to_the_configured_model(app_url, upstream):
    client = Client(app_url, verbose=False)
    assert client.predict(message="Hi", api_name="/chat") == "Hello from the scripted upstream."
    assert upstream.chat_requests()[0].body["model"] == "scripted-1"


def test_chat_endpoint_errors_are_one_sentence(app_url, upstream):
    upstream.enqueue(Reply.error(401, "Incorrect API key provided: sk-do-not-leak-123"))
    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="rejected the API key") as caught:
        client.predict(message="Hi", api_name="/chat")
    assert "sk-do-not-leak" not in str(caught.value)


def test_api_info_documents_chat_and_leaks_no_provider_details(app_url, upstream):
    client = Client(app_url, verbose=False)
    info = client.view_api(print_info=False, return_format="dict")
    assert list(info["named_endpoints"]) == ["/chat", "/generate_image", "/describe_image"]
    assert [p["parameter_name"] for p in info["named_endpoints"]["/chat"]["parameters"]] == ["message", "model"]
    import httpx

    for route in ("config", "gradio_api/info"):
        text = httpx.get(app_url + route, timeout=10).text
        assert "sk-do-not-leak-123" not in text
        assert upstream.base_url not in text


def test_the_step_after_a_reply_shows_no_progress(app_url):
    """The step that settles a reply (Send back, Stop gone) takes milliseconds: Gradio's progress dots under the
    chat and overlays on the message box and the chat list would only flash at the end of every reply."""
    import httpx

    config = httpx.get(app_url + "config", timeout=10).json()
    chatbot = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "chatbot")
    replies = {d["id"] for d in config["dependencies"] if chatbot in d["outputs"]}
    shown = {d["id"] for d in config["dependencies"] if d.get("trigger_after") in replies and chatbot in d["outputs"]}
    settling = [d for d in config["dependencies"] if d.get("trigger_after") in replies | shown]
    # Following the reply and the step after it, for Enter, Send, Retry and Edit; following a reply already
    # being written when a chat is opened or the page loads.
    assert len(settling) >= 10
    assert {d["show_progress"] for d in settling} == {"hidden"}


def test_several_visitors_stream_at_once(app_url, upstream):
    """Gradio's default is one event at a time; the app sets concurrency so replies overlap."""
    upstream.default = Reply.text([f"w{i} " for i in range(30)], delay=0.05)
    clients = [Client(app_url, verbose=False) for _ in range(3)]
    jobs = [client.submit(message=f"visitor {i}", api_name="/chat") for i, client in enumerate(clients)]
    assert upstream.wait_for(lambda: len(upstream.chat_requests()) == 3, timeout=20)
    requests = upstream.chat_requests()
    assert all(r.finished_at is None for r in requests)  # all three started before any finished
    assert [job.result(timeout=60) for job in jobs] == ["".join(f"w{i} " for i in range(30))] * 3


@pytest.fixture
def media_app(tmp_path, write_config, serve_app):
    import textwrap

    from tests.upstream import ScriptedUpstream

    with ScriptedUpstream() as cloud:
        config = textwrap.dedent(
            f"""
            [app]
            embedded_model = false
            data_dir = "{tmp_path / "data"}"
            [providers.cloud]
            kind = "openai"
            base_url = "{cloud.base_url}"
            models = ["text-only"]
            vision_models = ["seer"]
            image_models = ["gpt-image-1"]
            """
        )
        yield serve_app(Backend(load_settings(write_config(config)))), cloud


def test_generate_image_endpoint(media_app):
    import base64
    import json

    from tests.test_images_vision import png

    url, cloud = media_app
    body = {
        "data": [{"b64_json": base64.b64encode(png()).decode()}, {"b64_json": base64.b64encode(png(4, 4)).decode()}]
    }
    cloud.enqueue(
        Reply(headers={"content-type": "application/json"}, frames=[json.dumps(body).encode()], chunked=False)
    )
    result = Client(url, verbose=False).predict(
        prompt="two squares", model="cloud/gpt-image-1", size="1024x1024", n=2, api_name="/generate_image"
    )
    assert len(result) == 2
    with open(result[0]["image"], "rb") as first:
        assert first.read() == png()
    assert cloud.requests[-1].body["n"] == 2 and cloud.requests[-1].body["prompt"] == "two squares"


def test_describe_image_endpoint_streams(media_app, tmp_path):
    from gradio_client import handle_file

    from tests.test_images_vision import png

    url, cloud = media_app
    picture = tmp_path / "red.png"
    picture.write_bytes(png())
    cloud.enqueue(Reply.text(["A red ", "square ", "on nothing."], delay=0.05))
    job = Client(url, verbose=False).submit(
        image=handle_file(str(picture)), question="What is it?", model="cloud/seer", api_name="/describe_image"
    )
    updates = list(job)
    assert updates[-1] == "A red square on nothing."
    assert len(updates) > 2
    content = cloud.chat_requests()[0].body["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What is it?"}
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_describe_image_refuses_a_non_image(media_app, tmp_path):
    from gradio_client import handle_file

    url, cloud = media_app
    fake = tmp_path / "photo.png"
    fake.write_text("not an image at all")
    with pytest.raises(Exception, match="not an image"):
        Client(url, verbose=False).predict(
            image=handle_file(str(fake)), question="", model="cloud/seer", api_name="/describe_image"
        )
    assert cloud.chat_requests() == []


def test_an_ordinary_refusal_is_one_line_in_the_log_not_a_traceback(upstream, write_config, serve_app, capfd, caplog):
    """Refusals are said to the visitor and logged as one line: Gradio would print a traceback for each."""
    import logging

    config = scripted_config(upstream) + 'vision_models = ["scripted-1"]\n'
    client = Client(serve_app(Backend(load_settings(write_config(config)))), verbose=False)
    with caplog.at_level(logging.INFO, logger="webui.refusals"), pytest.raises(Exception, match="Add an image"):
        client.predict(None, "What is it?", "scripted/scripted-1", "", api_name="/describe_image")
    printed = capfd.readouterr()
    assert "Traceback" not in printed.err + printed.out
    assert [r.getMessage() for r in caplog.records] == [
        "refused: Add an image first: upload, paste or drop one, or give its URL."
    ]
