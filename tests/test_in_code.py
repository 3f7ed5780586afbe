"""Providers configured in code, as gpt4free's clients take them (backend/client/in_code.py), against scripted
upstreams: no TOML file, model names as g4f code passes them, retry chains, an image provider, errors with
`status_code`."""

from __future__ import annotations

import base64

import pytest

from backend import APIError, AsyncClient, Client, Provider, RetryProvider, UnsupportedCapabilityError
from tests.conftest import scripted_config
from tests.test_browser_media import json_reply
from tests.upstream import Reply, ScriptedUpstream

HELLO = "Hello from the scripted upstream."


def test_a_kind_name_with_a_key_and_an_endpoint():
    with (
        ScriptedUpstream(models=[]) as upstream,
        Client(provider="openai", api_key="sk-in-code", base_url=upstream.base_url) as client,
    ):
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
        assert reply.choices[0].message.content == HELLO
        sent = upstream.chat_requests()[-1]
        assert sent.body["model"] == "gpt-4o-mini"  # not listed anywhere; no provider/ prefix
        assert sent.headers["authorization"] == "Bearer sk-in-code"
        # A name with slashes of its own (vLLM, OpenRouter) is the provider's name as it is.
        client.chat.completions.create(model="meta-llama/Llama-3.1-8B", messages=[{"role": "user", "content": "Hi"}])
        assert upstream.chat_requests()[-1].body["model"] == "meta-llama/Llama-3.1-8B"


def test_a_retry_chain_retries_one_provider_then_moves_on():
    with ScriptedUpstream() as failing, ScriptedUpstream() as working:
        failing.enqueue(*[Reply.error(500, "down")] * 3)
        chain = RetryProvider(
            [Provider("openai", base_url=failing.base_url), Provider("openai", base_url=working.base_url)],
            single_provider_retry=True,
            max_retries=2,
        )
        with Client(provider=chain, api_key="k") as client:
            reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
        assert reply.choices[0].message.content == HELLO
        assert len(failing.chat_requests()) == 3  # the first try and two retries
        assert len(working.chat_requests()) == 1
        assert reply.model == "openai-2/m"


def test_without_single_provider_retry_each_is_tried_once():
    with ScriptedUpstream() as failing, ScriptedUpstream() as also_failing:
        failing.enqueue(Reply.error(500, "down"))
        also_failing.enqueue(Reply.error(503, "busy"))
        chain = RetryProvider([Provider("openai", base_url=u.base_url) for u in (failing, also_failing)])
        with Client(provider=chain, api_key="k") as client, pytest.raises(APIError) as failed:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
        assert (len(failing.chat_requests()), len(also_failing.chat_requests())) == (1, 1)
        assert failed.value.status_code == failed.value.status == 503  # the openai SDK's name, and ours


async def test_async_client_with_an_image_provider_through_a_proxy():
    """`proxies` sends every provider's requests through the proxy: here a scripted upstream that answers them
    itself, so the providers' own hosts need not exist."""
    picture = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    with ScriptedUpstream() as proxy:
        async with AsyncClient(
            provider=Provider("openai", base_url="http://chat.invalid/v1", api_key="chat-key"),
            image_provider=Provider("openai", base_url="http://painter.invalid/v1"),
            api_key="shared-key",
            proxies={"all": f"http://127.0.0.1:{proxy.port}"},
        ) as client:
            stream = await client.chat.completions.create(
                model="any-model", messages=[{"role": "user", "content": "Hi"}], stream=True
            )
            text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
            proxy.enqueue(json_reply({"created": 1, "data": [{"b64_json": base64.b64encode(picture).decode()}]}))
            images = await client.images.generate(model="dall-e-3", prompt="a dot", response_format="b64_json")
    assert text == HELLO
    chatted, painted = proxy.requests[-2], proxy.requests[-1]
    assert chatted.path == "http://chat.invalid/v1/chat/completions"  # asked of the proxy, for the provider
    assert chatted.headers["authorization"] == "Bearer chat-key" and chatted.body["model"] == "any-model"
    assert base64.b64decode(images.data[0].b64_json) == picture
    assert painted.path == "http://painter.invalid/v1/images/generations"
    assert painted.body["model"] == "dall-e-3" and painted.headers["authorization"] == "Bearer shared-key"


def test_a_key_and_an_endpoint_alone_are_an_openai_compatible_provider():
    with ScriptedUpstream(models=[]) as upstream, Client(api_key="sk-alone", base_url=upstream.base_url) as client:
        reply = client.chat.completions.create(model="any-model", messages=[{"role": "user", "content": "Hi"}])
        assert reply.choices[0].message.content == HELLO
        sent = upstream.chat_requests()[-1]
        assert sent.body["model"] == "any-model" and sent.headers["authorization"] == "Bearer sk-alone"


def test_a_config_and_providers_in_code_are_not_mixed(upstream, write_config):
    with pytest.raises(ValueError, match="not both"):
        Client(str(write_config(scripted_config(upstream))), api_key="sk-for-which")


def test_images_go_to_any_model_named_in_code_but_a_listed_provider_keeps_to_its_list():
    picture = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    question = [{"role": "user", "content": "What is this?"}]
    with ScriptedUpstream() as upstream:
        with Client(provider=Provider("openai", base_url=upstream.base_url)) as client:
            client.chat.completions.create(model="text-model", messages=question)
            client.chat.completions.create("eyes-model", messages=question, image=picture)
            client.chat.completions.create(model="text-model", messages=question)  # still taken after
        assert [request.body["model"] for request in upstream.chat_requests()] == [
            "text-model",
            "eyes-model",
            "text-model",
        ]
        assert upstream.chat_requests()[1].body["messages"][0]["content"][1]["type"] == "image_url"
        listed = Provider("openai", base_url=upstream.base_url, models=["text-model"])
        with Client(provider=listed) as client, pytest.raises(UnsupportedCapabilityError):
            client.chat.completions.create(model="text-model", messages=question, image=picture)
