"""The Vision tab: upload, paste or drop an image (or give its URL), ask about it, read the answer as it streams.

The Describe button is also the `describe_image(image, question, model, url)` API endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block

from backend import NOT_AN_IMAGE_URL, Backend, SwitchboardError, TextDelta, VisitorLimits, validate_image

from .identity import visitor_of
from .refusals import refusal, too_long, verdict
from .streaming import Pacer, batched

ANSWER_PLACEHOLDER = "*The answer appears here.*"
# A refused picture is taken away as the person would: with the Image's own remove button (no broken thumbnail).
REMOVE_REFUSED_JS = """(refused) => {
  if (refused) document.querySelector("#vision-image button[aria-label='Remove Image']")?.click();
  return [];
}"""
NO_IMAGE = "Add an image first: upload, paste or drop one, or give its URL."
NOT_A_URL = NOT_AN_IMAGE_URL

NO_MODELS = (
    "**No vision model is configured.** List the models that read images under `vision_models` of a provider "
    '(e.g. `vision_models = ["gpt-4o-mini"]`, or `["llava"]` for Ollama), as the README shows.'
)


def _uploaded_path(payload) -> str | None:
    return None if payload is None else str(payload.path)


@dataclass
class VisionPage:
    """The Vision tab's components."""

    image: gr.Image
    url: gr.Textbox
    question: gr.Textbox
    model: gr.Dropdown
    describe: gr.Button
    stop: gr.Button
    answer: gr.Markdown
    # Whether the picture just given was refused. (A handler cannot empty the Image itself: an output to it makes
    # Gradio build a new Image for the session, without the hand-over in `_render_picture`.)
    refused: gr.Textbox


def build_vision_tab(backend: Backend, limits: VisitorLimits, pacer: Pacer) -> None:
    choices = [(choice.label, choice.id) for choice in backend.models.choices("vision")]
    page = _render(choices, backend.settings.defaults.vision, backend.vision.default_question)
    _wire(page, VisionHandlers(backend, limits, pacer, page))


def _render(choices: list[tuple[str, str]], default: str | None, default_question: str) -> VisionPage:
    gr.Markdown(NO_MODELS, visible=not choices, elem_id="no-vision-models")
    with gr.Row():
        with gr.Column(scale=2):
            image = _render_picture()
            url = gr.Textbox(label="…or an image URL", value="", placeholder="https://example.com/picture.jpg")
            question = gr.Textbox(label="Question", value=default_question, lines=2, elem_id="vision-question")
            model = gr.Dropdown(choices=choices, value=default, label="Vision model", elem_id="vision-model")
            with gr.Row():
                describe = gr.Button("Describe", variant="primary", interactive=bool(choices), elem_id="describe")
                stop = gr.Button("Stop", variant="stop", visible=False, elem_id="vision-stop")
        with gr.Column(scale=3):
            answer = gr.Markdown(ANSWER_PLACEHOLDER, elem_id="vision-answer", min_height=200)
    refused = gr.Textbox(visible="hidden", elem_id="vision-refused")
    return VisionPage(image, url, question, model, describe, stop, answer, refused)


def _render_picture() -> gr.Image:
    image = gr.Image(
        label="Image (upload, paste or drop)",
        type="filepath",
        sources=["upload", "clipboard"],
        height=320,
        elem_id="vision-image",
    )
    # Hand the upload over untouched: the backend checks it by content and says in one line what is wrong, where
    # gr.Image's own decoding would fail first with a long technical message. (An instance attribute, not a
    # subclass: Gradio writes a .pyi file beside any module that subclasses a component.)
    image.preprocess = _uploaded_path  # type: ignore[method-assign]  # on purpose, see above
    return image


