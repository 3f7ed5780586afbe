"""The conversation store, on SQLite and on a real PostgreSQL: round trips, revisions, owners apart through every
method, ranked search over 1,000 conversations, crash safety, damaged and newer databases, the one-time import
of JSON conversations, and export/import."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from backend import ConfigError
from backend.conversations import (
    Conversation,
    ConversationError,
    Preset,
    StaleConversationError,
    StoredMessage,
    parse_import,
)
from backend.conversations.media_files import owner_folder
from backend.store import SQLStore


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


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path) -> tuple[str, str | None]:
    """The store's database URL and password: an SQLite file, or a fresh database of a throwaway PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'switchboard.db'}", None
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def opened(engine, tmp_path):
    """Open a store on the test's database, as a fresh process would (call it again for another process)."""

    def open_store() -> SQLStore:
        url, password = engine
        return SQLStore(url, tmp_path, password=password)

    return open_store


@pytest.fixture
async def database(opened):
    """The test's store, closed after it."""
    store = opened()
    yield store
    await store.aclose()


@pytest.fixture
def store(database):
    return database.conversations


@pytest.fixture
def presets(database):
    return database.presets


async def test_round_trip_keeps_everything(store, opened):
    conversation = sample()
    await store.save("alice", conversation)
    again = await opened().conversations.get("alice", conversation.id)  # another process
    assert again.model_dump(exclude={"updated"}) == conversation.model_dump(exclude={"updated"})
    assert again.revision == 1


async def test_images_by_reference(store):
    reference = await store.save_image("alice", b"\x89PNG fake bytes", "image/png")
    assert store.image_path("alice", reference).read_bytes() == b"\x89PNG fake bytes"
    assert (await store.load_image("alice", reference)).data == b"\x89PNG fake bytes"
    assert await store.save_image("alice", b"\x89PNG fake bytes", "image/png") == reference  # stored once
    with pytest.raises(ConversationError):
        store.image_path("alice", "../../etc/passwd")
    with pytest.raises(ConversationError, match="missing"):
        await store.load_image("bob", reference)  # another owner's folder holds nothing of Alice's


async def test_list_is_newest_first_and_delete(store):
    first, second = Conversation(title="first"), Conversation(title="second")
    await store.save("alice", first)
    await store.save("alice", second)
    assert [s.title for s in await store.list("alice")] == ["second", "first"]
    assert [s.title for s in await store.list("alice", limit=1)] == ["second"]
    first.title = "first, renamed"  # a rename keeps the chat's place and date
    await store.save("alice", first, touch=False)
    assert [s.title for s in await store.list("alice")] == ["second", "first, renamed"]
    assert (await store.get("alice", first.id)).updated == first.updated
    await store.save("alice", first)  # any other save dates it now: first in the list
    assert [s.title for s in await store.list("alice")] == ["first, renamed", "second"]
    await store.delete("alice", second.id)
    assert [s.title for s in await store.list("alice")] == ["first, renamed"]
    with pytest.raises(ConversationError):
        await store.get("alice", second.id)


async def test_a_stale_write_is_refused_and_changes_nothing(store):
    """Two copies read at the same revision (two tabs): the first save wins, the second is refused with a typed
    error and writes nothing; read again, the change applies."""
    await store.save("alice", sample())
    [summary] = await store.list("alice")
    tab_a, tab_b = await store.get("alice", summary.id), await store.get("alice", summary.id)
    tab_a.add(StoredMessage(role="user", text="from tab A"))
    await store.save("alice", tab_a)
    assert tab_a.revision == 2
    tab_b.add(StoredMessage(role="user", text="from tab B"))
    with pytest.raises(StaleConversationError, match="changed elsewhere"):
        await store.save("alice", tab_b)
    assert tab_b.revision == 1
    assert (await store.get("alice", summary.id)).messages[-1].text == "from tab A"
    fresh = await store.get("alice", summary.id)
    fresh.add(StoredMessage(role="user", text="from tab B"))
    await store.save("alice", fresh)
    assert [m.text for m in (await store.get("alice", summary.id)).messages][-2:] == ["from tab A", "from tab B"]
    twin = Conversation(id=summary.id, title="a new one with a taken id")
    with pytest.raises(StaleConversationError):
        await store.save("alice", twin)


