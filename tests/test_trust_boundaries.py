"""Where the backend meets the outside world and holds: image decoding bounded and off the event loop, URL
fetches that cannot be steered or held, image-model URLs fetched without the key, login checks that cost the
same for every name, sizes validated, imports refused in one sentence, stale temporaries cleaned up."""

from __future__ import annotations

import asyncio
import hashlib
import io
import ipaddress
import json
import os
import textwrap
import threading
import time

import pytest
from PIL import Image as PILImage

from backend import (
    Backend,
    BadRequestError,
    ConversationError,
    ImageRequest,
    InvalidImageError,
    Users,
    load_settings,
    parse_import,
)
from backend.media import fetch_bytes, is_public_address, prepare_image
from backend.store import SQLStore
from tests.test_images_vision import json_reply, png
from tests.upstream import ScriptedUpstream

# --- images in --------------------------------------------------------------------------------------------------


def huge_png(side: int) -> bytes:
    """A few hundred KB on disk, `side` x `side` pixels once decoded."""
    out = io.BytesIO()
    PILImage.new("RGB", (side, side), (10, 20, 30)).save(out, format="PNG")
    return out.getvalue()


def test_a_small_png_of_fifty_megapixels_is_refused_before_decoding():
    """The attack: a 200 KB PNG of 7070x7070 pixels (49.98 million, under the old limit) took 200 MB per request."""
    data = huge_png(7070)
    assert len(data) < 1_000_000
    with pytest.raises(InvalidImageError, match=r"7070x7070 pixels; more than 17 million pixels is refused"):
        prepare_image(data, max_bytes=10_000_000)


def test_a_large_jpeg_is_decoded_at_a_reduced_scale():
    out = io.BytesIO()
    PILImage.new("RGB", (6000, 4000), (200, 100, 50)).save(out, format="JPEG", quality=70)
    image = prepare_image(out.getvalue(), max_bytes=50_000_000)
    assert (image.width, image.height) == (2048, 1365)


async def test_validating_an_image_does_not_stop_the_event_loop(scripted_backend):
    """Decoding a 16-megapixel picture takes a while; other visitors' streams go on meanwhile (the loop keeps
    turning while Vision prepares its request)."""
    data = huge_png(4000)
    turns = 0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal turns
        while not done.is_set():
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    before = turns
    with pytest.raises(Exception, match="cannot read images"):  # validated first, then the model is checked
        await scripted_backend.vision.prepare(data, "what?", model="scripted/scripted-1")
    during = turns - before
    done.set()
    await ticker
    assert during > 10


# --- URLs fetched -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("169.254.169.254", False),
        ("::1", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of the cloud metadata address
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
        ("::ffff:192.168.1.1", False),  # IPv4-mapped
        ("2606:4700:4700::1111", True),
    ],
)
def test_private_addresses_are_recognised_in_every_form(address, public):
    assert is_public_address(ipaddress.ip_address(address)) is public


