"""Conversations on SQL: list and search, read, save (only what changed), delete, the replies being generated in
them, and the images attached to their messages (files beside the database, MediaFiles).

Search uses the engine's full-text index (SQLite FTS5, PostgreSQL tsvector), ranked, with a snippet around the
match. On PostgreSQL a new conversation's search vector is made just after its write (backend/store/postgres.py);
search finds it meanwhile all the same.

Every query names the owner: the owner is the first column of every key. Every save states the revision it read
and is refused (StaleConversationError) when the stored one moved on. A reply being generated is written apart
from saves (`checkpoint`, `finish_reply`: backend/store/replies.py): it belongs to the task generating it, not to
any page.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..conversations.media_files import MediaFiles
from ..conversations.model import (
    CONVERSATION_ID,
    INTERRUPTED,
    MAX_MESSAGES,
    Conversation,
    ConversationError,
    ReplyPart,
    StaleConversationError,
    StoredMessage,
    Summary,
    chat_full,
)
from ..media import Image
from ..offload import sized
from . import replies as reply_rows
from ._rows import (
    UPDATE_READ_REVISION,
    Row,
    add_postgres,
    conversation_of,
    create,
    head_row,
    message_row,
    read_conversation,
    register_replies,
    search_text_of,
    to_save,
    write_messages,
)
from ._schema import conversations, legacy_imports, messages, replies, reply_parts
from .engine import Database
from .legacy import legacy_conversations

log = logging.getLogger(__name__)

NOT_YOURS = "That conversation does not exist (or is not yours)."
SEARCH_LIMIT = 50
# Conversations whose stored rows this process remembers, to write only what changed: at most this many, and
# this many bytes of their text (a chat can hold megabytes).
KNOWN_KEPT = 1000
KNOWN_MOST_BYTES = 64 << 20


@dataclass(slots=True)
class _Known:
    """A conversation as this process last read or wrote it, at `revision`; `size`: its rows' text, in bytes."""

    revision: int
    rows: tuple[Row, ...]
    search_text: str
    size: int


