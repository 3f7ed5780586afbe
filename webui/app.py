"""The Gradio Blocks app: one tab per module, over a `Backend` built from the configuration."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import gradio as gr

from backend import Backend, VisitorLimits

from . import gradio_tuning  # noqa: F401  (before Gradio builds its queue)
from .chat import build_chat_tab
from .images import build_images_tab
from .streaming import Pacer
from .vision import build_vision_tab


def prepare(backend: Backend, owners: Iterable[str] = ()) -> None:
    """Start loading local models in the background, open the conversation store (ConfigError when it cannot be
    used; `owners`' conversations of an earlier version are imported) and ask providers without a model list
    what they serve."""
    backend.warm_up()

    async def ready() -> None:
        await backend.open_store(owners)
        await backend.models.refresh()

    asyncio.run(ready())


def visitor_limits(backend: Backend, *, exposed: bool) -> VisitorLimits:
    """Per-visitor limits when the app is `exposed` (logins, a share link, a non-loopback address); none for a
    local single-user app."""
    app = backend.settings.app
    if not exposed:
        return VisitorLimits.off()
    return backend.visitor_limits(app.max_concurrent_per_visitor, app.max_requests_per_minute)


def build_app(backend: Backend, *, exposed: bool = False, limits: VisitorLimits | None = None) -> gr.Blocks:
    """The whole UI. Call `prepare(backend)` first so the model picker lists every model.

    Per-visitor limits (`app.max_concurrent_per_visitor`, `app.max_requests_per_minute`) apply when the app has
    logins or is `exposed` (a share link, a non-loopback address); a local single-user app has none. `limits`:
    the ones the app's API counts against too (one allowance per visitor across both)."""
    settings = backend.settings
    if limits is None:
        limits = visitor_limits(backend, exposed=exposed or settings.auth.enabled)
    # One pace for every streaming reply of the app, whichever tab or API call it comes from.
    pacer = Pacer(settings.app.stream_interval_ms / 1000, settings.app.updates_per_second)
    with gr.Blocks(title="Switchboard", fill_height=True, analytics_enabled=False) as app:
        with gr.Tabs():
            with gr.Tab("Chat", id="chat", elem_id="chat-tab"):
                sidebar = build_chat_tab(backend, limits, pacer, app)
            with gr.Tab("Images", id="images") as images_tab:
                refresh_history, history = build_images_tab(backend, limits)
            with gr.Tab("Vision", id="vision"):
                build_vision_tab(backend, limits, pacer)
        sidebar.render()  # beside the tabs, not in one: on show whichever tab is (the tabs stay where they are)
        images_tab.select(refresh_history, None, history, api_visibility="private")
    # Queue estimates once a second, not to every waiting visitor each time any event starts (O(n²) messages
    # when many arrive together; here events rarely wait at all).
    app.queue(default_concurrency_limit=backend.settings.app.concurrency, status_update_rate=1.0)
    return app
