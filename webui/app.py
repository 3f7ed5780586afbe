"""The Gradio Blocks app: one tab per module, over a `Backend` built from the configuration."""

from __future__ import annotations

import asyncio

import gradio as gr

from backend import Backend

from .chat import build_chat_tab

CSS = """
#small-model-note { font-size: 0.9em; opacity: 0.85; }
footer { display: none !important; }
"""


def prepare(backend: Backend) -> None:
    """Start loading local models in the background and ask providers without a model list what they serve."""
    backend.warm_up()
    asyncio.run(backend.models.refresh())


def build_app(backend: Backend) -> gr.Blocks:
    """The whole UI. Call `prepare(backend)` first so the model picker lists every model."""
    with gr.Blocks(title="Switchboard", fill_height=True) as app:
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                build_chat_tab(backend)
    app.queue(default_concurrency_limit=backend.settings.app.concurrency)
    return app


def launch_options(backend: Backend, *, host: str | None, port: int | None, share: bool) -> dict:
    settings = backend.settings.app
    return {
        "server_name": host or settings.host,
        "server_port": port or settings.port,
        "share": share,
        "max_file_size": f"{settings.max_upload_mb}mb",
        "css": CSS,
        "footer_links": ["api"],
        "show_error": True,
    }
