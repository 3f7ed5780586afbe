"""The Chat tab's model line and system-prompt presets, in Chromium: the line under the picker says what the model
can do and how much of its context the chat uses; presets are saved, picked (in any chat, after a reload) and
deleted, and a picked preset is the system prompt the model gets."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from backend import Backend, load_settings
from tests.conftest import ARTIFACTS, scripted_config
from tests.test_browser import MESSAGE_BOX, WAIT, open_chat, sent_messages, toast
from tests.test_browser_conversations import exchange, open_settings, start_new_chat
from tests.upstream import ScriptedUpstream

pytestmark = pytest.mark.browser

KNOWN_MODEL = """
vision_models = ["scripted-1"]
reasoning_models = ["scripted-1"]
context_lengths = {"scripted-1" = 8192}
"""
PRESET = "#preset input"


def pick_preset(page: Page, name: str) -> None:
    page.locator(PRESET).click()
    page.get_by_role("option", name=name, exact=True).click()


def test_the_model_line_shows_abilities_and_context_used(
    request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app
):
    backend = Backend(load_settings(write_config(scripted_config(upstream, extra=KNOWN_MODEL))))
    page = open_chat(request, serve_app(backend))
    line = page.locator("#model-info")
    expect(line.locator(".ability")).to_have_text(["text", "reads images", "shows its reasoning"], timeout=WAIT)
    expect(line.locator(".context")).to_have_text("0 / 8.2k tokens")
    exchange(page, "Count my tokens", "Hello from the scripted upstream.")
    expect(line.locator(".context")).to_have_text("10 / 8.2k tokens", timeout=WAIT)  # 5 prompt, 5 completion
    start_new_chat(page)
    expect(line.locator(".context")).to_have_text("0 / 8.2k tokens", timeout=WAIT)
    page.screenshot(path=str(ARTIFACTS / "chat-model-line.png"))


def test_presets_are_saved_picked_and_deleted(
    request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app
):
    page = open_chat(request, serve_app(Backend(load_settings(write_config(scripted_config(upstream))))))
    system = open_settings(page)
    page.locator("#save-preset").click()
    toast(page, "Type a system prompt and a name")
    system.fill("Answer like a pirate.")
    page.locator("#preset-name textarea").fill("Pirate")
    page.locator("#save-preset").click()
    toast(page, "Saved the preset “Pirate”.")
    expect(page.locator(PRESET)).to_have_value("Pirate", timeout=WAIT)
    expect(page.locator("#preset-name textarea")).to_have_value("")

    # Another page (and any chat): the preset is there to pick; picking it fills the system prompt.
    page.reload()
    expect(page.locator(MESSAGE_BOX)).to_be_editable(timeout=WAIT)
    system = open_settings(page)
    expect(system).to_have_value("")
    pick_preset(page, "Pirate")
    expect(system).to_have_value("Answer like a pirate.", timeout=WAIT)
    exchange(page, "Hello?", "Hello from the scripted upstream.")
    assert sent_messages(upstream.chat_requests()[-1])[0] == {"role": "system", "content": "Answer like a pirate."}

    page.locator("#delete-preset").click()
    toast(page, "Deleted the preset “Pirate”.")
    expect(page.locator(PRESET)).to_have_value("", timeout=WAIT)
    page.reload()
    expect(page.locator(MESSAGE_BOX)).to_be_editable(timeout=WAIT)
    open_settings(page)
    page.locator(PRESET).click()
    expect(page.get_by_role("option", name="Pirate", exact=True)).to_have_count(0)
