"""Replies generated on the server (backend/replies/), over the scripted upstream and the real store: they run
to their end with nobody following, followers that join late get every event from the first, the store holds the
text so far while they stream, Stop keeps who really answered, and a process killed mid-reply leaves the reply
with its text up to the last checkpoint, marked interrupted at the next start."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from backend import Backend, ChatRequest, Conversation, StoredMessage, load_settings, model_messages
from tests.conftest import scripted_config
from tests.upstream import Reply

ROOT = Path(__file__).resolve().parent.parent
WORDS = [f"w{number:03d} " for number in range(120)]


async def start(backend: Backend, owner: str, text: str, model: str = "scripted/scripted-1"):
    """Save a question with its (empty, streaming) reply and start generating it, as the Chat tab does."""
    conversation = Conversation()
    conversation.add(StoredMessage(role="user", text=text))
    conversation.add(StoredMessage(role="assistant", status="streaming", model=model))
    await backend.conversations.save(owner, conversation)
    request = ChatRequest(model=model, messages=await model_messages(backend.conversations, owner, conversation))
    return conversation, backend.replies.start(owner, conversation, request)


async def collect(reply) -> list:
    return [event async for event in reply.follow()]


async def test_a_reply_runs_to_its_end_without_followers_and_late_followers_see_it_all(upstream, write_config):
    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    upstream.enqueue(Reply.text(WORDS, delay=0.05))  # six seconds
    conversation, reply = await start(backend, "ann", "Count for me.")
    early = asyncio.create_task(collect(reply))
    await asyncio.sleep(0.5)
    # A follower that leaves early does not end the reply.
    leaving = reply.follow()
    await anext(leaving)
    await leaving.aclose()
    while len("".join(getattr(event, "text", "") for event in reply.events)) < 200:
        await asyncio.sleep(0.05)
    # Mid-reply, the store already has the text of the checkpoints so far (at most a second behind).
    await asyncio.sleep(1.1)
    midway = await backend.conversations.get("ann", conversation.id)
    partial = midway.messages[-1]
    assert partial.status == "streaming" and partial.text and "".join(WORDS).startswith(partial.text)
    late = await collect(reply)  # joins late: every event from the first
    stored = await reply.wait()
    assert late == await early
    assert stored.text == "".join(WORDS) and stored.status == "complete"
    assert (stored.provider, stored.model) == ("scripted", "scripted-1")
    assert stored.first_token_seconds is not None and stored.seconds is not None
    again = await backend.conversations.get("ann", conversation.id)
    assert again.messages[-1].text == "".join(WORDS) and again.messages[-1].status == "complete"
    assert again.revision == conversation.revision + 1  # pages holding the old copy read it again
    assert [s.id for s in await backend.conversations.list("ann", "w119")] == [conversation.id]  # searchable
    assert backend.replies.running("ann", conversation.id) is None
    await backend.aclose()


async def test_a_paced_follower_gets_every_event_in_a_few_lists(upstream, write_config):
    """`batches` hands a follower what arrived since its last list, at most one list per pause: the same events
    as `follow`, in order, with one wake-up per list instead of one per token."""
    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    upstream.enqueue(Reply.text(WORDS, delay=0.01))  # 120 tokens over about 1.2 s
    _, reply = await start(backend, "ann", "Count for me.")
    every = asyncio.create_task(collect(reply))
    lists = [batch async for batch in reply.batches(lambda: 0.2)]
    assert [event for batch in lists for event in batch] == await every
    assert 3 <= len(lists) <= 12  # about one list per 0.2 s, the first at once; not one per token
    assert "".join(getattr(event, "text", "") for batch in lists for event in batch) == "".join(WORDS)
    assert [event async for batch in reply.batches(lambda: 0.2) for event in batch] == await every  # after the end
    await reply.wait()
    await backend.aclose()


async def test_stop_on_a_route_keeps_the_provider_that_answered(upstream, write_config):
    config = scripted_config(upstream) + textwrap.dedent(
        """
        [routes]
        best = ["scripted/scripted-1"]
        """
    )
    backend = Backend(load_settings(write_config(config)))
    upstream.enqueue(Reply.text(WORDS, delay=0.05))
    conversation, reply = await start(backend, "ann", "Count for me.", model="best")
    async for event in reply.follow():
        if getattr(event, "text", "") == "w005 ":
            reply.stop()
            break
    stored = await reply.wait()
    assert stored.status == "stopped"
    assert (stored.provider, stored.model) == ("scripted", "scripted-1")  # not ("best", "")
    assert stored.text.startswith("w000 w001 w002 w003 w004 w005") and "w119" not in stored.text
    request = upstream.chat_requests()[0]
    assert upstream.wait_for(lambda: request.disconnected_at is not None, 10), "Stop did not close the upstream"
    kept = (await backend.conversations.get("ann", conversation.id)).messages[-1]
    assert (kept.status, kept.provider, kept.model, kept.text) == ("stopped", "scripted", "scripted-1", stored.text)
    await backend.aclose()


async def test_the_model_is_sent_the_visible_branch(upstream, write_config):
    """An edited question is a version: the reply to it is generated from the branch it is on, not the other."""
    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    conversation, reply = await start(backend, "ann", "Name a fruit.")
    await reply.wait()
    conversation = await backend.conversations.get("ann", conversation.id)
    conversation.add(StoredMessage(role="user", text="Name a vegetable."), after=None)  # the question, edited
    conversation.add(StoredMessage(role="assistant", status="streaming", model="scripted/scripted-1"))
    await backend.conversations.save("ann", conversation)
    messages = await model_messages(backend.conversations, "ann", conversation)
    assert messages == [{"role": "user", "content": "Name a vegetable."}]
    await backend.replies.start("ann", conversation, ChatRequest("scripted/scripted-1", messages)).wait()
    stored = await backend.conversations.get("ann", conversation.id)
    assert [m.text for m in stored.messages] == ["Name a vegetable.", "Hello from the scripted upstream."]
    assert [stored.nodes[n].text for n in stored.versions(stored.branch[0])] == ["Name a fruit.", "Name a vegetable."]
    await backend.aclose()


CHILD = """
import asyncio, sys
sys.path.insert(0, {root!r})
from backend import Backend, load_settings
from tests.test_replies import start

