"""Image generation (OpenAI-compatible and AUTOMATIC1111), the image store, vision input and upload validation."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import textwrap
from pathlib import Path

import pytest
from PIL import Image as PILImage

from backend import (
    AsyncClient,
    Backend,
    Client,
    ImageRequest,
    InvalidImageError,
    RateLimitError,
    TextDelta,
    UnsupportedCapabilityError,
    create_client,
    load_settings,
)
from backend.media import MAX_SIDE, load_image, prepare_image
from tests.upstream import Reply, ScriptedUpstream


def png(width: int = 8, height: int = 8, colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def json_reply(payload) -> Reply:
    return Reply(headers={"content-type": "application/json"}, frames=[json.dumps(payload).encode()], chunked=False)


@pytest.fixture
def backend(tmp_path, write_config):
    with ScriptedUpstream() as openai, ScriptedUpstream() as sd:
        config = textwrap.dedent(
            f"""
            [app]
            embedded_model = false
            data_dir = "{tmp_path / "data"}"
            max_upload_mb = 1
            [providers.cloud]
            kind = "openai"
            base_url = "{openai.base_url}"
            models = ["text-only"]
            vision_models = ["seer"]
            image_models = ["gpt-image-1", "dall-e-3"]
            [providers.sd]
            kind = "automatic1111"
            base_url = "http://127.0.0.1:{sd.port}"
            image_models = ["default", "dreamshaper"]
            """
        )
        settings = load_settings(write_config(config))
        yield Backend(settings), openai, sd


async def test_openai_images_b64_and_saved_with_details(backend):
    service, openai, _ = backend
    openai.enqueue(json_reply({"data": [{"b64_json": base64.b64encode(png()).decode(), "revised_prompt": "a fox!"}]}))
    stored = await service.images.generate(ImageRequest("cloud/gpt-image-1", "a fox", size="1024x1536", n=1))
    body = openai.requests[-1].body
    assert openai.requests[-1].path == "/v1/images/generations"
    assert body == {"model": "gpt-image-1", "prompt": "a fox", "n": 1, "size": "1024x1536"}  # GPT image: no format
    assert stored[0].path.read_bytes() == png()
    [details] = await service.images.history()  # read back from the database
    assert details.path == stored[0].path
    assert details.prompt == "a fox" and details.model == "cloud/gpt-image-1"
    assert details.revised_prompt == "a fox!" and details.size == "1024x1536"


async def test_openai_images_url_answer_is_downloaded(backend):
    service, openai, _ = backend
    openai.enqueue(
        json_reply({"data": [{"url": f"http://127.0.0.1:{openai.port}/files/img.png"}]}),
        Reply(headers={"content-type": "image/png"}, frames=[png(4, 4)], chunked=False),
    )
    stored = await service.images.generate(ImageRequest("cloud/dall-e-3", "a cat", quality="hd", seed=5))
    assert openai.requests[0].body["response_format"] == "b64_json"
    assert openai.requests[0].body["quality"] == "hd" and openai.requests[0].body["seed"] == 5
    assert openai.requests[1].path == "/files/img.png"
    assert stored[0].path.read_bytes() == png(4, 4)


async def test_automatic1111_txt2img(backend):
    service, _, sd = backend
    images = [base64.b64encode(png(colour=(0, 0, 255))).decode(), base64.b64encode(png(colour=(0, 255, 0))).decode()]
    sd.enqueue(json_reply({"images": images, "info": json.dumps({"all_seeds": [11, 12]})}))
    stored = await service.images.generate(
        ImageRequest("sd/dreamshaper", "hills", negative_prompt="blurry", size="512x768", n=2, seed=11)
    )
    request = sd.requests[-1]
    assert request.path == "/sdapi/v1/txt2img"
    assert {k: request.body[k] for k in ("prompt", "negative_prompt", "width", "height", "batch_size", "seed")} == {
        "prompt": "hills",
        "negative_prompt": "blurry",
        "width": 512,
        "height": 768,
        "batch_size": 2,
        "seed": 11,
    }
    assert request.body["override_settings"] == {"sd_model_checkpoint": "dreamshaper"}
    assert [s.seed for s in stored] == [11, 12]
    assert len(await service.images.history()) == 2


async def test_image_errors_are_typed_and_retried(backend):
    service, openai, _ = backend
    openai.enqueue(Reply.error(429, "slow", {"retry-after-ms": "50"}), Reply.error(400, "Your request was rejected"))
    with pytest.raises(Exception, match="rejected") as caught:
        await service.images.generate(ImageRequest("cloud/gpt-image-1", "forbidden"))
    assert "rejected the request" in caught.value.user_message()
    assert len(openai.requests) == 2
    assert await service.images.history() == []


async def test_capabilities_are_checked_before_any_call(backend):
    service, openai, _ = backend
    with pytest.raises(UnsupportedCapabilityError, match="cannot generate images; models that can: cloud/gpt-image-1"):
        await service.images.generate(ImageRequest("cloud/text-only", "x"))
    with pytest.raises(UnsupportedCapabilityError, match="does not read images"):
        [
            e
            async for e in service.chat.stream(
                service.vision.request(png(), "what?", model="cloud/seer").for_model("cloud/text-only")
            )
        ]
    with pytest.raises(UnsupportedCapabilityError, match="cannot read images"):
        service.vision.request(png(), "what?", model="cloud/text-only")
    assert openai.requests == []


async def test_vision_sends_the_image_as_a_data_url(backend):
    service, openai, _ = backend
    openai.enqueue(Reply.text(["A red ", "square."]))
    events = [e async for e in service.vision.describe(png(), "", model="cloud/seer")]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "A red square."
    content = openai.chat_requests()[0].body["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "Describe this image."}
    assert content[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png()).decode()


async def test_image_urls_to_private_hosts_are_refused_unless_allowed(backend, write_config):
    service, openai, _ = backend
    url = f"http://127.0.0.1:{openai.port}/cat.png"
    with pytest.raises(InvalidImageError, match=r"Refusing to fetch an image from 127\.0\.0\.1"):
        [e async for e in service.vision.describe(url, "what?", model="cloud/seer")]
    assert openai.requests == []
    service.settings.app.allow_private_image_urls = True
    openai.enqueue(Reply(headers={"content-type": "image/png"}, frames=[png()], chunked=False), Reply.text(["ok"]))
    events = [e async for e in service.vision.describe(url, "what?", model="cloud/seer")]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["ok"]
    sent = openai.chat_requests()[0].body["messages"][0]["content"][1]["image_url"]["url"]
    assert sent.startswith("data:image/png;base64,")


def test_rejects_a_text_file_renamed_png(tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_text("definitely not an image")
    with pytest.raises(InvalidImageError, match="not an image"):
        load_image(fake, max_bytes=10_000_000)


def test_rejects_a_truncated_image():
    data = png(64, 64)
    with pytest.raises(InvalidImageError, match="damaged"):
        prepare_image(data[: len(data) // 2], max_bytes=10_000_000)


def test_rejects_a_decompression_bomb():
    out = io.BytesIO()
    PILImage.new("1", (20_000, 20_000)).save(out, format="PNG")  # ~50 KB on disk, 400 million pixels
    with pytest.raises(InvalidImageError, match=r"pixels is refused|too large to open safely"):
        prepare_image(out.getvalue(), max_bytes=10_000_000)


def test_rejects_oversize_uploads():
    with pytest.raises(InvalidImageError, match="the limit is 1 MB"):
        prepare_image(b"\x89PNG" + bytes(2_000_000), max_bytes=1_000_000)


def test_large_images_are_downscaled_and_formats_normalised():
    out = io.BytesIO()
    PILImage.new("RGB", (4000, 1000), (1, 2, 3)).save(out, format="BMP")
    image = prepare_image(out.getvalue(), max_bytes=100_000_000)
    assert (image.width, image.height) == (MAX_SIDE, MAX_SIDE // 4)
    assert image.mime == "image/jpeg"
    small = prepare_image(png(), max_bytes=1000)
    assert small.data == png() and small.mime == "image/png"


def test_python_api_images_and_vision(backend):
    service, openai, sd = backend
    sd.enqueue(json_reply({"images": [base64.b64encode(png()).decode()]}))
    sd.enqueue(json_reply({"images": [base64.b64encode(png()).decode()]}))
    openai.enqueue(Reply.text(["red"]))
    with Client(settings=service.settings) as client:
        by_path = client.images.generate(model="sd/default", prompt="p", response_format="url")
        assert Path(by_path.data[0].url).read_bytes() == png()
        inline = client.images.generate(model="sd/default", prompt="p", response_format="b64_json")
        assert base64.b64decode(inline.data[0].b64_json) == png()
        reply = client.chat.completions.create(
            model="cloud/seer", messages="What colour?", image=PILImage.open(io.BytesIO(png()))
        )
    assert reply.choices[0].message.content == "red"
    content = openai.chat_requests()[0].body["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What colour?"} and content[1]["type"] == "image_url"


async def test_chat_and_image_calls_run_together(backend):
    service, openai, sd = backend
    openai.default = Reply.text(["words"], delay=0.05)
    sd.enqueue(json_reply({"images": [base64.b64encode(png()).decode()]}))
    async with AsyncClient(settings=service.settings) as client:
        chat, images = await asyncio.gather(
            client.chat.completions.create(model="cloud/text-only", messages="hi"),
            client.images.generate(model="sd/default", prompt="p"),
        )
    assert chat.choices[0].message.content == "words" and len(images.data) == 1


def test_create_client_factory(upstream):
    client = create_client(provider="openai", api_key="sk-factory", endpoint=upstream.base_url, model_name="m")
    upstream.enqueue(Reply.text(["one"]), Reply.text(["t", "wo"]), Reply.error(401, "bad key sk-factory"))
    with client:
        assert client.run_chat_completions([{"role": "user", "content": "x"}], guided_json={"type": "object"}) == [
            "one"
        ]
        assert list(client.run_chat_completions_stream([{"role": "user", "content": "x"}])) == ["t", "wo"]
        texts, error = client.run_chat_completions([{"role": "user", "content": "x"}], return_error=True)
    assert texts == [] and "rejected the API key" in error.user_message()
    first = upstream.chat_requests()[0]
    assert first.headers["authorization"] == "Bearer sk-factory"
    assert first.body["max_tokens"] == 256 and first.body["temperature"] == 0
    assert first.body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert not isinstance(error, RateLimitError)