async def test_owners_never_see_each_other_through_any_method(store, presets):
    """Bob, with Alice's ids, through every method of the store: nothing of hers is read, changed or removed."""
    mine = sample("alice's secret plan")
    await store.save("alice", mine)
    image = await store.save_image("alice", b"\x89PNG alice", "image/png")
    assert await store.list("bob") == []
    assert await store.list("bob", "secret") == []
    with pytest.raises(ConversationError):
        await store.get("bob", mine.id)
    with pytest.raises(ConversationError):
        await store.delete("bob", mine.id)
    with pytest.raises(ConversationError):
        await store.get("bob", "../" + mine.id)
    with pytest.raises(ConversationError):
        await store.load_image("bob", image)
    assert store.image_path("bob", image) != store.image_path("alice", image)
    forged = mine.model_copy(deep=True)
    forged.nodes, forged.leaf = [StoredMessage(role="user", text="bob was here")], 0
    with pytest.raises(StaleConversationError):  # an update of a conversation Bob does not have
        await store.save("bob", forged)
    await presets.save("alice", Preset(name="Lawyer", text="alice's secret instructions"))
    assert await presets.list("bob") == []
    with pytest.raises(ConversationError):
        await presets.delete("bob", "Lawyer")
    await presets.save("bob", Preset(name="Lawyer", text="bob's own"))  # the same name: his own preset
    assert [p.text for p in await presets.list("alice")] == ["alice's secret instructions"]
    forged.revision = 0
    await store.save("bob", forged)  # a new conversation of Bob's own, whatever its id
    assert (await store.get("alice", mine.id)).messages == mine.messages
    assert [s.id for s in await store.list("alice")] == [mine.id]
    assert [m.text for m in (await store.get("bob", mine.id)).messages] == ["bob was here"]


async def test_search_is_ranked_with_a_snippet_over_a_thousand_conversations(store, opened):
    for number in range(1000):
        conversation = sample(f"Chat {number} about tides")
        conversation.title = f"Chat {number}"
        if number == 617:
            conversation.add(StoredMessage(role="user", text="The zebra crossing near the harbour"))
        if number == 618:
            conversation.add(StoredMessage(role="user", text="zebras zebras zebra zebra stripes"))
        await store.save("alice", conversation)
    fresh = opened()
    started = time.perf_counter()
    found = await fresh.conversations.list("alice", "zebra")
    searches = [await fresh.conversations.list("alice", f"chat {n}") for n in range(0, 1000, 50)]
    elapsed = time.perf_counter() - started
    assert {s.title for s in found} == {"Chat 617", "Chat 618"}
    assert found[0].title == "Chat 618"  # the better match first
    assert "zebra" in found[1].snippet.lower() and "harbour" in found[1].snippet
    assert len(await fresh.conversations.list("alice", "Crossing HARBOUR")) == 1  # case aside, every word
    assert await fresh.conversations.list("alice", "zebra walrus") == []
    assert len(await fresh.conversations.list("alice")) == 1000
    assert all(len(result) >= 1 for result in searches)
    assert await fresh.conversations.list("alice", "\"*?:()^-'; DROP") == []  # no syntax reaches the engine
    await fresh.aclose()
    print(f"21 searches over 1,000 conversations: {elapsed * 1000:.0f} ms")