class SQLConversations:
    """Conversations in SQLite or PostgreSQL (`database`); the images of their messages as files under
    `data_dir/conversations` (MediaFiles)."""

    def __init__(self, database: Database, data_dir: Path) -> None:
        self.database = database
        self.data_dir = Path(data_dir).expanduser()
        self.media = MediaFiles(self.data_dir / "conversations")
        self._known: OrderedDict[tuple[str, str], _Known] = OrderedDict()
        self._known_bytes = 0

    # --- reading ------------------------------------------------------------------------------------------------

    async def list(self, owner: str, query: str = "", limit: int | None = None) -> list[Summary]:
        """The owner's conversations, newest first; with `query`, those matching every word of it (words match
        from their start, case and accents aside), best match first, each with a snippet."""
        await self.import_legacy(owner)
        words = _words(query)
        if not words:
            statement = (
                select(conversations.c.id, conversations.c.title, conversations.c.updated)
                .where(conversations.c.owner == owner)
                .order_by(conversations.c.updated.desc())
                .limit(limit)
            )
            rows = await self.database.run(lambda connection: connection.execute(statement).all())
            return [Summary(id=row.id, title=row.title, updated=row.updated) for row in rows]
        search = self._search(owner, words, limit or SEARCH_LIMIT)
        rows = await self.database.run(lambda connection: connection.execute(*search).all())
        return [Summary(id=row.id, title=row.title, updated=row.updated, snippet=row.snippet or "") for row in rows]

    def _search(self, owner: str, words: Sequence[str], limit: int) -> tuple[Any, dict[str, Any]]:
        if self.database.dialect == "postgresql":
            statement = text(
                "SELECT c.id, c.title, c.updated, ts_headline('simple', c.search_text, q, "
                '\'MaxWords=14, MinWords=6, StartSel="", StopSel="", MaxFragments=1\') AS snippet '
                "FROM conversations c, to_tsquery('simple', :query) q, "
                "coalesce(c.search_vector, to_tsvector('simple', c.search_text)) v "
                "WHERE c.owner = :owner AND (c.search_vector @@ q "
                "OR c.search_vector IS NULL AND to_tsvector('simple', c.search_text) @@ q) "
                "ORDER BY ts_rank(v, q) DESC, c.updated DESC LIMIT :limit"
            )
            query = " & ".join(f"{word}:*" for word in words)
        else:
            statement = text(
                "SELECT c.id, c.title, c.updated, snippet(conversation_search, 0, '', '', '…', 14) AS snippet "
                "FROM conversation_search JOIN conversations c ON c.rowid = conversation_search.rowid "
                "WHERE conversation_search MATCH :query AND c.owner = :owner "
                "ORDER BY bm25(conversation_search), c.updated DESC LIMIT :limit"
            )
            query = " ".join(f'"{word}"*' for word in words)
        return statement, {"query": query, "owner": owner, "limit": limit}

    async def get(self, owner: str, conversation_id: str) -> Conversation:
        """The conversation, its replies being generated included with their text so far."""
        if not CONVERSATION_ID.fullmatch(conversation_id or ""):
            raise ConversationError(NOT_YOURS)
        await self.import_legacy(owner)
        found = await self.database.run(lambda connection: read_conversation(connection, owner, conversation_id))
        if found is None:
            raise ConversationError(NOT_YOURS)
        head, rows, parts = found
        self._remember((owner, conversation_id), head.revision, rows, head.search_text)
        return await sized(len(rows), conversation_of, head, rows, parts)

    async def revision(self, owner: str, conversation_id: str) -> int | None:
        """The conversation's stored revision (it moves on with every change, a reply's end included); None when
        the owner has no such conversation. One small query, whatever the conversation's size."""
        if not CONVERSATION_ID.fullmatch(conversation_id or ""):
            return None
        await self.import_legacy(owner)
        where = (conversations.c.owner == owner, conversations.c.id == conversation_id)
        statement = select(conversations.c.revision).where(*where)
        found = await self.database.run(lambda connection: connection.scalar(statement))
        return None if found is None else int(found)

    # --- writing ------------------------------------------------------------------------------------------------

    async def save(self, owner: str, conversation: Conversation, *, touch: bool = True) -> None:
        """Write the conversation if the stored revision is the one it was read at (0: a new one); then
        `conversation.revision` is the new revision. StaleConversationError when another write came first.
        `touch`: the conversation is dated now (first in the list); without, it keeps its date (a rename).

        Only what changed since this process last read or wrote that revision is written (the search index only
        when the text changed). A reply being generated is its task's to write: a save adds it (as streaming,
        without text) but never writes over it."""
        if not CONVERSATION_ID.fullmatch(conversation.id):
            raise ConversationError(NOT_YOURS)
        await self.import_legacy(owner)
        key = (owner, conversation.id)
        known = self._known.get(key)
        if known is not None and known.revision != conversation.revision:
            known = None
        grows = conversation.revision == 0 or (known is not None and len(conversation.nodes) > len(known.rows))
        if grows and len(conversation.nodes) > MAX_MESSAGES:  # (a chat kept from before the limit stays as it is)
            raise chat_full()
        before = None if known is None else known.rows
        rows, search_text, streaming, only_added = await sized(len(conversation.nodes), to_save, conversation, before)
        only_added = only_added and self.database.dialect == "postgresql"
        updated = time.time() if touch else conversation.updated
        head = head_row(conversation, updated, conversation.revision + 1, search_text)
        if known is not None and known.search_text == search_text:
            del head["search_text"]  # unchanged: the search index is left as it is

        def write(connection: Connection) -> None:
            if conversation.revision == 0:
                values = {"owner": owner, "id": conversation.id, "created": conversation.created, **head}
                create(connection, values, rows, streaming)
                return
            read = {"key_owner": owner, "key_id": conversation.id, "read_revision": conversation.revision}
            if only_added:
                if not add_postgres(connection, {**read, **head}, rows, len(before or ()), streaming):
                    raise _stale()
                return
            changed = connection.execute(UPDATE_READ_REVISION, {**read, **head})
            if changed.rowcount != 1:
                raise _stale()
            write_messages(connection, key, rows, before)
            register_replies(connection, key, streaming, updated, new_from=len(before or ()))

        try:
            await self.database.run(write, write=True, alone=conversation.revision == 0 or only_added)
        except IntegrityError:  # a new conversation whose id is taken: another write created it first
            self._forget(key)
            raise _stale() from None
        if conversation.revision == 0:
            self.database.inserted()
        conversation.updated = updated
        conversation.revision += 1
        self._remember(key, conversation.revision, rows, search_text)

    def _remember(self, key: tuple[str, str], revision: int, rows: Sequence[Row], search_text: str) -> None:
        size = sum(len(text) + len(details) for _, _, text, details in rows)
        self._forget(key)
        if size > KNOWN_MOST_BYTES // 4:
            return  # a huge chat is written whole (as after a restart) rather than crowd out every other
        self._known[key] = _Known(revision, tuple(rows), search_text, size)
        self._known_bytes += size
        while len(self._known) > KNOWN_KEPT or self._known_bytes > KNOWN_MOST_BYTES:
            self._known_bytes -= self._known.popitem(last=False)[1].size

    def _forget(self, key: tuple[str, str]) -> None:
        forgotten = self._known.pop(key, None)
        self._known_bytes -= forgotten.size if forgotten is not None else 0

    async def delete(self, owner: str, conversation_id: str) -> None:
        if not CONVERSATION_ID.fullmatch(conversation_id or ""):
            raise ConversationError(NOT_YOURS)

        def remove(connection: Connection) -> int:
            for table in (reply_parts, replies, messages):
                connection.execute(
                    delete(table).where(table.c.owner == owner, table.c.conversation_id == conversation_id)
                )
            where = (conversations.c.owner == owner, conversations.c.id == conversation_id)
            return connection.execute(delete(conversations).where(*where)).rowcount

        if await self.database.run(remove, write=True) != 1:
            raise ConversationError(NOT_YOURS)
        self._forget((owner, conversation_id))

    # --- replies being generated ------------------------------------------------------------------------------------

    async def checkpoint(
        self,
        owner: str,
        conversation_id: str,
        position: int,
        seq: int,
        part: ReplyPart,
        provenance: StoredMessage | None = None,
    ) -> None:
        """Append `part` (number `seq`, counting from 0) to reply `position` as it streams; with `provenance`,
        the reply's other fields so far (who answers, handovers) too. One small row per call, whatever the length
        of the reply so far."""
        await self.database.run(
            reply_rows.checkpoint(owner, conversation_id, position, seq, part, provenance), write=True
        )

    async def finish_reply(self, owner: str, conversation_id: str, position: int, message: StoredMessage) -> None:
        """Write reply `position` as it ended (whole text, status, timings) in place of its parts, and make it part
        of the conversation's search text. Not checked against a revision (the reply is its task's alone); it moves
        the conversation to a new revision, so a page holding the old one reads it again. Nothing when the
        conversation was deleted meanwhile."""
        await self.database.run(reply_rows.finish(owner, conversation_id, position, message), write=True)
        self._forget((owner, conversation_id))

    async def interrupt_replies(self) -> int:
        """Mark every reply still registered as running as interrupted, with its text up to its last checkpoint:
        for a single app process at start-up, when no reply of an earlier run can still be going. How many.
        (Replicas sharing the store leave this to their sweep: backend/replicas/relay.py.)"""
        left = await self.running_replies()
        interrupted = sum(
            [
                await self.interrupt_reply(owner, conversation_id, position)
                for owner, conversation_id, position, _ in left
            ]
        )
        if interrupted:
            log.info("marked %d reply(ies) cut off by the last stop as interrupted", interrupted)
        return interrupted

    async def running_replies(self) -> Sequence[tuple[str, str, int, float]]:
        """Every reply registered as being generated, by any process: owner, conversation, position, and when it
        began (time.time())."""

        return await self.database.run(reply_rows.registered)

    async def interrupt_reply(self, owner: str, conversation_id: str, position: int) -> bool:
        """Store reply `position` as interrupted, with its text up to its last checkpoint, if it is still being
        written as far as the store knows (its process is gone). Whether it was."""
        try:
            conversation = await self.get(owner, conversation_id)
        except ConversationError:
            return False
        if position >= len(conversation.nodes) or conversation.nodes[position].status != "streaming":
            return False
        message = conversation.nodes[position].model_copy()
        message.status = "interrupted"
        message.error = INTERRUPTED
        await self.finish_reply(owner, conversation_id, position, message)
        return True

    # --- the images of messages ------------------------------------------------------------------------------------

    async def save_image(self, owner: str, data: bytes, mime: str) -> str:
        return await self.media.save(owner, data, mime)

    async def load_image(self, owner: str, reference: str) -> Image:
        return await self.media.load(owner, reference)

    def image_path(self, owner: str, reference: str) -> Path:
        return self.media.path(owner, reference)

    # --- conversations of earlier versions --------------------------------------------------------------------------

    async def import_legacy(self, owner: str) -> None:
        """Conversations an earlier version kept as JSON files, imported into the database once per owner, on the
        owner's first visit; the files are left as they were."""
        await self.database.once(f"conversations:{owner}", lambda: self._import_legacy_once(owner))

    async def _import_legacy_once(self, owner: str) -> None:
        found = await legacy_conversations(self.data_dir / "conversations", owner)
        analyze = self.database.dialect == "postgresql"

        def write(connection: Connection) -> int:
            done = connection.scalar(select(legacy_imports.c.owner).where(legacy_imports.c.owner == owner))
            if done is not None:
                return 0
            known = set(connection.scalars(select(conversations.c.id).where(conversations.c.owner == owner)).all())
            fresh = [conversation for conversation in found if conversation.id not in known]
            for conversation in fresh:
                head = head_row(conversation, conversation.updated, 1, search_text_of(conversation))
                values = {"owner": owner, "id": conversation.id, "created": conversation.created, **head}
                create(connection, values, [message_row(message) for message in conversation.nodes], [])
            connection.execute(insert(legacy_imports).values(owner=owner, count=len(fresh), at=time.time()))
            if found:
                log.info("imported %d conversation(s) of %r from JSON files into the database", len(fresh), owner)
            if fresh and analyze:
                # Statistics for the rows just added, or searches scan them all until autovacuum gets to it.
                connection.exec_driver_sql("ANALYZE conversations")
            return len(fresh)

        if await self.database.run(write, write=True):
            self.database.inserted()


def _words(query: str) -> list[str]:
    """The words of a search, as the full-text indexes split text (letters, digits, underscores)."""
    return re.findall(r"\w+", query.lower())[:20]


def _stale() -> StaleConversationError:
    return StaleConversationError(
        "This chat was changed elsewhere (another tab or window) since it was opened here; it shows the current "
        "version now."
    )
