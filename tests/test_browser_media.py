"""End-to-end tests of images in the UI: the Images tab, the Vision tab and image attachments in Chat.

The real Gradio app runs in this process over two scripted upstreams (tests/upstream.py): an OpenAI-compatible one
(chat, vision and `gpt-image-1`) and an AUTOMATIC1111 one (`/sdapi/v1/txt2img`). Debian's Chromium drives the page,
so each test checks what the person sees and what the upstreams received.

DOM of Gradio 6.31, found by dumping the components' inner HTML:
- every file upload is a hidden `input[type=file][data-testid="file-upload"]` inside the component's element:
  `#vision-image input[data-testid='file-upload']` (gr.Image, accept="image/*") and
  `#message input[data-testid='file-upload']` (gr.MultimodalTextbox, accept="image/*", multiple). `accept` only
  filters the file picker: Gradio's client-side type check goes by the file name, so a text file named photo.png
  is uploaded. Gradio empties the input before it opens the picker, so `set_input_files` straight on the input
  fires no change event when the same file is set twice: the Chat tests use the "Upload a file" button
  (`#message [data-testid='upload-button']`) and the file chooser, as a person does;
- a MultimodalTextbox attachment shows as `.thumbnail-wrapper img` once uploaded, with a "Remove file" button;
- a gr.Image with a picture holds `.image-frame img`;
- a Gallery item is `.gallery-item`, its `img` alt (and `.caption-label`) is the caption;
- a Dropdown is `input[role=combobox]`; its options are `[role=option]` named by their label ("sd · default");
- a Slider's number box is labelled "number input for <label>";
- a gr.Error from a queued event is a `[data-testid="toast-body"]` (message in `[data-testid="toast-text"]`) that
  fades in (visible to Playwright while its opacity is still 0); from an unqueued (queue=False) event it is no
  toast at all, only an "Error" label in each output's `[data-testid="status-tracker"]`;
- in the Chatbot an attached image is an `img` inside the user's `.user-row`.
"""

from __future__ import annotations

import base64
import io
import json
import re
import sqlite3
import textwrap
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image as PILImage
from playwright.sync_api import Page, expect

from backend import Backend, load_settings
from tests.conftest import ARTIFACTS
from tests.test_browser import (
    DEFAULT_ANSWER,
    MESSAGE_BOX,
    TOAST,
    USER_MESSAGES,
    WAIT,
    answer,
    close_toasts,
    open_chat,
    toast,
    wait_until_idle,
    words,
)
from tests.upstream import Recorded, Reply, ScriptedUpstream

pytestmark = pytest.mark.browser

REFUSAL = "#message .validation-error"  # what a refused message says, at the message box
PROMPT_PLACEHOLDER = "A lighthouse at dawn, watercolour"
VISION_UPLOAD = "#vision-image input[data-testid='file-upload']"
CHAT_UPLOAD = "#message input[data-testid='file-upload']"