async def test_a_question_joins_the_search_with_its_reply(store):
    """Sending saves the question and an empty reply without touching the search index (that save is what a page
    waits on); the question becomes searchable with the reply's end, once however many replies it gets."""
    chat = Conversation(title="Sea life")
    chat.add(StoredMessage(role="user", text="Where do narwhals live?"))
    first = chat.add(StoredMessage(role="assistant", status="streaming"))
    await store.save("alice", chat)
    assert await store.list("alice", "narwhals") == []
    assert [s.title for s in await store.list("alice", "sea")] == ["Sea life"]
    await store.finish_reply("alice", chat.id, first, StoredMessage(role="assistant", text="In Arctic waters."))
    [found] = await store.list("alice", "narwhals arctic")
    assert "narwhals" in found.snippet or "Arctic" in found.snippet
    again = await store.get("alice", chat.id)
    retry = again.add(StoredMessage(role="assistant", status="streaming"), after=0)
    await store.save("alice", again)  # a second reply to the same question: the question stays found
    assert [s.id for s in await store.list("alice", "narwhals")] == [chat.id]
    await store.finish_reply("alice", chat.id, retry, StoredMessage(role="assistant", text="Near Greenland."))
    assert [s.id for s in await store.list("alice", "narwhals greenland arctic")] == [chat.id]
    follow_up = await store.get("alice", chat.id)
    follow_up.add(StoredMessage(role="user", text="And belugas?"))
    await store.save("alice", follow_up)  # a question that gets no reply is searchable as it is saved
    assert [s.id for s in await store.list("alice", "belugas")] == [chat.id]


async def test_presets_are_saved_replaced_listed_and_deleted(presets, opened):
    await presets.save("alice", Preset(name="  Terse   reviewer ", text="Answer in one line."))
    await presets.save("alice", Preset(name="author", text="Write like a novelist."))
    await presets.save("alice", Preset(name="terse REVIEWER", text="Answer in one word."))  # replaces it
    again = opened()  # another process sees them
    assert [(p.name, p.text) for p in await again.presets.list("alice")] == [
        ("author", "Write like a novelist."),
        ("terse REVIEWER", "Answer in one word."),
    ]
    await again.presets.delete("alice", "author")
    with pytest.raises(ConversationError, match="no preset of that name"):
        await again.presets.delete("alice", "author")
    assert [p.name for p in await presets.list("alice")] == ["terse REVIEWER"]
    for number in range(99):
        await presets.save("alice", Preset(name=f"p{number}", text="x"))
    with pytest.raises(ConversationError, match="100 presets"):
        await presets.save("alice", Preset(name="one too many", text="x"))
    await presets.save("alice", Preset(name="P0", text="replacing one is fine"))
    await again.aclose()
    with pytest.raises(ValueError):
        Preset(name="   ", text="x")
    with pytest.raises(ValueError):
        Preset(name="n" * 81, text="x")


CRASHER = textwrap.dedent(
    """
    import asyncio, sys
    from backend.conversations import Conversation, StoredMessage
    from backend.store import SQLStore

    async def main(url, password, root):
        store = SQLStore(url, root, password=password or None)
        conversations = [Conversation(title=f"c{i}") for i in range(5)]
        n = 0
        await store.open()
        print("ready", flush=True)
        while True:
            for conversation in conversations:
                n += 1
                conversation.add(StoredMessage(role="user", text="x" * 5000 + str(n)))
                await store.conversations.save("alice", conversation)

    asyncio.run(main(*sys.argv[1:]))
    """
)


def test_killed_during_writes_every_conversation_still_loads(engine, opened, tmp_path):
    url, password = engine
    for attempt in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-c", CRASHER, url, password or "", str(tmp_path)],
            stdout=subprocess.PIPE,
            cwd=str(tmp_path.parent),
        )
        assert writer.stdout.readline().strip() == b"ready"
        time.sleep(0.2 + attempt * 0.13)
        writer.send_signal(signal.SIGKILL)
        writer.wait()

    async def check() -> None:
        store = opened()
        summaries = await store.conversations.list("alice")
        assert len(summaries) == 25  # five runs, five conversations each
        for summary in summaries:
            conversation = await store.conversations.get("alice", summary.id)
            assert conversation.messages  # what its last committed save held
            assert len(conversation.messages) == conversation.revision  # one message per committed save
        await store.aclose()

    asyncio.run(check())


