"""The Vision tab: upload, paste or drop an image (or give its URL), ask about it, read the answer as it streams.

The Describe button is also the `describe_image(image, question, model, url)` API endpoint.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend import Backend, SwitchboardError, TextDelta, VisitorLimits

from .identity import visitor_of
from .refusals import refusal
from .streaming import Pacer, batched

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
            answer = gr.Markdown("*The answer appears here.*", elem_id="vision-answer", min_height=200)

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
            raise refusal("Add an image first: upload, paste or drop one, or give its URL.", duration=4)
        if not image and not url.startswith(("http://", "https://")):
            # Never a path on the server: the same sentence whatever the text names.
            raise refusal("An image URL must start with http:// or https://.", duration=6)
        visitor = visitor_of(request)
        try:
            limits.check(visitor)
            vision_request = await backend.vision.prepare(image or url, question or "", model or default)
        except SwitchboardError as error:
            raise refusal(error.user_message()) from None
        text = ""
        yield "*Waiting for the model…*"
        try:
            with limits.admit(visitor):
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
    event = describe.click(lambda: running(True), None, buttons, **private).then(
        describe_image,
        [image_box, question_box, model_picker, url_box],
        answer,
        api_name="describe_image",
        show_progress="minimal",
    )
    # Gradio's front end runs a `then` step after an answer that ended or was stopped, but not after one that
    # raised (a refused upload): that one runs `failure` steps only.
    event.then(lambda: running(False), None, buttons, **private)
    event.failure(lambda: running(False), None, buttons, **private)
    stop.click(None, None, None, cancels=[event], api_visibility="private")
