"""The line beside the model picker: what the picked model can do and how much of its context the open chat uses.

Used context is what the model counted for the last reply (prompt and completion tokens), when the provider said;
otherwise an estimate from the text (about four characters a token), shown with "≈".
"""

from __future__ import annotations

import html

from backend import Conversation, ModelInfo

CHARS_PER_TOKEN = 4
# Beside the small offline model that ships with the app: what to expect of it, and the way to a real assistant.
SMALL_MODEL_NOTICE = (
    "You are chatting with the built-in offline model (Gemma 3 270M, a tiny base model running on this machine): "
    'expect short, often wrong answers.<span class="more"> For a real assistant add a provider to '
    "<code>config.toml</code> (OpenAI, Ollama, vLLM, a llama.cpp server...) as the README shows, and pick it "
    "above.</span>"
)


def context_used(conversation: Conversation | None) -> tuple[int, bool]:
    """Tokens of context the conversation's visible branch takes, and whether that is an estimate."""
    if conversation is None:
        return 0, False
    branch = list(conversation.messages)
    for position in range(len(branch) - 1, -1, -1):
        message = branch[position]
        if message.role == "assistant" and message.prompt_tokens is not None:
            counted = message.prompt_tokens + (message.completion_tokens or 0)
            return counted + _estimate(branch[position + 1 :]), position + 1 < len(branch)
    return _estimate(branch), bool(branch)


def _estimate(messages: list) -> int:
    characters = sum(len(m.text) + sum(len(d.text) for d in m.documents) for m in messages)
    return -(-characters // CHARS_PER_TOKEN)


def describe(info: ModelInfo | None, used: int, estimated: bool) -> str:
    """The line's HTML (every text escaped)."""
    if info is None:
        return ""
    abilities = ["text"]
    if info.vision:
        abilities.append("reads images")
    if info.images:
        abilities.append("makes images")
    if info.reasoning:
        abilities.append("shows its reasoning")
    chips = "".join(f'<span class="ability">{html.escape(ability)}</span>' for ability in abilities)
    about = "≈" if estimated else ""
    if info.context_length:
        share = min(used / info.context_length, 1.0)
        level = "full" if share >= 0.9 else "high" if share >= 0.7 else "ok"
        meter = (
            f'<span class="context {level}" title="{used:,} of {info.context_length:,} tokens of context">'
            f"{about}{_short(used)} / {_short(info.context_length)} tokens"
            f'<span class="bar"><span style="width: {share * 100:.1f}%"></span></span></span>'
        )
    else:
        meter = f'<span class="context" title="the context length of this model is not known">{about}'
        meter += f"{_short(used)} token{'' if used == 1 else 's'} used</span>"
    notice = f'<p id="small-model-note">{SMALL_MODEL_NOTICE}</p>' if info.bundled else ""
    return f'<div class="model-info">{chips}{meter}{notice}</div>'


def _short(tokens: int) -> str:
    if tokens < 1000:
        return str(tokens)
    if tokens < 100_000:
        return f"{tokens / 1000:.1f}k".replace(".0k", "k")
    return f"{round(tokens / 1000)}k"
