"""The Images tab: prompt in, generated images out (kept on disk with their details), past generations below.

The Generate button is also the `generate_image(prompt, model, size, n, negative_prompt, seed)` API endpoint.
"""

from __future__ import annotations

import re
import shutil

import gradio as gr

from backend import Backend, ImageRequest, SwitchboardError, VisitorLimits

from .identity import owner_of, visitor_of
from .refusals import refusal, too_long
from .scratch import fresh_folder

SIZES = ["1024x1024", "1024x1536", "1536x1024", "512x512", "768x768", "512x768", "768x512"]
NO_MODELS = (
    "**No image model is configured.** Add `image_models` to an OpenAI-compatible provider, e.g. "
    '`image_models = ["gpt-image-1"]`, or add an AUTOMATIC1111/Forge server with `kind = "automatic1111"`, as the '
    "README shows; then pick it here."
)


def build_images_tab(backend: Backend, limits: VisitorLimits):
    choices = [(choice.label, choice.id) for choice in backend.models.choices("image")]
    default = backend.settings.defaults.image

    gr.Markdown(NO_MODELS, visible=not choices, elem_id="no-image-models")
    with gr.Row():
        with gr.Column(scale=2):
            prompt_box = gr.Textbox(label="Prompt", lines=3, placeholder="A lighthouse at dawn, watercolour")
            negative_box = gr.Textbox(
                label="Negative prompt",
                value="",
                lines=1,
                visible=_takes_negative(backend, default),
                elem_id="negative",
            )
            with gr.Row():
                model_picker = gr.Dropdown(choices=choices, value=default, label="Image model", elem_id="image-model")
                size_picker = gr.Dropdown(choices=SIZES, value=SIZES[0], label="Size", allow_custom_value=True)
            with gr.Row():
                count = gr.Slider(1, 4, value=1, step=1, label="Images")
                seed_box = gr.Number(value=-1, precision=0, label="Seed (-1: random)")
            generate = gr.Button("Generate", variant="primary", interactive=bool(choices), elem_id="generate")
        with gr.Column(scale=3):
            results = gr.Gallery(
                label="Result", columns=2, height=420, elem_id="image-results", buttons=["download", "fullscreen"]
            )
    history = gr.Gallery(label="Past generations", columns=6, height=260, elem_id="image-history")

    async def generate_image(
        prompt: str,
        model: str,
        size: str = SIZES[0],
        n: float = 1,
        negative_prompt: str = "",
        seed: float = -1,
        request: gr.Request | None = None,
    ):
        """Generate `n` images of `size` from `prompt` with `model` (an image model id); returns the images."""
        if not (prompt or "").strip():
            raise refusal("Write a prompt first.", duration=4)
        most = backend.settings.app.max_message_chars
        if problem := too_long(prompt, most, "prompt") or too_long(negative_prompt, most, "negative prompt"):
            raise refusal(problem)
        image_request = ImageRequest(
            model=model or default or "",
            prompt=prompt.strip(),
            negative_prompt=(negative_prompt or "").strip() or None
            if _takes_negative(backend, model or default)
            else None,
            size=(size or SIZES[0]).strip(),
            n=int(n or 1),
            seed=int(seed) if seed not in (None, "") and int(seed) >= 0 else None,
        )
        try:
            async with limits.admit(visitor_of(request)):
                stored = await backend.images.generate(image_request, owner_of(request))
        except SwitchboardError as error:
            raise refusal(error.user_message()) from None
        return viewable(stored)

    async def past(request: gr.Request) -> list:
        return viewable(await backend.images.history(owner_of(request), 60))

    inputs = [prompt_box, model_picker, size_picker, count, negative_box, seed_box]
    generated = generate.click(generate_image, inputs, results, api_name="generate_image", concurrency_limit=4)
    generated.then(past, None, history, api_visibility="private")
    submitted = prompt_box.submit(generate_image, inputs, results, api_visibility="private", concurrency_limit=4)
    submitted.then(past, None, history, api_visibility="private")
    model_picker.change(
        lambda m: gr.update(visible=_takes_negative(backend, m)), model_picker, negative_box, api_visibility="private"
    )
    return past, history


def viewable(images) -> list[tuple[str, str]]:
    """Gallery items for stored images: copies in a fresh temporary folder, which Gradio caches under names
    derived from their content. The store itself is never a servable path, so no URL leads into another
    user's folder. Each copy is named from its prompt, the name a download gets."""
    folder = fresh_folder("images")
    items = []
    taken: set[str] = set()
    for image in images:
        copy = folder / _file_name(image.prompt, image.path.suffix, taken)
        shutil.copyfile(image.path, copy)
        items.append((str(copy), _caption(image)))
    return items


def _file_name(prompt: str, suffix: str, taken: set[str]) -> str:
    """`a-lighthouse-at-dawn.png` for "A lighthouse at dawn": the prompt's first words, then -2, -3... when the
    same prompt made several."""
    stem = "-".join(re.findall(r"[a-z0-9]+", prompt.lower()))[:60].strip("-") or "image"
    name, number = f"{stem}{suffix}", 1
    while name in taken:
        number += 1
        name = f"{stem}-{number}{suffix}"
    taken.add(name)
    return name


def _caption(image) -> str:
    """The prompt, the model and the image's real size in pixels (a model may not make the size asked for)."""
    size = image.pixels or image.size
    return f"{image.prompt[:80]} · {image.model} · {size}" + (f" · seed {image.seed}" if image.seed else "")


def _takes_negative(backend: Backend, model_id: str | None) -> bool:
    try:
        return backend.models.info(model_id or "").negative_prompt
    except SwitchboardError:
        return False
