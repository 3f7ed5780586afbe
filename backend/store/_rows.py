"""How a conversation is stored as rows, and read back: its own row, one row per message (numbered in the order
they were added), and the replies being generated among them; the statements saves run, built once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, text, update
from sqlalchemy.engine import Connection

from ..conversations.model import Conversation, ReplyPart, StoredMessage
from ._schema import conversations, messages, replies, reply_parts

Row = tuple[int | None, str, str, str]  # a message as stored: parent, role, text, details (JSON)

# The statements the UI's saves and a reply's checkpoints run, built once: building a SQLAlchemy statement costs
# about as much Python time as running it (each execution gives the values; an update's SET is the keys given).
INSERT_CONVERSATION = insert(conversations)
UPDATE_READ_REVISION = update(conversations).where(
    conversations.c.owner == bindparam("key_owner"),
    conversations.c.id == bindparam("key_id"),
    conversations.c.revision == bindparam("read_revision"),
)
INSERT_MESSAGES = insert(messages)
INSERT_REPLIES = insert(replies)
# PostgreSQL: a new conversation with its messages and its replies being generated as one statement, run on its
# own (a statement is atomic without a transaction): one round trip instead of five (BEGIN, three inserts,
# COMMIT), which halves the save a new chat's first message waits on, and an import's write of each chat. A save
# that only adds messages to a conversation (a message sent) is one statement too: its row updated if the revision
# read is still the stored one, the messages and replies added only then (`head` is empty otherwise).
ADD_MESSAGES_AND_REPLIES = (
    "added AS (INSERT INTO messages (owner, conversation_id, position, parent, role, text, details) "
    "SELECT head.owner, head.id, m.position, m.parent, m.role, m.text, m.details FROM head, unnest("
    "CAST(:positions AS integer[]), CAST(:parents AS integer[]), CAST(:roles AS text[]), CAST(:texts AS text[]), "
    "CAST(:details AS text[])) AS m(position, parent, role, text, details)), "
    "running AS (INSERT INTO replies (owner, conversation_id, position, started) "
    "SELECT head.owner, head.id, r.position, :started FROM head, unnest(CAST(:streaming AS integer[])) AS r(position)) "
    "SELECT count(*) FROM head"
)
CREATE_CONVERSATION_POSTGRES = text(
    "WITH head AS (INSERT INTO conversations "
    "(owner, id, created, title, updated, model, settings, revision, search_text, leaf) "
    "VALUES (:owner, :id, :created, :title, :updated, :model, :settings, :revision, :search_text, :leaf) "
    f"RETURNING owner, id), {ADD_MESSAGES_AND_REPLIES}"
)
HEAD_SET = (
    "title = :title, updated = :updated, model = :model, settings = :settings, revision = :revision, leaf = :leaf"
)
# ... whether the search text changed too or not (it changes once per exchange: see finish_reply)
ADD_TO_CONVERSATION_POSTGRES = {
    searched: text(
        f"WITH head AS (UPDATE conversations SET {HEAD_SET}{', search_text = :search_text' if searched else ''} "
        "WHERE owner = :key_owner AND id = :key_id AND revision = :read_revision RETURNING owner, id), "
        f"{ADD_MESSAGES_AND_REPLIES}"
    )
    for searched in (False, True)
}


def read_conversation(
    connection: Connection, owner: str, conversation_id: str
) -> tuple[Any, list[Row], dict[int, ReplyPart]] | None:
    """A conversation's row, its messages' rows in order and the parts of its replies being generated."""
    head = connection.execute(
        select(conversations).where(conversations.c.owner == owner, conversations.c.id == conversation_id)
    ).one_or_none()
    if head is None:
        return None
    where = (messages.c.owner == owner, messages.c.conversation_id == conversation_id)
    rows = connection.execute(
        select(messages.c.parent, messages.c.role, messages.c.text, messages.c.details)
        .where(*where)
        .order_by(messages.c.position)
    ).all()
    parts: dict[int, ReplyPart] = {}
    if (
        connection.scalar(
            select(replies.c.position)
            .where(replies.c.owner == owner, replies.c.conversation_id == conversation_id)
            .limit(1)
        )
        is not None
    ):
        for row in connection.execute(
            select(reply_parts.c.position, reply_parts.c.text, reply_parts.c.reasoning)
            .where(reply_parts.c.owner == owner, reply_parts.c.conversation_id == conversation_id)
            .order_by(reply_parts.c.position, reply_parts.c.seq)
        ):
            part = parts.setdefault(row.position, ReplyPart())
            part.text += row.text
            part.reasoning += row.reasoning
    return head, [(row.parent, row.role, row.text, row.details) for row in rows], parts


def conversation_of(head: Any, rows: Sequence[Row], parts: dict[int, ReplyPart]) -> Conversation:
    """The conversation its row, its messages' rows and its replies' parts so far make."""
    nodes = [
        StoredMessage(parent=parent, role=role, text=text, **json.loads(details))
        for parent, role, text, details in rows
    ]
    for position, part in parts.items():
        if position < len(nodes):
            nodes[position].text += part.text
            nodes[position].reasoning += part.reasoning
    return Conversation(
        id=head.id,
        title=head.title,
        created=head.created,
        updated=head.updated,
        model=head.model,
        settings=json.loads(head.settings),
        revision=head.revision,
        nodes=nodes,
        leaf=head.leaf,
    )


def to_save(conversation: Conversation, before: Sequence[Row] | None) -> tuple[list[Row], str, list[int], bool]:
    """What a save of the conversation writes (titled from its first message if it has no title yet): its
    messages' rows, its search text, the positions of its replies being generated, and whether it only adds
    messages to `before` (the rows stored, when known)."""
    conversation.auto_title()
    rows = [message_row(message) for message in conversation.nodes]
    streaming = [n for n, message in enumerate(conversation.nodes) if message.status == "streaming"]
    return rows, search_text_of(conversation), streaming, only_added(before, rows, streaming)


def write_messages(
    connection: Connection, key: tuple[str, str], rows: Sequence[Row], before: Sequence[Row] | None
) -> None:
    """Make the stored messages `rows`: all of them when what is stored is not known (`before` None), else only
    those that differ from `before`."""
    owner, conversation_id = key
    where = (messages.c.owner == owner, messages.c.conversation_id == conversation_id)
    if before is None:
        connection.execute(delete(messages).where(*where))
        before = []
    elif len(before) > len(rows):
        connection.execute(delete(messages).where(*where, messages.c.position >= len(rows)))
    for position, row in enumerate(rows[: len(before)]):
        if row != before[position]:
            values = {"parent": row[0], "role": row[1], "text": row[2], "details": row[3]}
            connection.execute(update(messages).where(*where, messages.c.position == position).values(values))
    added = [
        {
            "owner": owner,
            "conversation_id": conversation_id,
            "position": position,
            "parent": parent,
            "role": role,
            "text": text,
            "details": details,
        }
        for position, (parent, role, text, details) in enumerate(rows)
        if position >= len(before)
    ]
    if added:
        connection.execute(INSERT_MESSAGES, added)


def create(connection: Connection, values: dict[str, Any], rows: Sequence[Row], streaming: Sequence[int]) -> None:
    """Insert a new conversation (`values`: its row), its messages and its replies being generated, as
    registered from `values["updated"]`. IntegrityError when the id is taken."""
    key = (values["owner"], values["id"])
    if connection.dialect.name != "postgresql":
        connection.execute(INSERT_CONVERSATION, values)
        write_messages(connection, key, rows, [])
        register_replies(connection, key, streaming, values["updated"], new_from=0)
        return
    connection.execute(CREATE_CONVERSATION_POSTGRES, {**values, **added(rows, 0, streaming, values["updated"])})


def only_added(before: Sequence[Row] | None, rows: Sequence[Row], streaming: Sequence[int]) -> bool:
    """Whether a save only adds messages (and replies being generated among them) to what is stored: a message
    sent, the save a page waits on most."""
    if before is None or len(rows) <= len(before):
        return False
    return tuple(rows[: len(before)]) == tuple(before) and all(position >= len(before) for position in streaming)


def add_postgres(
    connection: Connection, values: dict[str, Any], rows: Sequence[Row], first: int, streaming: Sequence[int]
) -> bool:
    """PostgreSQL: update the conversation's row (`values`: its new values, its key and the revision read) and
    add its messages from position `first` on and its replies being generated, as one statement; whether the
    revision read was the stored one (if not, nothing was written)."""
    statement = ADD_TO_CONVERSATION_POSTGRES["search_text" in values]
    return connection.execute(statement, {**values, **added(rows, first, streaming, values["updated"])}).scalar() == 1


def added(rows: Sequence[Row], first: int, streaming: Sequence[int], started: float) -> dict[str, Any]:
    """The values ADD_MESSAGES_AND_REPLIES takes: the messages from position `first` on, as arrays of their
    columns, and the positions of the replies being generated, registered as started at `started`."""
    added = rows[first:]
    parents, roles, texts, details = zip(*added, strict=True) if added else ((), (), (), ())
    columns = {"parents": parents, "roles": roles, "texts": texts, "details": details}
    return {
        **{name: list(column) for name, column in columns.items()},
        "positions": list(range(first, len(rows))),
        "streaming": list(streaming),
        "started": started,
    }


def register_replies(
    connection: Connection, key: tuple[str, str], positions: Sequence[int], started: float, new_from: int
) -> None:
    """Record replies saved as streaming as running (they are marked interrupted if the app stops first). Messages
    from position `new_from` on were added by this save: theirs cannot be recorded yet (the usual case, a message
    sent: no query for the others)."""
    owner, conversation_id = key
    if not positions:
        return
    known: set[int] = set()
    if min(positions) < new_from:
        known = set(
            connection.scalars(
                select(replies.c.position).where(replies.c.owner == owner, replies.c.conversation_id == conversation_id)
            ).all()
        )
    rows = [
        {"owner": owner, "conversation_id": conversation_id, "position": position, "started": started}
        for position in positions
        if position not in known
    ]
    if rows:
        connection.execute(INSERT_REPLIES, rows)


def message_key(owner: str, conversation_id: str, position: int, table: Any = messages) -> tuple[Any, ...]:
    return (table.c.owner == owner, table.c.conversation_id == conversation_id, table.c.position == position)


def message_row(message: StoredMessage) -> Row:
    """A message as stored. A reply being generated is stored without its text and reasoning: those grow in
    `reply_parts` until it ends."""
    streaming = message.status == "streaming"
    exclude = {"role", "text", "parent", *(("reasoning",) if streaming else ())}
    details = message.model_dump(mode="json", exclude=exclude, exclude_defaults=True)
    return (message.parent, message.role, "" if streaming else message.text, json.dumps(details))


def head_row(conversation: Conversation, updated: float, revision: int, search_text: str) -> dict[str, Any]:
    """The conversation's own row, but its keys and creation time."""
    return {
        "title": conversation.title,
        "updated": updated,
        "model": conversation.model,
        "settings": json.dumps(conversation.settings),
        "revision": revision,
        "search_text": search_text,
        "leaf": conversation.leaf,
    }


def search_text_of(conversation: Conversation) -> str:
    """The title and every version of every message, but a reply being generated and a question waiting for its
    first reply: those join when the reply ends (`finish_reply`), so the save a page waits on when someone sends a
    message leaves the search index alone (re-indexing a long chat's text was most of its cost)."""
    nodes = conversation.nodes
    waiting = {message.parent for message in nodes if message.status == "streaming"}
    waiting -= {message.parent for message in nodes if message.status != "streaming"}
    texts = (
        message.text
        for position, message in enumerate(nodes)
        if message.text and message.status != "streaming" and position not in waiting
    )
    return "\n".join([conversation.title, *texts])