def png(width: int = 8, height: int = 8, colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def gradient_png(width: int = 48, height: int = 32) -> bytes:
    """A small PNG with distinct pixels, so its bytes cannot be mistaken for another test image."""
    image = PILImage.new("RGB", (width, height))
    image.putdata([(x * 5 % 256, y * 7 % 256, (x + y) * 3 % 256) for y in range(height) for x in range(width)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def json_reply(payload) -> Reply:
    return Reply(headers={"content-type": "application/json"}, frames=[json.dumps(payload).encode()], chunked=False)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + b64(data)


@dataclass
class MediaApp:
    url: str
    openai: ScriptedUpstream
    sd: ScriptedUpstream
    data_dir: Path


@pytest.fixture
def media_app(upstream: ScriptedUpstream, tmp_path: Path, write_config, serve_app) -> MediaApp:
    """The app over a scripted OpenAI-compatible upstream (`cloud`: text-only, seer for vision, gpt-image-1) and a
    scripted AUTOMATIC1111 server (`sd/default`)."""
    with ScriptedUpstream() as sd:
        config = f"""
            [app]
            embedded_model = false
            stream_interval_ms = 30
            data_dir = "{tmp_path / "data"}"
            [providers.cloud]
            kind = "openai"
            base_url = "{upstream.base_url}"
            models = ["text-only"]
            vision_models = ["seer"]
            image_models = ["gpt-image-1"]
            connect_timeout = 2
            idle_timeout = 5
            first_token_timeout = 5
            [providers.sd]
            kind = "automatic1111"
            base_url = "http://127.0.0.1:{sd.port}"
            image_models = ["default"]
            """
        backend = Backend(load_settings(write_config(textwrap.dedent(config))))
        yield MediaApp(serve_app(backend), upstream, sd, tmp_path / "data")


def open_tab(request: pytest.FixtureRequest, app: MediaApp, tab: str) -> Page:
    """The page open on `tab` ("Chat", "Images" or "Vision")."""
    page = open_chat(request, app.url)
    if tab != "Chat":
        page.get_by_role("tab", name=tab).click()
        expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true", timeout=WAIT)
    return page


def pick(page: Page, dropdown: str, label: str) -> None:
    """Choose the option labelled `label` ("provider · model") in the Dropdown `dropdown` (a CSS selector)."""
    combobox = page.locator(f"{dropdown} input[role='combobox']")
    combobox.click()
    page.get_by_role("option", name=label, exact=True).click()
    expect(combobox).to_have_value(label, timeout=WAIT)


def set_count(page: Page, count: int) -> None:
    box = page.get_by_label("number input for Images")
    box.fill(str(count))
    box.press("Tab")
    expect(page.get_by_label("range slider for Images")).to_have_value(str(count), timeout=WAIT)


def attach(page: Page, path: Path) -> None:
    """Attach `path` to the chat message as a person does: the "Upload a file" button, then the file chooser.
    (Gradio empties the hidden input before opening the chooser; `set_input_files` straight on the input would
    skip that, and re-attaching the same file would then fire no change event.)"""
    assert page.locator(CHAT_UPLOAD).count() == 1
    with page.expect_file_chooser(timeout=WAIT) as chooser:
        page.locator("#message [data-testid='upload-button']").first.click()
    chooser.value.set_files(path)


def _ends_with(name: str) -> re.Pattern:
    """Matches a `src` ending in `name` (Gradio serves an upload under its original file name)."""
    return re.compile(re.escape(name) + "$")


def image_files(app: MediaApp) -> list[Path]:
    """Generated images of the one local owner (images are kept per owner, under images/<owner>/)."""
    folder = app.data_dir / "images"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def image_details(app: MediaApp, path: Path) -> dict:
    """What the database holds about a generated image (prompt, model, parameters), read without the app."""
    with closing(sqlite3.connect(app.data_dir / "switchboard.db")) as database:
        [(details,)] = database.execute("SELECT details FROM images WHERE name = ?", (path.name,)).fetchall()
    return json.loads(details)


def user_content(request: Recorded) -> list | str:
    assert isinstance(request.body, dict), request.body
    return request.body["messages"][-1]["content"]


# --- Images tab ----------------------------------------------------------------------------------------------------


def test_images_tab_generates_keeps_and_reports_errors(request: pytest.FixtureRequest, media_app: MediaApp):
    """AUTOMATIC1111 with a negative prompt and two images, then gpt-image-1, then a refused prompt: the images show
    in the result and in "Past generations", each is kept on disk with a JSON sidecar, the upstreams get what was
    typed (seed -1: random), and a refusal is a one-sentence error toast."""
    app = media_app
    page = open_tab(request, app, "Images")
    expect(page.locator("#no-image-models")).to_be_hidden()
    expect(page.locator("#image-model input[role='combobox']")).to_have_value("cloud · gpt-image-1")
    expect(page.locator("#negative")).to_be_hidden()  # the default model takes no negative prompt
    expect(page.get_by_label("Seed (-1: random)")).to_have_value("-1")

    # 1. AUTOMATIC1111: the negative prompt box appears; two images in one batch.
    first, second = png(colour=(0, 0, 255)), png(colour=(0, 255, 0))
    app.sd.enqueue(json_reply({"images": [b64(first), b64(second)], "info": json.dumps({"all_seeds": [11, 12]})}))
    page.get_by_placeholder(PROMPT_PLACEHOLDER).fill("rolling hills at dusk")
    pick(page, "#image-model", "sd · default")
    expect(page.locator("#negative")).to_be_visible(timeout=WAIT)
    page.locator("#negative [data-testid='textbox']").fill("blurry, text")
    set_count(page, 2)
    page.locator("#generate").click()

    results = page.locator("#image-results .gallery-item img")
    expect(results).to_have_count(2, timeout=WAIT)
    # The caption gives the size the images really have (8x8 here, not the 1024x1024 asked for); the files (what a
    # download is named) are named from the prompt.
    expect(results.first).to_have_attribute("alt", "rolling hills at dusk · sd/default · 8x8 · seed 11")
    expect(results.nth(1)).to_have_attribute("alt", "rolling hills at dusk · sd/default · 8x8 · seed 12")
    names = sorted(src.rsplit("/", 1)[-1] for src in results.evaluate_all("imgs => imgs.map(i => i.src)"))
    assert names == ["rolling-hills-at-dusk-2.png", "rolling-hills-at-dusk.png"], names
    history = page.locator("#image-history .gallery-item img")
    expect(history).to_have_count(2, timeout=WAIT)
    assert sorted(history.evaluate_all("imgs => imgs.map(i => i.alt)")) == sorted(
        results.evaluate_all("imgs => imgs.map(i => i.alt)")
    )
    for image in results.all():  # the browser could load and decode each one
        expect(image).to_have_js_property("complete", True, timeout=WAIT)
        assert image.evaluate("i => i.naturalWidth") == 8

    assert [r.path for r in app.sd.requests] == ["/sdapi/v1/txt2img"]
    body = app.sd.requests[0].body
    assert {k: body[k] for k in ("prompt", "negative_prompt", "batch_size", "seed", "width", "height")} == {
        "prompt": "rolling hills at dusk",
        "negative_prompt": "blurry, text",
        "batch_size": 2,
        "seed": -1,
        "width": 1024,
        "height": 1024,
    }
    saved = image_files(app)
    assert len(saved) == 2
    assert sorted(path.read_bytes() for path in saved) == sorted([first, second])
    for path in saved:
        details = image_details(app, path)
        assert details["prompt"] == "rolling hills at dusk" and details["model"] == "sd/default"
        assert details["negative_prompt"] == "blurry, text" and details["seed"] in (11, 12)

    # 2. gpt-image-1: no negative prompt box; the OpenAI images endpoint answers in base64.
    third = png(16, 16, colour=(250, 200, 0))
    app.openai.enqueue(json_reply({"data": [{"b64_json": b64(third), "revised_prompt": "a yellow square"}]}))
    pick(page, "#image-model", "cloud · gpt-image-1")
    expect(page.locator("#negative")).to_be_hidden(timeout=WAIT)
    set_count(page, 1)
    page.get_by_placeholder(PROMPT_PLACEHOLDER).fill("a yellow square")
    page.locator("#generate").click()

    expect(results).to_have_count(1, timeout=WAIT)
    expect(results.first).to_have_attribute("alt", "a yellow square · cloud/gpt-image-1 · 16x16", timeout=WAIT)
    expect(history).to_have_count(3, timeout=WAIT)
    # (Not checked: that it comes first. The history sorts by file name, whose time stamp has whole seconds.)
    expect(history.and_(page.locator("[alt='a yellow square · cloud/gpt-image-1 · 16x16']"))).to_have_count(1)
    assert [r.path for r in app.openai.requests] == ["/v1/images/generations"]
    assert app.openai.requests[0].body == {
        "model": "gpt-image-1",
        "prompt": "a yellow square",
        "n": 1,
        "size": "1024x1024",
    }
    saved = image_files(app)
    assert len(saved) == 3 and third in [path.read_bytes() for path in saved]

    # 3. A refused prompt: one sentence in an error toast; no retry, nothing saved, the last result stays.
    app.openai.enqueue(Reply.error(400, "Your request was rejected by the safety system"))
    page.get_by_placeholder(PROMPT_PLACEHOLDER).fill("something forbidden")
    page.locator("#generate").click()
    message = toast(page, "rejected the request")
    text = message.inner_text().strip()
    assert text == "cloud/gpt-image-1 rejected the request: Your request was rejected by the safety system", text
    assert "\n" not in text
    expect(page.locator(TOAST)).to_have_count(1)
    expect(results).to_have_count(1)
    expect(history).to_have_count(3)
    assert len(app.openai.requests) == 2  # a 400 is not retried
    assert len(image_files(app)) == 3
    page.screenshot(path=str(ARTIFACTS / "images-tab.png"))


def test_images_hidden_negative_prompt_is_not_recorded(request: pytest.FixtureRequest, media_app: MediaApp):
    """A negative prompt typed for AUTOMATIC1111 stays in the (now hidden) box after switching to gpt-image-1; the
    OpenAI request rightly leaves it out, so the saved details must not claim it was used."""
    app = media_app
    page = open_tab(request, app, "Images")
    pick(page, "#image-model", "sd · default")
    page.locator("#negative [data-testid='textbox']").fill("blurry")
    pick(page, "#image-model", "cloud · gpt-image-1")
    expect(page.locator("#negative")).to_be_hidden(timeout=WAIT)
    app.openai.enqueue(json_reply({"data": [{"b64_json": b64(png())}]}))
    page.get_by_placeholder(PROMPT_PLACEHOLDER).fill("a red square")
    page.locator("#generate").click()
    expect(page.locator("#image-results .gallery-item img")).to_have_count(1, timeout=WAIT)
    assert "negative_prompt" not in app.openai.requests[0].body
    [saved] = image_files(app)
    assert image_details(app, saved)["negative_prompt"] is None


# --- Vision tab ----------------------------------------------------------------------------------------------------


def test_vision_tab_describes_upload_refuses_fakes_and_stops(
    request: pytest.FixtureRequest, media_app: MediaApp, tmp_path: Path
):
    """An uploaded PNG goes upstream byte for byte with the default question and the answer streams in; a text file
    named photo.png is refused with a clear error and nothing is sent; Stop closes the upstream connection."""
    app = media_app
    picture = gradient_png()
    photo = tmp_path / "picture.png"
    photo.write_bytes(picture)
    page = open_tab(request, app, "Vision")
    expect(page.locator("#no-vision-models")).to_be_hidden()
    expect(page.locator("#vision-answer")).to_contain_text("The answer appears here.")
    expect(page.locator("#vision-stop")).to_be_hidden()

    # 1. Describe a real PNG; the answer streams.
    page.locator(VISION_UPLOAD).set_input_files(photo)
    frame = page.locator("#vision-image .image-frame img")
    expect(frame).to_be_visible(timeout=WAIT)
    expect(frame).to_have_attribute("src", _ends_with("picture.png"), timeout=WAIT)
    expect(page.locator("#vision-question textarea")).to_have_value("Describe this image.")
    pick(page, "#vision-model", "cloud · seer")
    pieces = ["A small ", "gradient ", "of reds, ", "greens ", "and blues, ", "fading ", "to black."]
    app.openai.enqueue(Reply.text(pieces, delay=0.25))
    page.locator("#describe").click()

    answer_box = page.locator("#vision-answer [data-testid='markdown']")
    expect(answer_box).to_contain_text("gradient", timeout=WAIT)
    expect(page.locator("#vision-stop")).to_be_visible()
    expect(page.locator("#describe")).to_be_hidden()
    assert app.openai.wait_for(lambda: app.openai.chat_requests(), 5)
    described = app.openai.chat_requests()[0]
    assert described.finished_at is None, "the answer only showed once the upstream had sent everything"
    assert "to black." not in answer_box.inner_text()
    expect(answer_box).to_have_text("".join(pieces), timeout=WAIT)
    assert app.openai.wait_for(lambda: described.finished_at is not None, 5)
    expect(page.locator("#describe")).to_be_visible(timeout=WAIT)
    expect(page.locator("#vision-stop")).to_be_hidden()

    assert described.body["model"] == "seer" and described.body["stream"] is True
    [message] = described.body["messages"]
    assert message["role"] == "user"
    text_part, image_part = message["content"]
    assert text_part == {"type": "text", "text": "Describe this image."}
    assert image_part["type"] == "image_url"
    header, _, payload = image_part["image_url"]["url"].partition(",")
    assert header == "data:image/png;base64"
    assert base64.b64decode(payload) == picture
    page.screenshot(path=str(ARTIFACTS / "vision-tab.png"))

    # 2. A text file named photo.png: the browser's Image accepts it by its name (accept="image/*" only filters
    # the file picker); the server refuses it by content the moment it is dropped, in plain words, takes it away
    # (no broken thumbnail) and clears the answer about the previous picture; nothing is sent upstream.
    fake = tmp_path / "photo.png"
    fake.write_text("definitely not an image")
    page.locator(VISION_UPLOAD).set_input_files(fake)
    refusal = toast(page, "not an image")
    assert refusal.inner_text().strip() == "That file is not an image this app can read: use PNG, JPEG, WebP or GIF."
    expect(frame).to_have_count(0, timeout=WAIT)
    expect(answer_box).to_have_text("The answer appears here.")
    close_toasts(page)
    # Describe with no picture: said at the picture, with no error badge over the answer; nothing starts.
    page.locator("#describe").click()
    expect(page.locator("#vision-image .validation-error")).to_contain_text("Add an image first", timeout=WAIT)
    expect(page.locator("#vision-answer [data-testid='status-tracker']")).not_to_contain_text("Error")
    expect(page.locator("#describe")).to_be_visible()
    expect(page.locator("#vision-stop")).to_be_hidden()
    assert len(app.openai.chat_requests()) == 1

    # 3. Stop: a long, slow answer; Stop hangs up on the upstream and keeps what arrived.
    page.locator(VISION_UPLOAD).set_input_files(photo)
    expect(frame).to_have_attribute("src", _ends_with("picture.png"), timeout=WAIT)
    app.openai.enqueue(Reply.text(words(400), delay=0.05))
    page.locator("#describe").click()
    expect(answer_box).to_contain_text("word003", timeout=WAIT)
    page.locator("#vision-stop").click()
    stopped = app.openai.chat_requests()[1]
    assert app.openai.wait_for(lambda: stopped.disconnected_at is not None, 5), "Stop did not close the upstream"
    assert stopped.finished_at is None
    assert base64.b64decode(stopped.body["messages"][0]["content"][1]["image_url"]["url"].partition(",")[2]) == picture
    partial = answer_box.inner_text()
    assert "word003" in partial and "word399" not in partial
    expect(page.locator("#describe")).to_be_enabled(timeout=WAIT)
    expect(page.locator("#vision-stop")).to_be_hidden()


# --- Chat attachments ----------------------------------------------------------------------------------------------


def test_chat_image_attachments(request: pytest.FixtureRequest, media_app: MediaApp, tmp_path: Path):
    """A plain message carries no seed (-1: random); an image attached for a vision model shows in the user's bubble
    and goes upstream with the text; an image for a text-only model is refused before anything is sent, and the
    typed text and the attachment stay in the box."""
    app = media_app
    picture = gradient_png(20, 12)
    photo = tmp_path / "swatch.png"
    photo.write_bytes(picture)
    page = open_tab(request, app, "Chat")
    picker = page.locator("#model-picker input[role='combobox']")
    expect(picker).to_have_value("cloud · text-only")

    # 1. Plain text to the default model: no seed in the body.
    page.locator(MESSAGE_BOX).fill("Hello there.")
    page.locator("#send").click()
    expect(answer(page)).to_have_text(DEFAULT_ANSWER, timeout=WAIT)
    wait_until_idle(page)
    [plain] = app.openai.chat_requests()
    assert plain.body["model"] == "text-only"
    assert "seed" not in plain.body, plain.body
    assert plain.body["messages"] == [{"role": "user", "content": "Hello there."}]

    # 2. An image for the vision model.
    pick(page, "#model-picker", "cloud · seer")
    attach(page, photo)
    thumbnail = page.locator("#message .thumbnail-wrapper img")
    expect(thumbnail).to_have_attribute("src", _ends_with("swatch.png"), timeout=WAIT)
    page.locator(MESSAGE_BOX).fill("What colour is this?")
    app.openai.enqueue(Reply.text(["Mostly ", "green and blue."]))
    page.locator("#send").click()

    user_rows = page.locator("#chatbot .user-row")
    expect(page.locator(USER_MESSAGES).filter(has_text="What colour is this?")).to_be_visible(timeout=WAIT)
    bubble_image = user_rows.last.locator("img")
    expect(bubble_image).to_have_count(1, timeout=WAIT)
    expect(bubble_image).to_be_visible()
    expect(bubble_image).to_have_js_property("complete", True, timeout=WAIT)
    assert bubble_image.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [20, 12]
    expect(answer(page)).to_have_text("Mostly green and blue.", timeout=WAIT)
    wait_until_idle(page)
    expect(thumbnail).to_have_count(0)  # the box was emptied for the next message

    requests = app.openai.chat_requests()
    assert len(requests) == 2
    seen = requests[1]
    assert seen.body["model"] == "seer" and "seed" not in seen.body
    text_part, image_part = user_content(seen)
    assert text_part == {"type": "text", "text": "What colour is this?"}
    assert image_part == {"type": "image_url", "image_url": {"url": data_url(picture)}}
    page.screenshot(path=str(ARTIFACTS / "chat-attachment.png"))

    # 3. An image for the text-only model: refused before anything is sent; nothing typed is lost. (What the
    # refusal says: see the next test.)
    pick(page, "#model-picker", "cloud · text-only")
    attach(page, photo)
    expect(thumbnail).to_have_attribute("src", _ends_with("swatch.png"), timeout=WAIT)
    page.locator(MESSAGE_BOX).fill("And this one?")
    page.locator("#send").click()
    expect(page.locator(REFUSAL)).to_contain_text("does not read images", timeout=WAIT)
    expect(page.locator(MESSAGE_BOX)).to_have_value("And this one?")
    expect(page.locator(MESSAGE_BOX)).to_be_editable()
    expect(thumbnail).to_have_count(1)
    expect(user_rows).to_have_count(2)
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator("#stop")).to_be_hidden()
    assert len(app.openai.chat_requests()) == 2
    page.screenshot(path=str(ARTIFACTS / "chat-attachment-refused.png"))


def test_chat_image_for_text_model_says_why(request: pytest.FixtureRequest, media_app: MediaApp, tmp_path: Path):
    """Attaching an image for a model that does not read images explains itself in one sentence at the message
    box, with no error badge over the chat; a file that is not an image is refused the same way."""
    photo = tmp_path / "swatch.png"
    photo.write_bytes(gradient_png(20, 12))
    page = open_tab(request, media_app, "Chat")
    expect(page.locator("#model-picker input[role='combobox']")).to_have_value("cloud · text-only")
    attach(page, photo)
    expect(page.locator("#message .thumbnail-wrapper img")).to_have_attribute("src", _ends_with("swatch.png"))
    page.locator(MESSAGE_BOX).fill("What is this?")
    page.locator("#send").click()
    refusal = page.locator(REFUSAL)
    expect(refusal).to_contain_text("does not read images", timeout=WAIT)
    assert "cloud/text-only" in refusal.inner_text()
    expect(page.locator(MESSAGE_BOX)).to_have_value("What is this?")
    expect(page.locator("#chatbot [data-testid='status-tracker']")).not_to_contain_text("Error")
    expect(page.locator("#chat-list [data-testid='status-tracker']")).not_to_contain_text("Error")
    page.screenshot(path=str(ARTIFACTS / "chat-refused-at-the-box.png"))
    assert media_app.openai.chat_requests() == []

    fake = tmp_path / "notes.png"
    fake.write_text("not a picture at all")
    pick(page, "#model-picker", "cloud · seer")
    attach(page, fake)
    page.locator("#send").click()
    expect(refusal).to_contain_text("notes.png:", timeout=WAIT)
    expect(refusal).to_contain_text("not an image")
    assert media_app.openai.chat_requests() == []
