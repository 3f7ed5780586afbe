"""The Vision tab: upload, paste or drop an image (or give its URL), ask about it, read the answer as it streams.

The Describe button is also the `describe_image(image, question, model, url)` API endpoint.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend import Backend, SwitchboardError, TextDelta, VisitorLimits, validate_image

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
NOT_A_URL = "An image URL must start with http:// or https://."

NO_MODELS = (
    "**No vision model is configured.** List the models that read images under `vision_models` of a provider "
    '(e.g. `vision_models = ["gpt-4o-mini"]`, or `["llava"]` for Ollama), as the README shows.'
)


def _uploaded_path(payload) -> str | None:
    return None if payload is None else str(payload.path)


def build_vision_tab(backend: Backend, limits: VisitorLimits, pacer: Pacer) -> None:
    choices = [(choice.label, choice.id) for choice in backend.models.choices("vision")]
    default = backend.settings.defaults.vision
    default_question = backend.vision.default_question

    gr.Markdown(NO_MODELS, visible=not choices, elem_id="no-vision-models")
    with gr.Row():
        with gr.Column(scale=2):
            image_box = gr.Image(
                label="Image (upload, paste or drop)",
                type="filepath",
                sources=["upload", "clipboard"],
                height=320,
                elem_id="vision-image",
            )
            # Hand the upload over untouched: the backend checks it by content and says in one line what is wrong,
            # where gr.Image's own decoding would fail first with a long technical message. (An instance
            # attribute, not a subclass: Gradio writes a .pyi file beside any module that subclasses a component.)
            image_box.preprocess = _uploaded_path  # type: ignore[method-assign]  # on purpose, see above
            url_box = gr.Textbox(label="…or an image URL", value="", placeholder="https://example.com/picture.jpg")
            question_box = gr.Textbox(label="Question", value=default_question, lines=2, elem_id="vision-question")
            model_picker = gr.Dropdown(choices=choices, value=default, label="Vision model", elem_id="vision-model")
            with gr.Row():
                describe = gr.Button("Describe", variant="primary", interactive=bool(choices), elem_id="describe")
                stop = gr.Button("Stop", variant="stop", visible=False, elem_id="vision-stop")
        with gr.Column(scale=3):
            answer = gr.Markdown(ANSWER_PLACEHOLDER, elem_id="vision-answer", min_height=200)
    # Whether the picture just given was refused. (The handler cannot empty the Image itself: an output to it
    # makes Gradio build a new Image for the session, without the hand-over above.)
    refused = gr.Textbox(visible="hidden", elem_id="vision-refused")
    max_bytes = backend.settings.app.max_upload_bytes
    max_chars = backend.settings.app.max_message_chars

    async def picture_problem(image: str | None, url: str) -> str | None:
        """What is wrong with the picture as given, in one sentence; None when it can be described."""
        url = (url or "").strip()
        if not image and not url:
            return NO_IMAGE
        if not image and not url.startswith(("http://", "https://")):
            return NOT_A_URL  # never a path on the server: the same sentence whatever the text names
        if image:
            try:
                await validate_image(image, max_bytes=max_bytes)
            except SwitchboardError as error:
                return error.user_message()
        return None

    async def check_picture(image: str | None):
        """A picture dropped, pasted or picked is checked at once: one that cannot be read is said so (and the
        page then takes it away: REMOVE_REFUSED_JS). The answer about the previous picture goes either way."""
        problem = await picture_problem(image, "") if image else None
        if problem is not None:
            gr.Warning(problem, duration=8)
        return ANSWER_PLACEHOLDER, "refused" if problem else ""

    async def check_describe(image: str | None, question: str, model: str, url: str):
        """Describe's validator: a missing or unreadable picture is said at the picture, before anything starts;
        a question longer than a message may be, at the picture too."""
        problem = await picture_problem(image, url) or too_long(question, max_chars, "question")
        return verdict(problem, inputs=4)

    async def describe_image(
        image: str | None,
        question: str = "",
        model: str = "",
        url: str = "",
        request: gr.Request | None = None,
    ):
        """Ask `model` (a vision model id) `question` about `image`, or about the picture at `url`;
        streams the answer text."""
        url = (url or "").strip()
        if not image and not url:
            raise refusal(NO_IMAGE, duration=4)
        if not image and not url.startswith(("http://", "https://")):
            raise refusal(NOT_A_URL, duration=6)  # never a path on the server, whatever the text names
        if problem := too_long(question, max_chars, "question"):
            raise refusal(problem)
        visitor = visitor_of(request)
        try:
            await limits.check(visitor)
            vision_request = await backend.vision.prepare(image or url, question or "", model or default)
        except SwitchboardError as error:
            raise refusal(error.user_message()) from None
        text = ""
        yield "*Waiting for the model…*"
        try:
            async with limits.admit(visitor):
                async for batch in batched(backend.chat.stream(vision_request), pacer):
                    text += "".join(event.text for event in batch if isinstance(event, TextDelta))
                    yield text
        except SwitchboardError as error:
            yield f"{text}\n\n> ⚠️ {error.user_message()}"
            return
        yield text or "*The model returned an empty answer.*"

    # Stop takes Describe's place while an answer streams, as in the Chat tab.
    def running(busy: bool):
        return gr.update(visible=not busy), gr.update(visible=busy)

    buttons = [describe, stop]
    private: dict[str, Any] = {"queue": False, "api_visibility": "private"}
    # Queued (a toast needs it), quietly.
    checked = image_box.upload(
        check_picture, image_box, [answer, refused], api_visibility="private", show_progress="hidden"
    )
    checked.then(None, refused, None, js=REMOVE_REFUSED_JS, **private)
    image_box.clear(lambda: ANSWER_PLACEHOLDER, None, answer, **private)
    inputs = [image_box, question_box, model_picker, url_box]
    started = describe.click(
        lambda *_: running(True),
        inputs,
        buttons,
        validator=check_describe,  # (validators run for queued events only)
        api_visibility="private",
        show_progress="hidden",
    )
    event = started.then(
        describe_image,
        inputs,
        answer,
        api_name="describe_image",
        show_progress="minimal",
    )
    # Gradio's front end runs a `then` step after an answer that ended or was stopped, but not after one that
    # raised (a refused upload): that one runs `failure` steps only.
    event.then(lambda: running(False), None, buttons, **private)
    event.failure(lambda: running(False), None, buttons, **private)
    stop.click(None, None, None, cancels=[event], api_visibility="private")
