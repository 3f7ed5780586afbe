"""End-to-end tests of the conversation sidebar of the Chat tab: conversations survive a reload and a server restart,
and can be searched, renamed, deleted, exported and imported.

The real Gradio app runs in this process over the scripted upstream (tests/upstream.py); Debian's Chromium drives
the page. Conversations are stored in the test's own folder (`tmp_path/data/switchboard.db`, see the autouse
fixture in conftest.py), so each test also checks what reached the database.

DOM of the sidebar (a gr.Sidebar, `#sidebar`; the list is ours, webui/chat/chat_list.py):
- `#chat-list` holds `section.group` date groups (`h3`: Today, Yesterday...), each a list of `li.chat` (its
  `data-id` the conversation id, class `open` when open) with `button.pick` (the title) and `button.more`, which
  opens the chat's `.chat-menu` (Rename, Export as Markdown, Export as JSON, Delete; Delete asks "Delete this
  chat?" there first); Rename turns the title into `input.rename`;
- `#chat-search textarea` is the search box;
- `#download` (a gr.File) shows after an export (which the page also downloads at once) as a table row:
  `td.filename` (aria-label = file name) and `a[data-testid='download-link']` with a `download` attribute, served
  from `/gradio_api/file=...`;
- `#import` is the UploadButton's button; its hidden `input[type=file][accept='.json']` is its sibling, so the
  tests click the button and answer the file chooser, as a person does;
- the Settings accordion is a `button.label-wrap` named "Settings"; the system prompt is the textarea labelled
  "System prompt"; the model picker is `#model-picker input[role=combobox]`, its options `[role=option]`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from backend import Backend, load_settings
from tests.conftest import ARTIFACTS, scripted_config, stored_conversations
from tests.test_browser import (
    ANSWERS,
    MESSAGE_BOX,
    THOUGHT_TITLES,
    USER_MESSAGES,
    WAIT,
    answer,
    open_chat,
    send,
    sent_messages,
    toast,
    wait_for_footer,
    wait_until_idle,
    words,
)
from tests.upstream import Reply, ScriptedUpstream

pytestmark = pytest.mark.browser

CHAT_ITEMS = "#chat-list li.chat"
OPEN_ITEM = "#chat-list li.chat.open"
SEARCH_BOX = "#chat-search textarea"
DOWNLOAD_LINK = "#download a[data-testid='download-link']"
MODEL_PICKER = "#model-picker input[role='combobox']"
FOOTER = re.compile(r"^\s*scripted/scripted-\d · first token ")


# --- helpers -------------------------------------------------------------------------------------------------------


def two_model_config(upstream: ScriptedUpstream) -> str:
    """The scripted provider with a second model, so a restored model picker is told apart from the default."""
    config = scripted_config(upstream)
    assert 'models = ["scripted-1"]' in config
    return config.replace('models = ["scripted-1"]', 'models = ["scripted-1", "scripted-2"]')


def stored_ids(tmp_path: Path) -> list[str]:
    """The ids of every stored conversation of every owner."""
    return sorted(conversation["id"] for conversation in stored_conversations(tmp_path / "data"))


def stored(tmp_path: Path, conversation_id: str) -> dict:
    """A stored conversation as the database holds it."""
    [found] = [c for c in stored_conversations(tmp_path / "data") if c["id"] == conversation_id]
    return found


def open_id(page: Page) -> str:
    """The id of the conversation marked open in the sidebar's list."""
    item = page.locator(OPEN_ITEM)
    expect(item).to_have_count(1, timeout=WAIT)
    value = item.get_attribute("data-id")
    assert value and re.fullmatch(r"[0-9a-f]{16}", value), value
    return value


def listed(page: Page, *titles: str) -> None:
    """Wait until the sidebar lists exactly `titles`, in this order (newest first)."""
    expect(page.locator(f"{CHAT_ITEMS} button.pick")).to_have_text(list(titles), timeout=WAIT)


def item_titled(page: Page, title: str, index: int = 0):
    """The sidebar's item for the conversation titled `title` (the `index`-th of that title), found by its id (its
    text changes when its menu opens or it is renamed)."""
    titled = page.locator(f"{CHAT_ITEMS} button.pick").filter(has_text=re.compile(rf"^\s*{re.escape(title)}\s*$"))
    expect(titled.nth(index)).to_be_attached(timeout=WAIT)
    conversation_id = titled.nth(index).locator("xpath=..").get_attribute("data-id")
    return page.locator(f"{CHAT_ITEMS}[data-id='{conversation_id}']")


