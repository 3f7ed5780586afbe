"""System-prompt presets in the Chat tab's Settings: the visitor's own system prompts, saved by name on the server
(with their chats); picking one fills the system prompt."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from backend import PRESET_TEXT_LIMIT, ConversationStore, Preset, SwitchboardError

from ..identity import owner_of
from ..refusals import said, too_long


@dataclass
class PresetControls:
    picker: gr.Dropdown
    delete: gr.Button
    name: gr.Textbox
    save: gr.Button


def build_presets() -> PresetControls:
    """The presets row (inside the Settings accordion, above the system prompt)."""
    with gr.Row(equal_height=False, elem_id="presets"):
        # Any value is let through (a page whose session the server forgot still offers what it listed): the
        # handlers look it up among the owner's own presets.
        picker = gr.Dropdown(choices=[], value=None, label="Preset", elem_id="preset", scale=3, allow_custom_value=True)
        delete = gr.Button("Delete", size="sm", elem_id="delete-preset", scale=0, min_width=80)
        name = gr.Textbox(
            label="Name to save it under", placeholder="e.g. Terse reviewer", elem_id="preset-name", scale=3
        )
        save = gr.Button("Save", size="sm", elem_id="save-preset", scale=0, min_width=80)
    return PresetControls(picker, delete, name, save)


def wire_presets(
    store: ConversationStore, page: gr.Blocks, controls: PresetControls, system: gr.Textbox, *, max_chars: int
) -> None:
    """The presets' events. A preset is a system prompt: no longer than one may be (`max_chars`, from
    app.max_message_chars), nor than a preset is kept (PRESET_TEXT_LIMIT)."""
    quiet: dict[str, Any] = {"show_progress": "hidden", "api_visibility": "private"}
    limit = min(max_chars, PRESET_TEXT_LIMIT)

    async def listed(request: gr.Request, selected: str | None = None):
        names = [found.name for found in await store.presets(owner_of(request))]
        return gr.update(choices=names, value=selected if selected in names else None)

    async def use(name: str | None, request: gr.Request):
        chosen = [found for found in await store.presets(owner_of(request)) if found.name == name]
        return chosen[0].text if chosen else gr.skip()

    async def keep(name: str, text: str, request: gr.Request):
        if problem := too_long(text, limit, "system prompt"):
            return said(problem, 2)
        try:
            kept = Preset(name=name or "", text=text or "")
        except ValueError:
            return said("Type a system prompt and a name for it (up to 80 characters) first.", 2)
        try:
            await store.save_preset(owner_of(request), kept)
        except SwitchboardError as error:
            return said(error.user_message(), 2)
        gr.Info(f"Saved the preset “{html.escape(kept.name)}”.")
        return await listed(request, kept.name), ""

    async def drop(name: str | None, request: gr.Request):
        if not name or not isinstance(name, str):
            return said("Pick the preset to delete first.", 1)
        try:
            await store.delete_preset(owner_of(request), name)
        except SwitchboardError as error:
            return said(error.user_message(), 1)
        gr.Info(f"Deleted the preset “{html.escape(name)}”.")
        return await listed(request)

    page.load(listed, None, controls.picker, **quiet)
    controls.picker.input(use, controls.picker, system, **quiet)
    controls.save.click(keep, [controls.name, system], [controls.picker, controls.name], **quiet)
    controls.delete.click(drop, controls.picker, controls.picker, **quiet)
