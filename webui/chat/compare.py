"""Compare, in the Chat tab: one prompt to two or three models at once, the answers streaming side by side, each
with who answered and how fast; "Continue with this" puts the exchange in the open chat with that answer, and the
others as versions of the same turn (the Versions picker switches between them). Stop stops all.

The model gets the open chat's branch on show as context, as a message sent in the chat would. The answers are
kept in the chat when one is picked; a comparison left unpicked is not stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block

from backend import (
    Backend,
    ChatRequest,
    Conversation,
    ShownChat,
    StoredMessage,
    SwitchboardError,
    VisitorLimits,
    model_messages,
)

from ..identity import owner_of, visitor_of
from ..refusals import refusal, too_long
from ..streaming import Pacer
from .reply import ReplyView

MAX_MODELS = 3
NOTHING_YET = "The answers appear here, side by side."


@dataclass
class ComparePanel:
    """The Compare section's components."""

    models: gr.Dropdown
    prompt: gr.Textbox
    run: gr.Button
    stop: gr.Button
    columns: list[gr.Column]  # a pane and its button each, shown for each model picked
    panes: list[gr.Chatbot]
    picks: list[gr.Button]
    results: gr.State

    def running(self, busy: bool) -> dict[Block, Any]:
        """Stop in place of Compare while the answers stream (`busy`), and back."""
        return {self.run: gr.update(visible=not busy), self.stop: gr.update(visible=busy)}

    def showing(self, model_ids: list[str] | None) -> dict[Block, Any]:
        """A pane (and its button) for each model picked, at least two, each titled with its model."""
        picked = list(model_ids or [])
        count = max(2, len(picked))
        columns: dict[Block, Any] = {column: gr.update(visible=n < count) for n, column in enumerate(self.columns)}
        titles: dict[Block, Any] = {
            pane: gr.update(label=picked[n] if n < len(picked) else f"Answer {n + 1}")
            for n, pane in enumerate(self.panes)
        }
        return {**columns, **titles}

    def answers(self, views: list[ReplyView], *, done: bool) -> dict[Block, Any]:
        """Each model's answer in its pane (a pane with no model is left as it is), and each pick button: usable
        once the answers are `done`, for an answer that did not fail."""
        panes: dict[Block, Any] = {pane: view.messages() for pane, view in zip(self.panes, views, strict=False)}
        picks: dict[Block, Any] = {
            pick: gr.update(interactive=done and n < len(views) and not views[n].error)
            for n, pick in enumerate(self.picks)
        }
        return {**panes, **picks}

    def picked(self) -> dict[Block, Any]:
        """An answer was picked: none can be picked again, and the comparison is over."""
        return {**{pick: gr.update(interactive=False) for pick in self.picks}, self.results: None}


def render_compare(choices: Sequence[tuple[str, str]]) -> ComparePanel:
    """The section's layout (inside the Chat tab's column); its events are wired with the tab's (wiring.py)."""
    with gr.Accordion("Compare models", open=False, elem_id="compare"):
        gr.Markdown(
            "Comparing needs two models or more: add a provider to `config.toml` (see the README) to compare "
            "its models with this one.",
            visible=len(choices) < 2,
            elem_id="compare-needs-models",
        )
        with gr.Row(equal_height=True, visible=len(choices) >= 2):
            models = gr.Dropdown(
                choices=list(choices),
                multiselect=True,
                max_choices=MAX_MODELS,
                label=f"Models to compare (2 or {MAX_MODELS})",
                elem_id="compare-models",
                scale=3,
            )
            prompt = gr.Textbox(label="Prompt", lines=1, elem_id="compare-prompt", scale=4)
            run = gr.Button("Compare", variant="primary", elem_id="compare-run", scale=1, min_width=100)
            stop = gr.Button("Stop", variant="stop", visible=False, elem_id="compare-stop", scale=1, min_width=100)
        with gr.Row(equal_height=False, visible=len(choices) >= 2):
            columns, panes, picks = [], [], []
            for number in range(MAX_MODELS):
                with gr.Column(min_width=260, visible=number < 2) as column:
                    pane = gr.Chatbot(
                        label=f"Answer {number + 1}",
                        height=320,
                        elem_id=f"compare-answer-{number}",
                        buttons=["copy"],
                        placeholder=NOTHING_YET,
                    )
                    pick = gr.Button(
                        "Continue with this", size="sm", interactive=False, elem_id=f"compare-pick-{number}"
                    )
                columns.append(column)
                panes.append(pane)
                picks.append(pick)
    return ComparePanel(models, prompt, run, stop, columns, panes, picks, gr.State(None))