class Drip:
    """A loopback server that answers an image request one byte a second, and records the requests' headers."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        starting = asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.server = asyncio.run_coroutine_threadsafe(starting, self.loop).result(timeout=5)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        self.headers.append({k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)})
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: 100000\r\n\r\n")
        try:
            for byte in png():
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@pytest.fixture
def drip():
    server = Drip()
    yield server
    server.close()


async def test_a_url_that_drips_is_cut_at_the_deadline(drip):
    """The attack: a server sending a byte a second held a vision slot for 600 s (each read was on time)."""
    url = f"http://127.0.0.1:{drip.port}/slow.png"
    with pytest.raises(InvalidImageError, match=r"did not deliver the image within 1\.5 s"):
        await fetch_bytes(url, allow_private=True, max_bytes=1_000_000, timeout=1.5)


async def test_urls_that_are_not_http_are_refused():
    for url in ("file:///etc/passwd", "/etc/passwd", "gopher://127.0.0.1/"):
        with pytest.raises(InvalidImageError, match="must start with http:// or https://"):
            await fetch_bytes(url, allow_private=True, max_bytes=1000, timeout=1)


@pytest.fixture
def image_backend(tmp_path, write_config, monkeypatch):
    """A backend whose image model answers with URLs, and whose key is KEY."""
    monkeypatch.setenv("IMAGE_KEY", "sk-image-key-do-not-send")
    with ScriptedUpstream() as cloud:
        config = textwrap.dedent(
            f"""
            [app]
            embedded_model = false
            image_fetch_timeout = 5
            [providers.cloud]
            kind = "openai"
            base_url = "{cloud.base_url}"
            api_key_env = "IMAGE_KEY"
            image_models = ["dall-e-3"]
            max_retries = 0
            """
        )
        yield Backend(load_settings(write_config(config))), cloud


async def test_an_image_url_elsewhere_is_fetched_without_the_key_and_not_from_private_hosts(image_backend, drip):
    backend, cloud = image_backend
    elsewhere = f"http://127.0.0.1:{drip.port}/generated.png"
    cloud.enqueue(json_reply({"data": [{"url": elsewhere}]}))
    request = ImageRequest(model="cloud/dall-e-3", prompt="a fox")
    with pytest.raises(InvalidImageError, match=r"Refusing to fetch an image from 127\.0\.0\.1"):
        await backend.images.generate(request)
    assert drip.headers == []  # nothing was sent there

    backend.settings.app.allow_private_image_urls = True
    backend.settings.app.image_fetch_timeout = 1.0
    cloud.enqueue(json_reply({"data": [{"url": elsewhere}]}))
    with pytest.raises(InvalidImageError, match="did not deliver the image"):
        await backend.images.generate(request)
    assert len(drip.headers) == 1 and "authorization" not in drip.headers[0]
    assert "sk-image-key" not in json.dumps(drip.headers)


async def test_image_sizes_are_checked_before_anything_is_sent(image_backend):
    backend, cloud = image_backend
    for size in ("99999x99999", "32x32", "4097x1024"):
        with pytest.raises(BadRequestError, match="between 64 and 4096 pixels"):
            await backend.images.generate(ImageRequest(model="cloud/dall-e-3", prompt="a fox", size=size))
    assert cloud.requests == []


# --- logins -------------------------------------------------------------------------------------------------------


def test_every_login_answer_costs_one_full_hash(monkeypatch):
    """The attack: an unknown name was refused in 1 ms, a known one checked in 110 ms. Now every answer runs one
    hash of the full cost, whether the name exists, is throttled, or has its password in the environment."""
    from backend import auth

    users = Users({"alice": "plain-secret-from-env", "bob": auth.hash_password("bob-secret", iterations=2000)})
    monkeypatch.setattr(auth, "ITERATIONS", 2000)  # the decoy's cost follows ITERATIONS
    auth._decoy.cache_clear()
    auth._decoy()
    rounds: list[int] = []
    real = hashlib.pbkdf2_hmac

    def counted(name, password, salt, iterations, *args):
        rounds.append(iterations)
        return real(name, password, salt, iterations, *args)

    monkeypatch.setattr(auth.hashlib, "pbkdf2_hmac", counted)
    for name, password in (("mallory", "x"), ("alice", "wrong"), ("alice", "plain-secret-from-env"), ("bob", "no")):
        rounds.clear()
        users(name, password)
        assert rounds == [2000], name
    auth._decoy.cache_clear()


async def test_login_checks_run_off_the_event_loop_and_the_shared_thread_pool():
    """A hash takes 0.14 s: not on the event loop (every stream would wait), nor on the thread pool other work
    shares (a flood of sign-ins filled it for 16 s), but on the sign-ins' own thread."""
    users = Users({"alice": "secret"})
    seen: list[threading.Thread] = []
    real = users.__class__.__call__

    class Watched(Users):
        def __call__(self, username: str, password: str) -> bool:
            seen.append(threading.current_thread())
            return real(self, username, password)

    watched = Watched({"alice": "secret"})
    assert await watched.verify("alice", "secret") is True
    assert await watched.verify("alice", "nope") is False
    assert len(seen) == 2 and threading.current_thread() not in seen
    assert all(thread.name.startswith("switchboard-login") for thread in seen)


# --- imports and the store ----------------------------------------------------------------------------------------


def test_a_deeply_nested_import_is_one_sentence():
    with pytest.raises(ConversationError, match="nested too deeply"):
        parse_import(b"[" * 100_000 + b"]" * 100_000)


