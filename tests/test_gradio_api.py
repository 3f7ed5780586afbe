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
    assert list(info["named_endpoints"]) == ["/chat"]
    assert [p["parameter_name"] for p in info["named_endpoints"]["/chat"]["parameters"]] == ["message", "model"]
    import httpx

    for route in ("config", "gradio_api/info"):
        text = httpx.get(app_url + route, timeout=10).text
        assert "sk-do-not-leak-123" not in text
        assert upstream.base_url not in text


def test_several_visitors_stream_at_once(app_url, upstream):
    """Gradio's default is one event at a time; the app sets concurrency so replies overlap."""
    upstream.default = Reply.text([f"w{i} " for i in range(30)], delay=0.05)
    clients = [Client(app_url, verbose=False) for _ in range(3)]
    jobs = [client.submit(message=f"visitor {i}", api_name="/chat") for i, client in enumerate(clients)]
    assert upstream.wait_for(lambda: len(upstream.chat_requests()) == 3, timeout=20)
    requests = upstream.chat_requests()
    assert all(r.finished_at is None for r in requests)  # all three started before any finished
    assert [job.result(timeout=60) for job in jobs] == ["".join(f"w{i} " for i in range(30))] * 3