def test_a_damaged_database_is_one_sentence_at_start_up(tmp_path):
    (tmp_path / "switchboard.db").write_bytes(b"this is not a database at all" * 100)
    store = SQLStore.for_settings(tmp_path)
    with pytest.raises(ConfigError, match=r"^store: .*switchboard\.db is damaged") as caught:
        asyncio.run(store.open())
    assert "\n" not in str(caught.value)


def test_a_database_another_program_keeps_locked_is_one_sentence_at_start_up(tmp_path):
    """Another program holds the write lock past the store's wait (10 s): start-up stops with one sentence."""
    import sqlite3

    async def create() -> None:
        store = SQLStore.for_settings(tmp_path)
        await store.open()
        await store.aclose()

    asyncio.run(create())
    other = sqlite3.connect(tmp_path / "switchboard.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(ConfigError, match=r"^store: .*switchboard\.db is locked by another program") as caught:
            asyncio.run(SQLStore.for_settings(tmp_path).open())
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert "\n" not in str(caught.value)


def test_a_database_from_a_newer_version_is_refused(tmp_path):
    async def run() -> None:
        store = SQLStore.for_settings(tmp_path)
        await store.open()
        await store.aclose()
        import sqlite3

        with sqlite3.connect(tmp_path / "switchboard.db") as raw:
            raw.execute("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(ConfigError, match="written by a newer Switchboard"):
            await SQLStore.for_settings(tmp_path).open()

    asyncio.run(run())


async def test_json_conversations_of_an_earlier_version_are_imported_once(opened, tmp_path, caplog):
    """Files as the JSON store wrote them, one folder per owner: imported on the owner's first visit, with their
    ids, kept on disk as they were; a second process imports nothing again."""
    caplog.set_level(logging.INFO)
    old = [sample("first old chat"), sample("second old chat")]
    folder = tmp_path / "conversations" / owner_folder("alice")
    folder.mkdir(parents=True)
    for conversation in old:
        (folder / f"{conversation.id}.json").write_text(conversation.model_dump_json(exclude={"revision"}))
    (folder / "0123456789abcdef.json").write_text("{broken")
    before = sorted(path.read_bytes() for path in folder.iterdir())

    store = opened()
    await store.open(["alice"])  # at start-up, for the owners known then
    assert "imported 2 conversation(s) of 'alice'" in caplog.text
    assert {s.id for s in await store.conversations.list("alice")} == {c.id for c in old}
    assert (await store.conversations.get("alice", old[0].id)).messages == old[0].messages
    assert await store.conversations.list("bob") == []
    await store.aclose()
    again = opened()
    assert len(await again.conversations.list("alice")) == 2
    assert caplog.text.count("imported 2 conversation(s)") == 1
    assert sorted(path.read_bytes() for path in folder.iterdir()) == before  # the files are left as they were
    await again.aclose()


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


def test_an_unreachable_database_is_one_sentence(tmp_path):
    store = SQLStore("postgresql+asyncpg://switchboard@127.0.0.1:9/none", tmp_path, password="pw")
    with pytest.raises(ConfigError, match=r"^store: cannot use the database at postgresql\+asyncpg://") as caught:
        asyncio.run(store.open())
    assert "pw" not in str(caught.value) and "\n" not in str(caught.value)


def test_the_app_stops_at_start_up_on_a_damaged_database(tmp_path, write_config, capsys):
    from webui.cli import main

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "switchboard.db").write_bytes(b"not a database" * 100)
    provider = '[providers.x]\nkind = "openai"\nbase_url = "http://127.0.0.1:9"\nmodels = ["m"]\n'
    config = write_config("[app]\nembedded_model = false\n" + provider)
    assert main(["--config", str(config), "--port", "9"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("switchboard: store: ") and "is damaged" in error and "\n" not in error


async def test_generated_images_details_are_rows_and_earlier_json_details_are_imported(database, tmp_path):
    """Generated images keep their details (prompt, model, size, seed) as rows referencing the files; the JSON
    files an earlier version wrote beside its images are imported once, and left as they were."""
    from backend.providers.base import GeneratedImage
    from backend.request import ImageRequest
    from backend.services.image_store import ImageStore

    images = ImageStore(tmp_path / "images", database.images)
    folder = images.folder("alice")
    folder.mkdir(parents=True)
    (folder / "20250101-000000-000000000-abc123.png").write_bytes(b"\x89PNG old")
    old = {
        "path": str(folder / "20250101-000000-000000000-abc123.png"),
        "prompt": "an old fox",
        "model": "a/b",
        "size": "512x512",
        "negative_prompt": None,
        "seed": 7,
        "revised_prompt": None,
        "created": 1735689600.0,
    }
    (folder / "20250101-000000-000000000-abc123.json").write_text(json.dumps(old))
    saved = await images.save(
        GeneratedImage(b"\x89PNG new"), ImageRequest(model="a/b", prompt="a new fox"), "a/b", "alice"
    )
    history = await images.history("alice")
    assert [(image.prompt, image.seed) for image in history] == [("a new fox", None), ("an old fox", 7)]
    assert history[0].path == saved.path and history[1].created == 1735689600.0
    assert not saved.path.with_suffix(".json").exists()  # details live in the database now
    assert await images.history("bob") == []
    assert len(await ImageStore(tmp_path / "images", database.images).history("alice")) == 2  # imported once, not twice


async def test_the_first_calls_arriving_together_all_succeed(opened, tmp_path):
    """A fresh database and a new owner with JSON conversations of an earlier version: twenty calls at once (two
    tabs opening, a page and the API) wait for one migration and one import, and none fails."""
    folder = tmp_path / "conversations" / owner_folder("carol")
    folder.mkdir(parents=True)
    old = sample("an old chat")
    (folder / f"{old.id}.json").write_text(old.model_dump_json(exclude={"revision"}))
    store = opened()
    results = await asyncio.gather(
        *(store.conversations.list("carol") for _ in range(10)),
        *(store.conversations.save("dan", sample()) for _ in range(10)),
    )
    assert all([s.id for s in listing] == [old.id] for listing in results[:10])
    assert len(await store.conversations.list("dan")) == 10
    await store.aclose()


async def test_saves_that_change_part_of_a_conversation_store_exactly_that(store, opened):
    """A changed reply, a new turn, an undo, an edit (a version), a switch between versions, a title change: each
    save writes only what changed, and another process reads exactly the conversation as saved (search included;
    undone and edited turns stay as versions, so they are still found)."""
    conversation = sample()
    await store.save("alice", conversation)
    steps = [
        lambda c: c.messages[-1].__setattr__("text", c.messages[-1].text + "ll of the Sun"),  # a checkpoint
        lambda c: c.add(StoredMessage(role="user", text="What about walruses?")),
        lambda c: c.cut_after(c.branch[1]),  # undo back to the first exchange
        lambda c: c.add(StoredMessage(role="user", text="How do tides really work?"), after=None),  # an edit
        lambda c: c.show(0),  # back to the first version
        lambda c: c.__setattr__("title", "Tides"),
    ]
    for step in steps:
        step(conversation)
        await store.save("alice", conversation)
        other = opened()
        again = await other.conversations.get("alice", conversation.id)
        assert [(m.role, m.text) for m in again.messages] == [(m.role, m.text) for m in conversation.messages]
        assert [(m.parent, m.text) for m in again.nodes] == [(m.parent, m.text) for m in conversation.nodes]
        assert again.title == conversation.title and again.revision == conversation.revision
        await other.aclose()
    assert conversation.messages[0].text == "How do tides work?"
    assert [s.id for s in await store.list("alice", "really")] == [conversation.id]
    assert [s.id for s in await store.list("alice", "walruses")] == [conversation.id]  # a version, still there


def test_the_json_export_keeps_every_version_and_the_markdown_the_branch_on_show():
    """Export writes the whole tree (JSON) and the visible branch (Markdown); importing our JSON restores the tree
    and the branch on show; an export of the earlier format (a flat list of messages) still loads."""
    conversation = Conversation(title="Numbers")
    question = conversation.add(StoredMessage(role="user", text="Pick a number."))
    conversation.add(StoredMessage(role="assistant", text="Seven."))
    conversation.add(StoredMessage(role="assistant", text="Eight."), after=question)  # regenerated
    conversation.add(StoredMessage(role="user", text="Double it."))
    conversation.add(StoredMessage(role="assistant", text="Sixteen."))
    conversation.show(1)  # back to the first answer, which has no continuation
    assert [m.text for m in conversation.messages] == ["Pick a number.", "Seven."]
    exported = json.dumps(conversation.to_export()).encode()
    markdown = conversation.to_markdown()
    assert "Seven." in markdown and "Eight." not in markdown and "Sixteen." not in markdown
    again = parse_import(exported)
    assert [(m.parent, m.text) for m in again.nodes] == [(m.parent, m.text) for m in conversation.nodes]
    assert again.leaf == conversation.leaf and again.id != conversation.id
    again.show(2)
    assert [m.text for m in again.messages] == ["Pick a number.", "Eight.", "Double it.", "Sixteen."]
    older = {
        "format": "switchboard.conversation",
        "version": 1,
        "title": "Old",
        "messages": [{"role": "user", "text": "Hi"}, {"role": "assistant", "text": "Hello"}],
    }
    flat = parse_import(json.dumps(older).encode())
    assert [(m.parent, m.text) for m in flat.nodes] == [(None, "Hi"), (0, "Hello")] and flat.leaf == 1
    # A tree that points forward (a cycle, or a message following one not yet written) is refused.
    broken = {**conversation.to_export(), "nodes": [{"role": "user", "text": "a", "parent": 1}, {"role": "user"}]}
    with pytest.raises(ConversationError, match="not a valid conversation"):
        parse_import(json.dumps(broken).encode())


def test_the_versions_picker_marks_every_version_on_show():
    """An edited question and a retried answer both have versions; the picker can tick one, so each version on
    show says so in its label."""
    from webui.chat.history import version_choices

    chat = Conversation()
    first = chat.add(StoredMessage(role="user", text="Pick a number."))
    chat.add(StoredMessage(role="assistant", text="Seven."))
    chat.add(StoredMessage(role="assistant", text="Eight."), after=first)  # retried
    chat.add(StoredMessage(role="user", text="Pick a big number."), after=None)  # the question, edited
    chat.add(StoredMessage(role="assistant", text="Forty-two."))
    chat.show(first + 1)  # the first question with its first answer
    labels = [label for label, _ in version_choices(chat)]
    assert [label for label in labels if label.endswith(" · on show")] == [
        "Question 1 · 1/2 · Pick a number. · on show",
        "Answer 1 · 1/2 · Seven. · on show",
    ]
    assert "Question 1 · 2/2 · Pick a big number." in labels and "Answer 1 · 2/2 · Eight." in labels


async def test_a_new_chat_and_a_message_sent_are_each_saved_by_one_statement_on_postgresql(postgres_url, tmp_path):
    """A new chat's first save (the question and the reply being generated) is one statement on PostgreSQL, run
    outside a transaction: one round trip where it took five; so is a save that only adds messages (the next
    question and its reply). All of it lands: the messages, the replies registered as running; an id that is taken
    is still refused as stale, and so is an addition to a revision another tab moved on from, writing nothing."""
    from sqlalchemy import Engine, event

    url, password = postgres_url
    store = SQLStore(url, tmp_path, password=password)
    await store.conversations.list("alice")  # the schema and the owner's one-time import of JSON files come first
    statements: list[str] = []

    def executed(_connection, _cursor, statement, *_rest) -> None:
        if "search_vector IS NULL LIMIT" not in statement:  # (a store's indexer, on its own timer: not the save's)
            statements.append(statement)

    async def saved_by(conversation: Conversation, by: SQLStore = store) -> list[str]:
        statements.clear()
        event.listen(Engine, "before_cursor_execute", executed)
        try:
            await by.conversations.save("alice", conversation)
        finally:
            event.remove(Engine, "before_cursor_execute", executed)
        return list(statements)

    def ask(conversation: Conversation, question: str) -> None:
        conversation.add(StoredMessage(role="user", text=question))
        conversation.add(StoredMessage(role="assistant", status="streaming"))

    conversation = Conversation()
    ask(conversation, "Why is the sky blue?")
    assert len(await saved_by(conversation)) == 1, statements
    stored = await store.conversations.get("alice", conversation.id)
    assert [(m.role, m.text, m.status, m.parent) for m in stored.nodes] == [
        ("user", "Why is the sky blue?", "complete", None),
        ("assistant", "", "streaming", 0),
    ]
    assert [row[:3] for row in await store.conversations.running_replies()] == [("alice", conversation.id, 1)]
    with pytest.raises(StaleConversationError):
        await store.conversations.save(
            "alice", Conversation(id=conversation.id, messages=[StoredMessage(role="user", text="x")])
        )

    await store.conversations.finish_reply(
        "alice", conversation.id, 1, StoredMessage(role="assistant", text="Scattering.", parent=0)
    )
    other_tab = await store.conversations.get("alice", conversation.id)
    elsewhere = SQLStore(url, tmp_path, password=password)  # another app process
    this_tab = await elsewhere.conversations.get("alice", conversation.id)
    ask(this_tab, "And sunsets?")
    assert len(await saved_by(this_tab, elsewhere)) == 1, statements
    await elsewhere.aclose()
    ask(other_tab, "Is that all?")
    with pytest.raises(StaleConversationError):
        await store.conversations.save("alice", other_tab)  # one statement too, which finds the revision moved on
    stored = await store.conversations.get("alice", conversation.id)
    assert [(m.role, m.text, m.status, m.parent) for m in stored.nodes] == [
        ("user", "Why is the sky blue?", "complete", None),
        ("assistant", "Scattering.", "complete", 0),
        ("user", "And sunsets?", "complete", 1),
        ("assistant", "", "streaming", 2),
    ]
    assert stored.revision == this_tab.revision and stored.leaf == 3
    assert [row[:3] for row in await store.conversations.running_replies()] == [("alice", conversation.id, 3)]
    await store.aclose()


async def test_postgresql_indexes_a_new_chat_after_its_write_and_search_finds_it_meanwhile(
    postgres_url, tmp_path, monkeypatch
):
    """PostgreSQL writes a new conversation without its search vector (making 6 KB of text a vector was half of
    an import's write): search finds it from the moment it is written all the same, with its snippet; a text that
    changes gets its vector in the same statement (never a stale one); the store computes the missing ones once
    writes pause, and those a stopped process left are done by the next process's first round."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    import backend.store.postgres as sql

    url, password = postgres_url
    database = create_async_engine(url, connect_args={"password": password})

    async def indexed(conversation_id: str) -> bool:
        statement = text("SELECT search_vector IS NOT NULL FROM conversations WHERE id = :id")
        async with database.connect() as connection:
            return bool(await connection.scalar(statement, {"id": conversation_id}))

    async def indexed_soon(conversation_id: str) -> bool:
        for _ in range(200):
            if await indexed(conversation_id):
                return True
            await asyncio.sleep(0.05)
        return False

    monkeypatch.setattr(sql, "INDEX_QUIET", 600.0)  # this process stops before its round
    monkeypatch.setattr(sql, "INDEX_WITHIN", 600.0)
    first = SQLStore(url, tmp_path, password=password)
    tides = sample("How do tides work near a xylophonist's harbour?")
    await first.conversations.save("alice", tides)
    assert not await indexed(tides.id)
    found = await first.conversations.list("alice", "xylophon")
    assert [(hit.id, "xylophonist" in hit.snippet) for hit in found] == [(tides.id, True)]
    assert await first.conversations.list("bob", "xylophon") == []
    tides.title = "Marimba harbour tides"
    await first.conversations.save("alice", tides)  # the text changed: its vector is computed in the same statement
    async with database.connect() as connection:
        query = text("SELECT search_vector @@ to_tsquery('simple', 'marimba') FROM conversations WHERE id = :id")
        assert await connection.scalar(query, {"id": tides.id})
    moons = sample("What do moons of a xylophonist look like?")
    await first.conversations.save("alice", moons)
    await first.aclose()
    assert not await indexed(moons.id)

    monkeypatch.setattr(sql, "INDEX_QUIET", 0.05)
    monkeypatch.setattr(sql, "INDEX_WITHIN", 1.0)
    second = SQLStore(url, tmp_path, password=password)
    assert {hit.id for hit in await second.conversations.list("alice", "xylophonist")} == {tides.id, moons.id}
    assert await indexed_soon(moons.id)  # the next process's first round
    stars = sample("Why do stars twinkle for a xylophonist?")
    await second.conversations.save("alice", stars)
    assert await indexed_soon(stars.id)  # once writes pause
    assert {hit.id for hit in await second.conversations.list("alice", "xylophonist")} == {tides.id, moons.id, stars.id}
    await second.aclose()
    await database.dispose()


async def test_sqlite_merges_its_search_index_and_checkpoints_beside_the_writer(tmp_path):
    """Saves leave SQLite's upkeep to the store's own thread, which does it once writes pause: the search index's
    segments are merged (FTS5 no longer merges inside saves), and the write-ahead log is copied into the database
    file long before SQLite's own 1,000-page mark. Search still finds everything."""
    import sqlite3

    store = SQLStore.for_settings(tmp_path)
    await store.conversations.list("alice")
    database = tmp_path / "switchboard.db"
    reader = sqlite3.connect(database)
    automerge = reader.execute("SELECT v FROM conversation_search_config WHERE k = 'automerge'").fetchone()
    assert automerge == (0,)
    size_before = database.stat().st_size
    for number in range(24):  # a burst with short pauses (the upkeep must come back after its last write)
        await store.conversations.save("alice", sample(f"Chat number {number}: how do tides work near islands?"))
        await asyncio.sleep(0.008)

    def segments() -> int:
        return reader.execute("SELECT count(DISTINCT segid) FROM conversation_search_idx").fetchone()[0]

    for _ in range(200):  # up to 10 s on a busy machine; the upkeep begins 5 ms after the last write
        if segments() <= 4 and database.stat().st_size > size_before:
            break
        await asyncio.sleep(0.05)
    assert segments() <= 4  # 24 saves, 24 segments, unless merged
    assert database.stat().st_size > size_before  # checkpointed: the saves' pages are in the database file
    assert len(await store.conversations.list("alice", "islands")) == 24
    reader.close()
    await store.aclose()


async def test_sqlite_writes_that_never_pause_keep_the_log_bounded(tmp_path, monkeypatch):
    """With no pause for the upkeep to work in, the writer copies the write-ahead log itself once it passes its
    bound (as SQLite would have), so the log starts over instead of growing with every write."""
    import backend.store.sqlite as sql

    monkeypatch.setattr(sql, "WAL_MOST_BYTES", 256 * 1024)
    monkeypatch.setattr(sql, "UPKEEP_EVERY", 3600.0)  # the upkeep never gets a round in
    store = SQLStore.for_settings(tmp_path)
    log = tmp_path / "switchboard.db-wal"
    sizes = []
    for number in range(80):
        await store.conversations.save("alice", sample(f"Chat number {number}: " + "tides and islands " * 40))
        sizes.append(log.stat().st_size)
    assert max(sizes) < 1024 * 1024, sizes  # 80 saves wrote several megabytes through it
    assert len(await store.conversations.list("alice", "islands")) == 50  # (a page of results) everything is there
    await store.aclose()