def open_conversation(page: Page, title: str, index: int = 0) -> None:
    """Click the conversation titled `title` in the sidebar (the `index`-th of that title)."""
    item = item_titled(page, title, index)
    item.locator("button.pick").click()
    expect(item).to_have_class(re.compile(r"\bopen\b"), timeout=WAIT)


def chat_menu(page: Page, title: str, choice: str, index: int = 0) -> None:
    """Open the menu of the chat titled `title` in the sidebar and click `choice` in it."""
    item = item_titled(page, title, index)
    item.hover()
    item.locator("button.more").click()
    menu = item.locator(".chat-menu")
    expect(menu).to_be_visible(timeout=WAIT)
    menu.get_by_role("button", name=choice, exact=True).click()


def rename_chat(page: Page, title: str, new_title: str) -> None:
    """Rename a chat through its menu: the title becomes a field; type, then Enter."""
    chat_menu(page, title, "Rename")
    field = page.locator("#chat-list input.rename")
    expect(field).to_be_focused(timeout=WAIT)
    expect(field).to_have_value(title)
    field.fill(new_title)
    field.press("Enter")


def open_settings(page: Page):
    """Open the Settings accordion under the chat; returns the system prompt box."""
    box = page.get_by_label("System prompt")
    if not box.is_visible():
        page.locator("button.label-wrap", has_text="Settings").click()
    expect(box).to_be_visible(timeout=WAIT)
    return box


def pick_model(page: Page, label: str) -> None:
    combobox = page.locator(MODEL_PICKER)
    combobox.click()
    page.get_by_role("option", name=label, exact=True).click()
    expect(combobox).to_have_value(label, timeout=WAIT)


def exchange(page: Page, text: str, reply: str) -> None:
    """Send `text`, wait for the whole `reply` and its footer, and for the input to be back. (First for the
    message itself: the previous reply may read the same, and it is all there before the new one starts.)"""
    sent = page.locator(USER_MESSAGES).count()
    send(page, text)
    expect(page.locator(USER_MESSAGES)).to_have_count(sent + 1, timeout=WAIT)
    expect(answer(page)).to_have_text(reply, timeout=WAIT)
    wait_for_footer(page, "scripted/")
    wait_until_idle(page)


def start_new_chat(page: Page) -> None:
    """New chat, as a person does: the button, then an empty chat."""
    page.locator("#new-chat").click()
    expect(page.locator(USER_MESSAGES)).to_have_count(0, timeout=WAIT)


def upload(page: Page, path: Path) -> None:
    """Import `path` as a person does: the Import button, then the file chooser."""
    with page.expect_file_chooser(timeout=WAIT) as chooser:
        page.locator("#import").click()
    chooser.value.set_files(str(path))


def download(page: Page, title: str, choice: str, name: str, tmp_path: Path) -> Path:
    """Export the chat titled `title` through its menu (`choice`): the browser downloads the file named `name` at
    once (it is also offered in the sidebar); return where it was saved."""
    with page.expect_download(timeout=WAIT) as started:
        chat_menu(page, title, choice)
    expect(page.locator("#download td.filename")).to_have_attribute("aria-label", name, timeout=WAIT)
    expect(page.locator(DOWNLOAD_LINK)).to_have_attribute("download", name)
    assert started.value.suggested_filename == name
    target = tmp_path / "downloads" / started.value.suggested_filename
    started.value.save_as(target)
    return target


# --- tests ---------------------------------------------------------------------------------------------------------


