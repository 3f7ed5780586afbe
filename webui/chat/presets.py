"""System-prompt presets in the Chat tab's Settings: the visitor's own system prompts, saved by name on the server
(with their chats); picking one fills the system prompt. Their handlers are the tab's (handlers.py)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr


@dataclass
class PresetControls:
    picker: gr.Dropdown
    delete: gr.Button
    name: gr.Textbox
    save: gr.Button


def render_presets() -> PresetControls:
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