@dataclass
class Compared:
    """A comparison's outcome, kept in the session until one answer is picked."""

    conversation_id: str | None
    question: str
    answers: list[StoredMessage]

    def exchange(self, number: int) -> Callable[[Conversation], None]:
        """The change that puts the compared exchange in a chat: answer `number` on show, the others versions of
        it."""
        picked = self.answers[number]

        def add(target: Conversation) -> None:
            question = target.add(StoredMessage(role="user", text=self.question), after="leaf")
            for other, answer in enumerate(self.answers):
                if other != number:
                    target.add(answer.model_copy(), after=question)
            target.add(picked.model_copy(), after=question)  # added last: the version on show
            target.model = target.model or f"{picked.provider}/{picked.model}"

        return add


async def compare_answers(
    backend: Backend,
    limits: VisitorLimits,
    pacer: Pacer,
    panel: ComparePanel,
    reopen: Callable[[ShownChat | None, str | None, str], Awaitable[Conversation | None]],
    model_ids: list[str] | None,
    prompt: str,
    conversation: ShownChat | None,
    conversation_id: str | None,
    system_prompt: str,
    request: gr.Request,
) -> AsyncIterator[dict[Block, Any]]:
    """Stream every picked model's answer to `prompt` (with the open chat's branch as context) into its pane; the
    outcome (`Compared`) in the panel's results at the end."""
    limit = backend.settings.app.max_message_chars
    if problem := compare_problem(model_ids, prompt, system_prompt, limit):  # (the page's validator said so already)
        raise refusal(problem, duration=6)
    chosen = [model for model in dict.fromkeys(model_ids or []) if model]
    owner = owner_of(request)
    opened = await reopen(conversation, conversation_id, owner)
    draft = opened.fork() if opened is not None else Conversation()
    try:
        draft.add(StoredMessage(role="user", text=prompt.strip()))
    except SwitchboardError as error:  # (a chat that holds as many messages as a chat can)
        raise refusal(error.user_message()) from None
    messages = await model_messages(backend.conversations, owner, draft, system_prompt or "")
    views = [ReplyView(model) for model in chosen]
    changed = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        async with limits.admit(visitor_of(request)):  # a comparison counts as one message
            tasks = [
                asyncio.create_task(_answer(backend, ChatRequest(model=model, messages=messages), view, changed))
                for model, view in zip(chosen, views, strict=True)
            ]
            while not all(task.done() for task in tasks):
                waiter = asyncio.create_task(changed.wait())
                await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                changed.clear()
                yield panel.answers(views, done=False)
                await asyncio.sleep(pacer.interval())  # the app's one pace of updates
    except SwitchboardError as error:
        raise refusal(error.user_message()) from None
    finally:  # Stop (this step cancelled) or the page gone: every answer's upstream is hung up on
        for task in tasks:
            task.cancel()
    compared = Compared(opened.id if opened else None, prompt.strip(), [v.to_stored() for v in views])
    yield {**panel.answers(views, done=True), panel.results: compared}


def compare_problem(model_ids: list[str] | None, prompt: str, system_prompt: str, max_chars: int) -> str | None:
    """Why a comparison cannot start, in one sentence; None when it can. (`max_chars`: app.max_message_chars.)"""
    if not 2 <= len({model for model in model_ids or [] if model}) <= MAX_MODELS:
        return f"Pick 2 or {MAX_MODELS} models to compare."
    if not (prompt or "").strip():
        return "Type the prompt to send them."
    return too_long(prompt, max_chars, "prompt") or too_long(system_prompt, max_chars, "system prompt")


async def _answer(backend: Backend, request: ChatRequest, view: ReplyView, changed: asyncio.Event) -> None:
    try:
        async for event in backend.chat.stream(request):
            view.apply(event)
            changed.set()
    except SwitchboardError as error:
        view.fail(error)
    finally:
        view.close()
        changed.set()