class VisionHandlers:
    """The Vision tab's handlers; each returns the components it changes."""

    def __init__(self, backend: Backend, limits: VisitorLimits, pacer: Pacer, page: VisionPage) -> None:
        self.backend = backend
        self.limits = limits
        self.pacer = pacer
        self.page = page
        self.default = backend.settings.defaults.vision
        self.max_bytes = backend.settings.app.max_upload_bytes
        self.max_chars = backend.settings.app.max_message_chars

    async def picture_problem(self, image: str | None, url: str) -> str | None:
        """What is wrong with the picture as given, in one sentence; None when it can be described."""
        url = (url or "").strip()
        if not image and not url:
            return NO_IMAGE
        if not image and not url.startswith(("http://", "https://")):
            return NOT_A_URL  # never a path on the server: the same sentence whatever the text names
        if image:
            try:
                await validate_image(image, max_bytes=self.max_bytes)
            except SwitchboardError as error:
                return error.user_message()
        return None

    async def check_picture(self, image: str | None) -> dict[Block, Any]:
        """A picture dropped, pasted or picked is checked at once: one that cannot be read is said so (and the
        page then takes it away: REMOVE_REFUSED_JS). The answer about the previous picture goes either way."""
        problem = await self.picture_problem(image, "") if image else None
        if problem is not None:
            gr.Warning(problem, duration=8)
        return {self.page.answer: ANSWER_PLACEHOLDER, self.page.refused: "refused" if problem else ""}

    def cleared(self) -> dict[Block, Any]:
        return {self.page.answer: ANSWER_PLACEHOLDER}

    async def check_describe(self, image: str | None, question: str, model: str, url: str) -> dict[Block, Any]:
        """Describe's validator: a missing or unreadable picture is said at the picture, before anything starts;
        a question longer than a message may be, at the picture too."""
        problem = await self.picture_problem(image, url) or too_long(question, self.max_chars, "question")
        return verdict(problem, at=self.page.image)

    def running(self, *values: Any) -> dict[Block, Any]:
        """Stop takes Describe's place while an answer streams, as in the Chat tab."""
        return {self.page.describe: gr.update(visible=False), self.page.stop: gr.update(visible=True)}

    def done(self) -> dict[Block, Any]:
        return {self.page.describe: gr.update(visible=True), self.page.stop: gr.update(visible=False)}

    async def describe_image(
        self,
        image: str | None,
        question: str = "",
        model: str = "",
        url: str = "",
        request: gr.Request | None = None,
    ) -> AsyncIterator[str]:
        """Ask `model` (a vision model id) `question` about `image`, or about the picture at `url`;
        streams the answer text."""
        url = (url or "").strip()
        if not image and not url:
            raise refusal(NO_IMAGE, duration=4)
        if not image and not url.startswith(("http://", "https://")):
            raise refusal(NOT_A_URL, duration=6)  # never a path on the server, whatever the text names
        if problem := too_long(question, self.max_chars, "question"):
            raise refusal(problem)
        visitor = visitor_of(request)
        try:
            await self.limits.check(visitor)
            vision_request = await self.backend.vision.prepare(image or url, question or "", model or self.default)
        except SwitchboardError as error:
            raise refusal(error.user_message()) from None
        text = ""
        yield "*Waiting for the model…*"
        try:
            async with self.limits.admit(visitor):
                async for batch in batched(self.backend.chat.stream(vision_request), self.pacer):
                    text += "".join(event.text for event in batch if isinstance(event, TextDelta))
                    yield text
        except SwitchboardError as error:
            yield f"{text}\n\n> ⚠️ {error.user_message()}"
            return
        yield text or "*The model returned an empty answer.*"


def _wire(page: VisionPage, on: VisionHandlers) -> None:
    buttons = [page.describe, page.stop]
    private: dict[str, Any] = {"queue": False, "api_visibility": "private"}
    # Queued (a toast needs it), quietly.
    checked = page.image.upload(
        on.check_picture, page.image, [page.answer, page.refused], api_visibility="private", show_progress="hidden"
    )
    checked.then(None, page.refused, None, js=REMOVE_REFUSED_JS, **private)
    page.image.clear(on.cleared, None, page.answer, **private)
    inputs = [page.image, page.question, page.model, page.url]
    started = page.describe.click(
        on.running,
        inputs,
        buttons,
        validator=on.check_describe,  # (validators run for queued events only)
        api_visibility="private",
        show_progress="hidden",
    )
    event = started.then(on.describe_image, inputs, page.answer, api_name="describe_image", show_progress="minimal")
    # Gradio's front end runs a `then` step after an answer that ended or was stopped, but not after one that
    # raised (a refused upload): that one runs `failure` steps only.
    event.then(on.done, None, buttons, **private)
    event.failure(on.done, None, buttons, **private)
    page.stop.click(None, None, None, cancels=[event], api_visibility="private")