def test_chat_survives_reload(
    request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app, tmp_path: Path
):
    """Two exchanges, then a reload: the same chat is open again (its address names it). On a fresh page the sidebar
    lists the chat under its first message; opening it brings back both turns with their footers, the model picked
    and the system prompt typed before; the next message continues the same conversation (the upstream gets the
    earlier turns) and is saved to the same file."""
    backend = Backend(load_settings(write_config(two_model_config(upstream))))
    page = open_chat(request, serve_app(backend))
    upstream.enqueue(Reply.text(["Parrots ", "can talk."]), Reply.text(["About ", "eighty years."]))

    pick_model(page, "scripted · scripted-2")
    open_settings(page).fill("Answer like a pirate.")
    exchange(page, "Tell me about parrots", "Parrots can talk.")
    listed(page, "Tell me about parrots")
    conversation_id = open_id(page)
    exchange(page, "How long do they live?", "About eighty years.")
    footers = page.locator(THOUGHT_TITLES).all_inner_texts()
    assert len(footers) == 2 and all(FOOTER.match(footer) for footer in footers), footers
    assert "scripted/scripted-2" in footers[0]
    assert sent_messages(upstream.chat_requests()[0])[0] == {"role": "system", "content": "Answer like a pirate."}

    # A reload keeps the chat open (its address names it), with its turns, model and system prompt.
    assert page.url.endswith(f"?chat={conversation_id}")
    page.reload()
    expect(page.locator(USER_MESSAGES)).to_have_text(["Tell me about parrots", "How long do they live?"], timeout=WAIT)
    expect(page.locator(THOUGHT_TITLES)).to_have_text(footers)
    expect(page.locator(MODEL_PICKER)).to_have_value("scripted · scripted-2", timeout=WAIT)
    assert open_id(page) == conversation_id

    page.goto(page.url.split("?")[0])
    expect(page.locator(MESSAGE_BOX)).to_be_editable(timeout=WAIT)
    listed(page, "Tell me about parrots")
    # A fresh page: nothing open, the default model, no system prompt.
    expect(page.locator(OPEN_ITEM)).to_have_count(0)
    expect(page.locator(USER_MESSAGES)).to_have_count(0)
    expect(page.locator(MODEL_PICKER)).to_have_value("scripted · scripted-1")
    expect(open_settings(page)).to_have_value("")

    open_conversation(page, "Tell me about parrots")
    assert open_id(page) == conversation_id
    expect(page.locator(USER_MESSAGES)).to_have_text(["Tell me about parrots", "How long do they live?"], timeout=WAIT)
    expect(page.locator(ANSWERS)).to_have_text(["Parrots can talk.", "About eighty years."])
    expect(page.locator(THOUGHT_TITLES)).to_have_text(footers)  # the same footers, stats and all
    expect(page.locator(MODEL_PICKER)).to_have_value("scripted · scripted-2", timeout=WAIT)
    expect(page.get_by_label("System prompt")).to_have_value("Answer like a pirate.", timeout=WAIT)

    upstream.enqueue(Reply.text(["Arr, ", "they ", "do."]))
    exchange(page, "Do they sing?", "Arr, they do.")
    expect(page.locator(USER_MESSAGES)).to_have_count(3)
    follow_up = upstream.chat_requests()[2]
    assert follow_up.body["model"] == "scripted-2"
    assert sent_messages(follow_up) == [
        {"role": "system", "content": "Answer like a pirate."},
        {"role": "user", "content": "Tell me about parrots"},
        {"role": "assistant", "content": "Parrots can talk."},
        {"role": "user", "content": "How long do they live?"},
        {"role": "assistant", "content": "About eighty years."},
        {"role": "user", "content": "Do they sing?"},
    ]
    listed(page, "Tell me about parrots")
    assert open_id(page) == conversation_id
    assert stored_ids(tmp_path) == [conversation_id]
    saved = stored(tmp_path, conversation_id)
    assert [(m["role"], m["text"]) for m in saved["messages"]] == [
        ("user", "Tell me about parrots"),
        ("assistant", "Parrots can talk."),
        ("user", "How long do they live?"),
        ("assistant", "About eighty years."),
        ("user", "Do they sing?"),
        ("assistant", "Arr, they do."),
    ]
    assert saved["model"] == "scripted/scripted-2"
    assert saved["settings"]["system_prompt"] == "Answer like a pirate."
    assert {m["status"] for m in saved["messages"]} == {"complete"}
    page.screenshot(path=str(ARTIFACTS / "conversations-reload.png"))


