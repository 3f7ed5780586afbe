"""The conversation store: round-trips, crash safety, search at 1,000 conversations, export/import, owners apart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from backend.conversations import (
    Conversation,
    ConversationError,
    FileConversationStore,
    StoredMessage,
    parse_import,
)


def sample(text: str = "How do tides work?") -> Conversation:
    conversation = Conversation(
        model="cloud/seer",
        settings={"system_prompt": "Be brief.", "temperature": 0.3},
        messages=[
            StoredMessage(role="user", text=text),
            StoredMessage(
                role="assistant",
                text="The Moon's gravity pulls the oceans.",
                reasoning="Think about gravity.",
                provider="cloud",
                model="seer",
                first_token_seconds=0.21,
                seconds=1.5,
                prompt_tokens=12,
                completion_tokens=9,
            ),
            StoredMessage(role="user", text="And the Sun?"),
            StoredMessage(role="assistant", text="It adds a smaller pu", status="stopped"),
        ],
    )
    conversation.auto_title()
    return conversation


@pytest.fixture
def store(tmp_path):
    return FileConversationStore(tmp_path / "conversations")


async def test_round_trip_keeps_everything(store, tmp_path):
    conversation = sample()
    await store.save("alice", conversation)
    again = await FileConversationStore(tmp_path / "conversations").get("alice", conversation.id)  # fresh process
    assert again == conversation
    assert again.title == "How do tides work?"
    assert again.messages[3].status == "stopped" and again.messages[3].text == "It adds a smaller pu"


async def test_images_by_reference(store):
    reference = await store.save_image("alice", b"\x89PNG fake bytes", "image/png")
    assert store.image_path("alice", reference).read_bytes() == b"\x89PNG fake bytes"
    assert await store.save_image("alice", b"\x89PNG fake bytes", "image/png") == reference  # stored once
    with pytest.raises(ConversationError):
        store.image_path("alice", "../../etc/passwd")


async def test_list_is_newest_first_and_delete(store):
    first, second = sample("first"), sample("second")
    await store.save("alice", first)
    await store.save("alice", second)
    assert [s.title for s in await store.list("alice")] == ["second", "first"]
    await store.delete("alice", second.id)
    assert [s.title for s in await store.list("alice")] == ["first"]
    with pytest.raises(ConversationError):
        await store.get("alice", second.id)


async def test_owners_never_see_each_other(store):
    mine = sample("alice's secret plan")
    await store.save("alice", mine)
    assert await store.list("bob") == []
    assert await store.list("bob", "secret") == []
    with pytest.raises(ConversationError, match="does not exist"):
        await store.get("bob", mine.id)
    with pytest.raises(ConversationError):
        await store.delete("bob", mine.id)
    with pytest.raises(ConversationError):
        await store.get("bob", "../" + mine.id)
    assert [s.id for s in await store.list("alice")] == [mine.id]


async def test_search_over_a_thousand_conversations(store, tmp_path):
    for number in range(1000):
        words = "needle in the haystack" if number == 617 else f"ordinary chat number {number}"
        conversation = Conversation(title=f"Chat {number}", messages=[StoredMessage(role="user", text=words)])
        await store.save("alice", conversation)
    fresh = FileConversationStore(tmp_path / "conversations")  # loads the index from disk
    start = time.perf_counter()
    found = await fresh.list("alice", "NEEDLE haystack")
    searches = [await fresh.list("alice", f"number {n}") for n in range(20)]
    elapsed = time.perf_counter() - start
    assert [s.title for s in found] == ["Chat 617"]
    assert len(await fresh.list("alice", "chat")) == 1000
    assert all(len(result) >= 1 for result in searches)
    print(f"index load + 21 searches over 1,000 conversations: {elapsed * 1000:.0f} ms")


CRASHER = textwrap.dedent(
    """
    import asyncio, sys
    from backend.conversations import Conversation, FileConversationStore, StoredMessage

    async def main(root):
        store = FileConversationStore(root)
        conversations = [Conversation(title=f"c{i}") for i in range(5)]
        n = 0
        print("ready", flush=True)
        while True:
            for conversation in conversations:
                n += 1
                conversation.messages.append(StoredMessage(role="user", text="x" * 5000 + str(n)))
                await store.save("alice", conversation)

    asyncio.run(main(sys.argv[1]))
    """
)


def test_killed_during_writes_every_conversation_still_loads(tmp_path):
    root = tmp_path / "conversations"
    for attempt in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-c", CRASHER, str(root)], stdout=subprocess.PIPE, cwd=str(tmp_path.parent)
        )
        assert writer.stdout.readline().strip() == b"ready"
        time.sleep(0.2 + attempt * 0.13)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    import asyncio

    store = FileConversationStore(root)
    summaries = asyncio.run(store.list("alice"))
    assert len(summaries) == 25  # five runs, five conversations each
    for summary in summaries:
        conversation = asyncio.run(store.get("alice", summary.id))
        assert conversation.messages  # every file parses, with what its last complete save held


async def test_a_damaged_file_hides_nothing_else(store, tmp_path, caplog):
    kept = sample("still here")
    await store.save("alice", kept)
    folder = next((tmp_path / "conversations").iterdir())
    (folder / "0123456789abcdef.json").write_text('{"id": "0123456789abcdef", "messages": [', encoding="utf-8")
    fresh = FileConversationStore(tmp_path / "conversations")
    assert [s.id for s in await fresh.list("alice")] == [kept.id]
    assert "skipping unreadable conversation" in caplog.text
    with pytest.raises(ConversationError, match="does not exist"):
        await fresh.get("alice", "0123456789abcdef")


def test_markdown_export():
    markdown = sample().to_markdown()
    assert markdown.startswith("# How do tides work?\n")
    assert "**Assistant** (cloud/seer):" in markdown
    assert "> Think about gravity." in markdown
    assert "*(stopped)*" in markdown


def test_json_export_import_round_trip():
    original = sample()
    exported = json.dumps(original.to_export()).encode()
    imported = parse_import(exported)
    assert imported.id != original.id
    assert imported.messages == original.messages and imported.title == original.title
    assert imported.settings == original.settings


def test_import_openai_messages():
    data = {
        "messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
            {"role": "assistant", "content": "Hi!"},
        ]
    }
    imported = parse_import(json.dumps(data).encode())
    assert [(m.role, m.text) for m in imported.messages] == [
        ("system", "Be kind."),
        ("user", "Hello"),
        ("assistant", "Hi!"),
    ]
    assert imported.title == "Hello"
    bare = parse_import(json.dumps(data["messages"]).encode())
    assert [(m.role, m.text) for m in bare.messages] == [(m.role, m.text) for m in imported.messages]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x89PNG not json", "not JSON"),
        (b'{"hello": 1}', 'no "messages" list'),
        (b'{"messages": [{"role": "wizard", "content": "x"}]}', 'needs a "role"'),
        (b'{"messages": [{"role": "user", "content": 5}]}', 'needs a text "content"'),
        (b'{"format": "switchboard.conversation", "messages": [{"role": "user", "status": "??"}]}', "not a valid"),
    ],
)
def test_bad_imports_are_refused_clearly(data, expected):
    with pytest.raises(ConversationError, match=expected) as caught:
        parse_import(data)
    assert "\n" not in str(caught.value)