def test_imports_are_bounded_in_size_and_message_length():
    nine_mb = json.dumps({"messages": [{"role": "user", "content": "x" * 9_000_000}]}).encode()
    with pytest.raises(ConversationError, match="larger than 5 MB"):
        parse_import(nine_mb)
    long_message = json.dumps({"messages": [{"role": "user", "content": "x" * 300_000}]}).encode()
    with pytest.raises(ConversationError, match="300,000 characters; the limit here is 200,000"):
        parse_import(long_message, max_message_chars=200_000)


async def test_temporary_files_of_killed_writes_are_cleaned_up(tmp_path):
    store = SQLStore.for_settings(tmp_path)
    reference = await store.conversations.save_image("ann", png(), "image/png")  # makes the owner's media folder
    media = store.conversations.image_path("ann", reference).parent
    old = media / ".x.png.0badf00d.tmp"
    young = media / ".y.png.cafebabe.tmp"
    for path in (old, young):
        path.write_bytes(b"half a file")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    await SQLStore.for_settings(tmp_path).conversations.load_image("ann", reference)  # a fresh process's first look
    assert not old.exists()
    assert young.exists()  # may be a write in progress
    await store.aclose()


async def test_temporary_files_of_killed_image_writes_are_cleaned_up(tmp_path):
    from backend.providers.base import GeneratedImage
    from backend.services.image_store import ImageStore

    records = SQLStore.for_settings(tmp_path)
    store = ImageStore(tmp_path / "images", records.images)
    await store.save(GeneratedImage(png()), ImageRequest(model="m", prompt="p"), "x/m", "ann")
    old = store.folder("ann") / ".20260101-000000-000000000-abcdef.png.deadbeef.tmp"
    old.write_bytes(b"half")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert len(await store.history("ann")) == 1
    assert not old.exists()
    await records.aclose()


@pytest.fixture
def decodes(monkeypatch) -> list[int]:
    """One entry for every image Pillow decodes from now on (a load of a decoded image has no tiles left)."""
    from PIL import ImageFile

    counted: list[int] = []
    real_load = ImageFile.ImageFile.load

    def counted_load(self):
        if self.tile:
            counted.append(1)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counted_load)
    return counted


async def test_an_attached_image_is_decoded_once_across_turns(upstream, write_config, decodes):
    """Validated when it is attached, then read from the store and sent on every turn, never decoded again."""
    from backend import ChatRequest, Conversation, StoredMessage, model_messages, validate_image
    from tests.conftest import scripted_config

    config = scripted_config(upstream) + 'vision_models = ["scripted-1"]\n'
    backend = Backend(load_settings(write_config(config)))
    picture = png(300, 200, (1, 2, 3))
    image = await validate_image(picture, max_bytes=1_000_000)
    reference = await backend.conversations.save_image("ann", image.data, image.mime)
    conversation = Conversation(messages=[StoredMessage(role="user", text="What is this?", images=[reference])])
    for turn in range(3):
        messages = await model_messages(backend.conversations, "ann", conversation)
        events = [event async for event in backend.chat.stream(ChatRequest("scripted/scripted-1", messages))]
        assert events
        conversation.add(StoredMessage(role="assistant", text="A square."))
        conversation.add(StoredMessage(role="user", text=f"And now? {turn}"))
    assert len(upstream.chat_requests()) == 3
    sent = [request.body["messages"][0]["content"][1]["image_url"]["url"] for request in upstream.chat_requests()]
    assert all(url.startswith("data:image/png") for url in sent)
    assert len(decodes) == 1


async def test_an_upload_is_decoded_once_from_check_to_send(tmp_path, decodes):
    """The message check validates an upload; the step that saves it gets the same result, without decoding."""
    from backend import validate_image

    upload = tmp_path / "photo.bmp"  # re-encoded when prepared: the result differs from the upload
    PILImage.new("RGB", (3000, 100), (9, 8, 7)).save(upload, format="BMP")
    checked = await validate_image(upload, max_bytes=10_000_000)
    saved = await validate_image(upload, max_bytes=10_000_000)
    sent = await validate_image(checked.data, max_bytes=10_000_000)
    assert saved is checked and sent is checked
    assert len(decodes) == 1