def test_also_after_server_restart(request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app):
    """A second app instance over the same config and data folder (a restarted server, with an empty index) lists
    the conversation and opens it with its history."""
    config = write_config(scripted_config(upstream))
    page = open_chat(request, serve_app(Backend(load_settings(config))))
    upstream.enqueue(Reply.text(["Saved ", "on disk."]))
    exchange(page, "Remember this after a restart", "Saved on disk.")
    listed(page, "Remember this after a restart")
    footer = page.locator(THOUGHT_TITLES).last.inner_text()

    restarted = serve_app(Backend(load_settings(config)))
    page.goto(restarted)
    expect(page.locator(MESSAGE_BOX)).to_be_editable(timeout=WAIT)
    listed(page, "Remember this after a restart")
    expect(page.locator(USER_MESSAGES)).to_have_count(0)
    open_conversation(page, "Remember this after a restart")
    expect(page.locator(USER_MESSAGES)).to_have_text(["Remember this after a restart"], timeout=WAIT)
    expect(page.locator(ANSWERS)).to_have_text(["Saved on disk."])
    expect(page.locator(THOUGHT_TITLES)).to_have_text([footer])

    # And it goes on there.
    exchange(page, "Still there?", "Hello from the scripted upstream.")
    assert [m["content"] for m in sent_messages(upstream.chat_requests()[-1])] == [
        "Remember this after a restart",
        "Saved on disk.",
        "Still there?",
    ]


def test_new_search_rename_delete(
    request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app, tmp_path: Path
):
    """New chat starts an empty one; search narrows the list by message text and clearing it brings all back;
    Rename (in a chat's menu) retitles it in place, leaving it where it is in the list; Delete asks first, Cancel
    keeps it, and confirming removes it from the list and from disk and empties the chat area when it was the open
    chat."""
    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    page = open_chat(request, serve_app(backend))
    upstream.enqueue(Reply.text(["Apples ", "are ", "crunchy."]), Reply.text(["Bananas ", "hold ", "potassium."]))

    exchange(page, "Tell me about apples", "Apples are crunchy.")
    apples = open_id(page)
    start_new_chat(page)
    expect(page.locator(OPEN_ITEM)).to_have_count(0, timeout=WAIT)
    exchange(page, "Tell me about bananas", "Bananas hold potassium.")
    bananas = open_id(page)
    assert bananas != apples
    listed(page, "Tell me about bananas", "Tell me about apples")
    assert sent_messages(upstream.chat_requests()[1]) == [{"role": "user", "content": "Tell me about bananas"}]
    assert set(stored_ids(tmp_path)) == {apples, bananas}

    # Search: a word only in the second chat's answer, shown with the text around it.
    page.locator(SEARCH_BOX).fill("potassium")
    listed(page, "Tell me about bananas")
    found = "Tell me about bananas Bananas hold potassium."
    expect(page.locator(f"{CHAT_ITEMS} p.snippet")).to_have_text([found], timeout=WAIT)
    page.locator(SEARCH_BOX).fill("crunchy apples")
    listed(page, "Tell me about apples")
    page.locator(SEARCH_BOX).fill("durian")
    expect(page.locator(CHAT_ITEMS)).to_have_count(0, timeout=WAIT)
    expect(page.locator("#chat-list")).to_contain_text("No chats match")
    page.locator(SEARCH_BOX).fill("")
    listed(page, "Tell me about bananas", "Tell me about apples")
    expect(page.locator(f"{CHAT_ITEMS} p.snippet")).to_have_count(0)  # the list of all chats: titles alone
    expect(page.locator("#chat-list")).not_to_contain_text("No chats match")
    assert open_id(page) == bananas  # searching does not change which chat is open

    # Rename the open chat; Escape leaves a title as it was.
    chat_menu(page, "Tell me about apples", "Rename")
    page.locator("#chat-list input.rename").fill("Never mind")
    page.locator("#chat-list input.rename").press("Escape")
    listed(page, "Tell me about bananas", "Tell me about apples")
    rename_chat(page, "Tell me about bananas", "  Banana   facts ")
    listed(page, "Banana facts", "Tell me about apples")
    assert open_id(page) == bananas
    assert stored(tmp_path, bananas)["title"] == "Banana facts"
    page.locator(SEARCH_BOX).fill("facts")  # the new title is searchable
    listed(page, "Banana facts")
    page.locator(SEARCH_BOX).fill("")
    listed(page, "Banana facts", "Tell me about apples")
    rename_chat(page, "Tell me about apples", "Apple notes")  # a rename keeps the chat's place in the list
    listed(page, "Banana facts", "Apple notes")
    rename_chat(page, "Apple notes", "Tell me about apples")

    # Delete: asks first; Cancel keeps it.
    chat_menu(page, "Banana facts", "Delete")
    menu = item_titled(page, "Banana facts").locator(".chat-menu")
    expect(menu).to_contain_text("Delete this chat?")
    menu.get_by_role("button", name="Cancel").click()
    expect(menu.get_by_role("button", name="Rename")).to_be_visible()
    page.locator("#chatbot").click()  # a click elsewhere closes the menu
    expect(page.locator(".chat-menu")).to_have_count(0)
    listed(page, "Banana facts", "Tell me about apples")
    expect(page.locator(USER_MESSAGES)).to_have_text(["Tell me about bananas"])
    assert set(stored_ids(tmp_path)) == {apples, bananas}

    chat_menu(page, "Banana facts", "Delete")
    item_titled(page, "Banana facts").locator(".chat-menu").get_by_role("button", name="Delete").click()
    listed(page, "Tell me about apples")
    expect(page.locator(USER_MESSAGES)).to_have_count(0, timeout=WAIT)
    expect(page.locator(ANSWERS)).to_have_count(0)
    expect(page.locator(OPEN_ITEM)).to_have_count(0)
    assert stored_ids(tmp_path) == [apples]

    # The other chat is untouched and still opens.
    open_conversation(page, "Tell me about apples")
    expect(page.locator(USER_MESSAGES)).to_have_text(["Tell me about apples"], timeout=WAIT)
    expect(page.locator(ANSWERS)).to_have_text(["Apples are crunchy."])
    page.screenshot(path=str(ARTIFACTS / "conversations-after-delete.png"))