async def main():
    backend = Backend(load_settings({config!r}))
    conversation, reply = await start(backend, "ann", "Count slowly.")
    print(conversation.id, flush=True)
    await reply.wait()

asyncio.run(main())
"""


def killed_mid_reply(config: Path, upstream, environment: dict[str, str] | None = None) -> str:
    """Start a reply in an app process of its own (CHILD), let it stream for a checkpoint or two, kill -9 that
    process; the conversation's id."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(root=str(ROOT), config=str(config))],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(environment or {})},
    )
    try:
        conversation_id = child.stdout.readline().strip()
        assert upstream.wait_for(lambda: upstream.chat_requests(), 20)
        time.sleep(2.5)  # two checkpoints or so
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
    return conversation_id


def test_a_reply_cut_by_kill_9_is_kept_up_to_its_last_checkpoint_and_marked_interrupted(
    upstream, write_config, tmp_path
):
    config = write_config(scripted_config(upstream))
    upstream.enqueue(Reply.text(WORDS, delay=0.05))  # six seconds in all
    conversation_id = killed_mid_reply(config, upstream, {"SWITCHBOARD_APP__DATA_DIR": str(tmp_path / "data")})

    backend = Backend(load_settings(config))

    async def restart() -> Conversation:
        await backend.open_store()  # a new start: what was left running is marked interrupted
        return await backend.conversations.get("ann", conversation_id)

    conversation = asyncio.run(restart())
    reply = conversation.messages[-1]
    assert reply.status == "interrupted" and "stopped while this reply" in (reply.error or "")
    assert len(reply.text) >= len("".join(WORDS[:10])), reply.text  # at most the last second is lost
    assert "".join(WORDS).startswith(reply.text) and reply.text != "".join(WORDS)
    assert reply.provider == "scripted"
    assert asyncio.run(backend.conversations.interrupt_replies()) == 0  # only once
