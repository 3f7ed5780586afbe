"""The line under the model picker: abilities, context used (counted by the provider, else estimated), escaping."""

from __future__ import annotations

from backend import Conversation, ModelInfo, StoredMessage
from webui.chat.model_info import context_used, describe


def chat(*messages: StoredMessage) -> Conversation:
    conversation = Conversation(title="t")
    for message in messages:
        conversation.add(message)
    return conversation


def test_context_used_is_the_providers_count_when_known():
    counted = chat(
        StoredMessage(role="user", text="x" * 400),
        StoredMessage(role="assistant", text="y" * 40, prompt_tokens=100, completion_tokens=20),
    )
    assert context_used(counted) == (120, False)
    counted.add(StoredMessage(role="user", text="z" * 41))  # sent after the count: estimated on top of it
    assert context_used(counted) == (131, True)
    assert context_used(chat(StoredMessage(role="user", text="w" * 10))) == (3, True)
    assert context_used(None) == (0, False)


def test_the_line_says_what_the_model_does_and_how_full_it_is():
    line = describe(ModelInfo(id="a/b", vision=True, reasoning=True, context_length=8192), 7500, True)
    assert ">text<" in line and ">reads images<" in line and ">shows its reasoning<" in line
    assert "makes images" not in line
    assert "≈7.5k / 8.2k tokens" in line and 'class="context full"' in line and "width: 91.6%" in line
    assert 'class="context ok"' in describe(ModelInfo(id="a/b", context_length=128_000), 1200, False)
    assert "1.2k tokens used" in describe(ModelInfo(id="a/b"), 1200, False)  # the context length not known
    assert "small-model-note" in describe(ModelInfo(id="local/m", bundled=True, context_length=2048), 0, False)
    assert "small-model-note" not in describe(ModelInfo(id="a/b"), 0, False)
    assert describe(None, 0, False) == ""