def test_export_and_import(
    request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app, tmp_path: Path
):
    """Export gives a Markdown file starting with the title and a JSON file in our format; importing that JSON adds
    a new conversation with the same messages, which opens; a file that is not JSON is refused with an
    "Import failed:" toast and adds nothing."""
    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    page = open_chat(request, serve_app(backend))
    upstream.enqueue(Reply.text(["A prince ", "avenges ", "his father."]))
    exchange(page, "Summarise Hamlet", "A prince avenges his father.")
    original = open_id(page)
    expect(page.locator("#download")).to_be_hidden()

    markdown = download(page, "Summarise Hamlet", "Export as Markdown", "Summarise-Hamlet.md", tmp_path).read_text(
        encoding="utf-8"
    )
    assert markdown.startswith("# Summarise Hamlet\n"), markdown
    assert "**You**:\n\nSummarise Hamlet" in markdown
    assert "**Assistant** (scripted/scripted-1):\n\nA prince avenges his father." in markdown

    exported = download(page, "Summarise Hamlet", "Export as JSON", "Summarise-Hamlet.json", tmp_path)
    data = json.loads(exported.read_text(encoding="utf-8"))
    assert data["format"] == "switchboard.conversation"
    assert data["id"] == original and data["title"] == "Summarise Hamlet"
    assert [(m["role"], m["text"]) for m in data["messages"]] == [
        ("user", "Summarise Hamlet"),
        ("assistant", "A prince avenges his father."),
    ]

    # Import the export: a second conversation, same title and messages, opened at once.
    upload(page, exported)
    listed(page, "Summarise Hamlet", "Summarise Hamlet")
    imported = open_id(page)
    assert imported != original
    expect(page.locator(USER_MESSAGES)).to_have_text(["Summarise Hamlet"], timeout=WAIT)
    expect(page.locator(ANSWERS)).to_have_text(["A prince avenges his father."])
    assert set(stored_ids(tmp_path)) == {original, imported}
    copy = stored(tmp_path, imported)
    assert [(m["role"], m["text"]) for m in copy["messages"]] == [(m["role"], m["text"]) for m in data["messages"]]

    # Both open from the list.
    page.locator(f"{CHAT_ITEMS}[data-id='{original}'] button.pick").click()
    expect(page.locator(f"{CHAT_ITEMS}[data-id='{original}']")).to_have_class(re.compile(r"\bopen\b"), timeout=WAIT)
    expect(page.locator(ANSWERS)).to_have_text(["A prince avenges his father."], timeout=WAIT)
    page.locator(f"{CHAT_ITEMS}[data-id='{imported}'] button.pick").click()
    expect(page.locator(f"{CHAT_ITEMS}[data-id='{imported}']")).to_have_class(re.compile(r"\bopen\b"), timeout=WAIT)
    expect(page.locator(USER_MESSAGES)).to_have_text(["Summarise Hamlet"], timeout=WAIT)
    expect(page.locator(ANSWERS)).to_have_text(["A prince avenges his father."])

    # A bad file: one clear sentence, nothing added.
    bad = tmp_path / "bad.json"
    bad.write_text("this is not JSON at all\n", encoding="utf-8")
    upload(page, bad)
    refusal = toast(page, "Import failed")
    assert refusal.inner_text().strip().startswith("Import failed:"), refusal.inner_text()
    assert "not JSON" in refusal.inner_text()
    listed(page, "Summarise Hamlet", "Summarise Hamlet")
    assert set(stored_ids(tmp_path)) == {original, imported}
    page.screenshot(path=str(ARTIFACTS / "conversations-import-failed.png"))


