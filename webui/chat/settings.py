"""The chat's settings (model, system prompt, temperature, top p, max tokens, seed): the one place a setting is
declared. `Chosen` says what each one is by default, how it is stored with a chat (`Conversation.settings`) and
what it sends with a reply (`ChatRequest`); `ChatSettings` holds their components, built by `render_model` and
`render_settings`. The handlers receive the settings by name (`ChatSettings.named`, the events' keyword inputs)
and read them with `Chosen.of_page`, so a new setting is a field in each class, its component and its line in
`Chosen.request`: nothing outside this module changes (besides `ChatRequest`, when it is new there too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import gradio as gr
from gradio.blocks import Block

from backend import ChatRequest, Conversation


@dataclass(frozen=True)
class Chosen:
    """A chat's settings as chosen: a new chat starts with these defaults, a stored chat's settings are shown
    again when it opens, and each reply is sent with them. Values come from the page as its components give them
    (a Number left empty is None)."""

    model: str | None
    system_prompt: str = ""
    temperature: float | None = 0.7
    top_p: float | None = 1.0
    max_tokens: int | None = 0
    seed: int | None = -1

    @classmethod
    def of_page(cls, values: Mapping[str, Any]) -> Chosen:
        """The settings among an event's values (by name; the other values are not settings)."""
        chosen = {field.name: values[field.name] for field in fields(cls) if field.name in values}
        return cls(**{**chosen, "system_prompt": chosen.get("system_prompt") or ""})

    @classmethod
    def of_conversation(cls, conversation: Conversation, models: Sequence[str], default_model: str) -> Chosen:
        """The settings a stored chat was last answered with: its model when it is still offered (else the default
        one), and each setting it stored (else that setting's default)."""
        model = conversation.model if conversation.model in models else default_model
        stored = {name: conversation.settings.get(name, default) for name, default in _STORED_DEFAULTS.items()}
        return cls(model=model, **stored)

    def stored(self) -> dict[str, Any]:
        """What a chat keeps of them (`Conversation.settings`; the model is `Conversation.model`)."""
        return {name: value for name, value in asdict(self).items() if name != "model"}

    def request(self, messages: list[dict[str, Any]], default_model: str) -> ChatRequest:
        """The request for a reply to `messages` with these settings. A setting at its "model's own" value is not
        sent: top p 1 (everyone's default; some providers refuse it), max tokens 0, seed -1."""
        return ChatRequest(
            model=self.model or default_model,
            messages=messages,
            temperature=self.temperature,
            top_p=self.top_p if self.top_p is not None and self.top_p < 1 else None,
            max_tokens=int(self.max_tokens) if self.max_tokens and self.max_tokens > 0 else None,
            seed=int(self.seed) if self.seed is not None and self.seed >= 0 else None,
        )


DEFAULT = Chosen(model=None)
_STORED_DEFAULTS = DEFAULT.stored()


@dataclass
class ChatSettings:
    """The settings' components, one per field of `Chosen`, named alike."""

    model: gr.Dropdown
    system_prompt: gr.Textbox
    temperature: gr.Slider
    top_p: gr.Slider
    max_tokens: gr.Number
    seed: gr.Number

    def named(self) -> dict[str, Block]:
        """The components by setting: the keyword inputs of every event that reads the settings."""
        return {field.name: getattr(self, field.name) for field in fields(self)}

    def components(self) -> list[Block]:
        return list(self.named().values())

    def showing(self, chosen: Chosen) -> dict[Block, Any]:
        """The components' updates that show `chosen`."""
        return {getattr(self, name): value for name, value in asdict(chosen).items()}


def render_model(choices: Sequence[tuple[str, str]], default: str) -> gr.Dropdown:
    """The model picker (in the model row, above the chat)."""
    return gr.Dropdown(
        choices=list(choices), value=default, label="Model", elem_id="model-picker", filterable=True, scale=3
    )


def render_settings(model: gr.Dropdown) -> ChatSettings:
    """The rest of the settings, inside the Settings accordion (`model`: the picker `render_model` made)."""
    # (Empty at first: a Textbox given no value is empty.)
    system_prompt = gr.Textbox(
        label="System prompt", lines=2, placeholder="You are a helpful assistant.", elem_id="system"
    )
    with gr.Row():
        temperature = gr.Slider(0, 2, value=DEFAULT.temperature, step=0.05, label="Temperature")
        top_p = gr.Slider(0, 1, value=DEFAULT.top_p, step=0.01, label="Top p")
        max_tokens = gr.Number(value=DEFAULT.max_tokens, precision=0, minimum=0, label="Max tokens (0: model default)")
        seed = gr.Number(value=DEFAULT.seed, precision=0, label="Seed (-1: random)")
    return ChatSettings(model, system_prompt, temperature, top_p, max_tokens, seed)
