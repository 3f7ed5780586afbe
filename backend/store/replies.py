"""The replies being generated in conversations, as stored: a row in `replies` while one runs, its text growing by
rows in `reply_parts` (one per checkpoint, so a long reply's checkpoints cost the same each), then written whole
into its message when it ends. A reply belongs to the task generating it, not to any page: these writes are not
checked against the conversation's revision. Each function here makes the operation one such write runs."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from ..conversations.model import ReplyPart, StoredMessage
from ._operation import Operation
from ._rows import message_key, message_row
from ._schema import conversations, messages, replies, reply_parts

INSERT_PART = insert(reply_parts)


def checkpoint(
    owner: str, conversation_id: str, position: int, seq: int, part: ReplyPart, provenance: StoredMessage | None
) -> Operation[None]:
    """Append `part` (number `seq`) to reply `position`; with `provenance`, the reply's other fields so far too."""
    values = {"owner": owner, "conversation_id": conversation_id, "position": position, "seq": seq}
    details = None if provenance is None else message_row(provenance.model_copy(update={"status": "streaming"}))[3]

    def write(connection: Connection) -> None:
        row = {**values, "text": part.text, "reasoning": part.reasoning, "at": time.time()}
        connection.execute(INSERT_PART, row)
        if details is not None:
            connection.execute(
                update(messages).where(*message_key(owner, conversation_id, position)).values(details=details)
            )

    return write


def finish(owner: str, conversation_id: str, position: int, message: StoredMessage) -> Operation[None]:
    """Write reply `position` as it ended in place of its parts, add it (and the question it answers, if it was
    waiting) to the search text, and move the conversation to a new revision."""
    _, role, reply_text, details = message_row(message)
    key = message_key(owner, conversation_id, position)

    def write(connection: Connection) -> None:
        connection.execute(update(messages).where(*key).values(role=role, text=reply_text, details=details))
        _forget_reply(connection, owner, conversation_id, position)
        searched = [*_waiting_question(connection, owner, conversation_id, position), reply_text]
        moved: dict[str, Any] = {"revision": conversations.c.revision + 1, "updated": time.time()}
        if any(searched):
            added = "".join(f"\n{piece}" for piece in searched if piece)
            moved["search_text"] = func.coalesce(conversations.c.search_text, "") + added
        where = (conversations.c.owner == owner, conversations.c.id == conversation_id)
        connection.execute(update(conversations).where(*where).values(**moved))

    return write


def registered(connection: Connection) -> list[tuple[str, str, int, float]]:
    """Every reply registered as being generated: owner, conversation, position, when it began."""
    columns = (replies.c.owner, replies.c.conversation_id, replies.c.position, replies.c.started)
    return [(row[0], row[1], row[2], row[3]) for row in connection.execute(select(*columns)).all()]


def _waiting_question(connection: Connection, owner: str, conversation_id: str, position: int) -> list[str]:
    """The text of the question reply `position` answers when no other reply to it has ended (so it is not in the
    search text yet: see `search_text_of`)."""
    parent = connection.scalar(select(messages.c.parent).where(*message_key(owner, conversation_id, position)))
    if parent is None:
        return []
    where = (messages.c.owner == owner, messages.c.conversation_id == conversation_id)
    running = select(replies.c.position).where(replies.c.owner == owner, replies.c.conversation_id == conversation_id)
    answered = connection.scalar(
        select(messages.c.position)
        .where(*where, messages.c.parent == parent, messages.c.position != position)
        .where(messages.c.position.not_in(running))
        .limit(1)
    )
    if answered is not None:
        return []
    return [connection.scalar(select(messages.c.text).where(*where, messages.c.position == parent)) or ""]


def _forget_reply(connection: Connection, owner: str, conversation_id: str, position: int) -> None:
    for table in (reply_parts, replies):
        connection.execute(delete(table).where(*message_key(owner, conversation_id, position, table)))