def test_stopped_reply_is_saved_as_stopped(
    request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app, tmp_path: Path
):
    """A reply stopped halfway is stored with the text that had arrived and status "stopped"; after a reload the
    reopened chat shows that partial text and the "■ Stopped" marker."""
    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    page = open_chat(request, serve_app(backend))
    partial = "".join(words(10))
    upstream.enqueue(Reply.text(words(400), delay=0.05, stall_after=11))  # the role chunk, then word000..word009
    send(page, "Tell me a long story.")
    expect(answer(page)).to_have_text(partial.strip(), timeout=WAIT)
    conversation_id = open_id(page)
    page.locator("#stop").click()
    expect(page.locator(THOUGHT_TITLES).last).to_have_text("■ Stopped", timeout=WAIT)
    wait_until_idle(page)

    page.reload()
    expect(page.locator(MESSAGE_BOX)).to_be_editable(timeout=WAIT)
    listed(page, "Tell me a long story.")
    open_conversation(page, "Tell me a long story.")
    expect(page.locator(USER_MESSAGES)).to_have_text(["Tell me a long story."], timeout=WAIT)
    expect(page.locator(ANSWERS)).to_have_text([partial.strip()])
    expect(page.locator(THOUGHT_TITLES)).to_have_text(["■ Stopped"])
    page.screenshot(path=str(ARTIFACTS / "conversations-stopped.png"))

    saved = stored(tmp_path, conversation_id)
    assert [(m["role"], m["status"]) for m in saved["messages"]] == [("user", "complete"), ("assistant", "stopped")]
    assert saved["messages"][1]["text"] == partial
    assert saved["messages"][1]["provider"] == "scripted" and saved["messages"][1]["model"] == "scripted-1"


def test_an_open_tab_goes_on_after_a_server_restart(
    request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app, tmp_path: Path
):
    """The server restarts (or forgets the tab's session) while the page stays open: the next message still
    continues the same conversation, with its history, in the same file."""
    config = write_config(scripted_config(upstream))
    first = serve_app(Backend(load_settings(config)))
    page = open_chat(request, first)
    upstream.enqueue(Reply.text(["Noted."]))
    exchange(page, "My name is Ada.", "Noted.")
    conversation_id = open_id(page)

    serve_app.close_all()
    port = int(first.rstrip("/").rsplit(":", 1)[1])
    serve_app(Backend(load_settings(config)), port=port)  # the same address: the open page talks to it

    upstream.enqueue(Reply.text(["Your ", "name ", "is ", "Ada."]))
    exchange(page, "What is my name?", "Your name is Ada.")
    assert [m["content"] for m in sent_messages(upstream.chat_requests()[-1])] == [
        "My name is Ada.",
        "Noted.",
        "What is my name?",
    ]
    assert stored_ids(tmp_path) == [conversation_id]
    assert [m["text"] for m in stored(tmp_path, conversation_id)["messages"]] == [
        "My name is Ada.",
        "Noted.",
        "What is my name?",
        "Your name is Ada.",
    ]


# --- regressions ---------------------------------------------------------------------------------------------------

FIX_WAIT = 5_000  # ms: what the app shows at once


def test_failed_import_keeps_list_and_chat_in_view(
    request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app, tmp_path: Path
):
    """A refused import is said in a toast only: the chat list and the open chat stay in view, with no error
    badge over them."""
    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    page = open_chat(request, serve_app(backend))
    exchange(page, "Keep me in view", "Hello from the scripted upstream.")
    bad = tmp_path / "bad.json"
    bad.write_text("not JSON\n", encoding="utf-8")
    upload(page, bad)
    toast(page, "Import failed:")
    listed(page, "Keep me in view")
    for output in ("#chat-list", "#chatbot"):
        expect(page.locator(output)).not_to_contain_text("Error", use_inner_text=True, timeout=FIX_WAIT)


def test_delete_confirmation_does_not_follow_to_another_chat(
    request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app, tmp_path: Path
):
    """A pending "Delete this chat?" is about the chat whose menu asked it: opening another chat closes it, so
    one click cannot delete a chat nobody asked to delete; deleting a chat that is not open leaves the open one
    on show."""
    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    page = open_chat(request, serve_app(backend))
    exchange(page, "First chat", "Hello from the scripted upstream.")
    start_new_chat(page)
    exchange(page, "Second chat", "Hello from the scripted upstream.")
    listed(page, "Second chat", "First chat")
    chat_menu(page, "First chat", "Delete")
    expect(page.locator(".chat-menu")).to_contain_text("Delete this chat?")
    open_conversation(page, "Second chat")  # changed their mind: look at a chat instead
    expect(page.locator(".chat-menu")).to_have_count(0, timeout=FIX_WAIT)
    open_conversation(page, "First chat")
    expect(page.locator(USER_MESSAGES)).to_have_text(["First chat"], timeout=WAIT)
    listed(page, "Second chat", "First chat")
    assert len(stored_ids(tmp_path)) == 2

    chat_menu(page, "Second chat", "Delete")
    page.locator(".chat-menu").get_by_role("button", name="Delete").click()
    listed(page, "First chat")
    expect(page.locator(USER_MESSAGES)).to_have_text(["First chat"])  # the open chat stays on show
    assert open_id(page) in stored_ids(tmp_path) and len(stored_ids(tmp_path)) == 1


def test_search_filter_holds_while_chatting(
    request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app
):
    """The list always matches the search box: a reply (which refreshes the list) keeps it filtered."""
    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    page = open_chat(request, serve_app(backend))
    exchange(page, "Tell me about apples", "Hello from the scripted upstream.")
    start_new_chat(page)
    exchange(page, "Tell me about bananas", "Hello from the scripted upstream.")
    page.locator(SEARCH_BOX).fill("bananas")
    listed(page, "Tell me about bananas")
    exchange(page, "More about bananas", "Hello from the scripted upstream.")
    expect(page.locator(SEARCH_BOX)).to_have_value("bananas")
    expect(page.locator(f"{CHAT_ITEMS} button.pick")).to_have_text(["Tell me about bananas"], timeout=FIX_WAIT)
    assert open_id(page)  # the open chat matches the filter and stays marked
    page.locator(SEARCH_BOX).fill("")
    listed(page, "Tell me about bananas", "Tell me about apples")


def test_clearing_the_chat_starts_a_new_one(
    request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app, tmp_path: Path
):
    """The Chatbot's trash button: the page starts a new chat, the next message goes to the model without the
    cleared turns (what the page shows is what the model gets), and the old chat stays in the list, whole."""
    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    page = open_chat(request, serve_app(backend))
    upstream.enqueue(Reply.text(["Noted."]), Reply.text(["I do not know."]))
    exchange(page, "My number is 42.", "Noted.")
    first = open_id(page)
    page.locator("#chatbot").get_by_role("button", name=re.compile("clear", re.I)).first.click()
    expect(page.locator(USER_MESSAGES)).to_have_count(0, timeout=WAIT)
    exchange(page, "What is my number?", "I do not know.")
    assert [m["content"] for m in sent_messages(upstream.chat_requests()[-1])] == ["What is my number?"]
    listed(page, "What is my number?", "My number is 42.")
    assert open_id(page) != first
    assert [m["text"] for m in stored(tmp_path, first)["messages"]] == ["My number is 42.", "Noted."]
