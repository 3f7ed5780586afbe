"""The conversation store on SQL: one implementation (SQLAlchemy 2 Core), two engines.

- SQLite by default: one file, `app.data_dir/switchboard.db`, in WAL mode (readers never wait for a writer; a
  process killed mid-write leaves every committed transaction readable).
- PostgreSQL (asyncpg) with `store.url = "postgresql+asyncpg://USER@HOST:PORT/DB"`, the password from the
  variable `store.password_env` names: for several app processes sharing one store.

Every operation is one plain function over a SQLAlchemy `Connection`, run in one transaction: for PostgreSQL
through the async engine (`run_sync`), for SQLite whole on the store's own thread. SQLite does a save in about
0.2 ms; an async driver that hops to its thread and back for every statement (aiosqlite) made the same save cost
1.5 ms, so one hop per operation is what keeps the UI's saves as quick as the JSON files were.

The schema comes from Alembic migrations (`backend/store/migrations`), applied when the store opens; a database
written by a newer version is refused with one sentence, as is a damaged or locked one. Search uses the engine's
full-text index (SQLite FTS5, PostgreSQL tsvector), ranked, with a snippet around the match. On PostgreSQL a new
conversation's search vector is made just after its write (`_Indexer`); search finds it meanwhile all the same.

Every query names the owner: the owner is the first column of every key. Every save states the revision it read
and is refused (StaleConversationError) when the stored one moved on. A reply being generated is written apart
from saves (`checkpoint`, `finish_reply`): it belongs to the task generating it, not to any page.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, bindparam, create_engine, delete, event, func, insert, select, text, update
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DatabaseError, DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..conversations.model import (
    MAX_MESSAGES,
    Conversation,
    ConversationError,
    MediaFiles,
    Preset,
    ReplyPart,
    StaleConversationError,
    StoredMessage,
    Summary,
    chat_full,
    legacy_conversations,
)
from ..errors import ConfigError
from ..media import Image
from ..offload import sized
from ..services.image_store import legacy_image_details
from ._schema import (
    api_keys,
    conversations,
    images,
    legacy_image_imports,
    legacy_imports,
    messages,
    presets,
    replies,
    reply_parts,
)

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
NOT_YOURS = "That conversation does not exist (or is not yours)."
SEARCH_LIMIT = 50
PRESETS_KEPT = 100  # system-prompt presets per owner
_ID = re.compile(r"[0-9a-f]{16}")
# SQLite's upkeep beside the writer (_Upkeep)
UPKEEP_EVERY = 0.25  # seconds between two rounds (while writes come)
QUIET = 0.005  # seconds without a write before a merge step
MERGE_PAGES = 16  # a search index merge step (about 0.7 ms): what a save may wait behind
WAL_MOST_BYTES = 64 << 20  # the write-ahead log's size at which the writer checkpoints it itself
# PostgreSQL's search vectors of new conversations, computed after their write (_Indexer)
INDEX_QUIET = 0.05  # seconds without an insert before a round
INDEX_WITHIN = 1.0  # seconds after the first insert waiting, at most
INDEX_BATCH = 50  # conversations a statement (about 35 ms of the server's time)

# The statements the UI's saves and a reply's checkpoints run, built once: building a SQLAlchemy statement costs
# about as much Python time as running it (each execution gives the values; an update's SET is the keys given).
_INSERT_CONVERSATION = insert(conversations)
_UPDATE_READ_REVISION = update(conversations).where(
    conversations.c.owner == bindparam("key_owner"),
    conversations.c.id == bindparam("key_id"),
    conversations.c.revision == bindparam("read_revision"),
)
_INSERT_MESSAGES = insert(messages)
_INSERT_REPLIES = insert(replies)
_INSERT_PART = insert(reply_parts)
# PostgreSQL: a new conversation with its messages and its replies being generated as one statement, run on its
# own (a statement is atomic without a transaction): one round trip instead of five (BEGIN, three inserts,
# COMMIT), which halves the save a new chat's first message waits on, and an import's write of each chat. A save
# that only adds messages to a conversation (a message sent) is one statement too: its row updated if the revision
# read is still the stored one, the messages and replies added only then (`head` is empty otherwise).
_ADD_MESSAGES_AND_REPLIES = (
    "added AS (INSERT INTO messages (owner, conversation_id, position, parent, role, text, details) "
    "SELECT head.owner, head.id, m.position, m.parent, m.role, m.text, m.details FROM head, unnest("
    "CAST(:positions AS integer[]), CAST(:parents AS integer[]), CAST(:roles AS text[]), CAST(:texts AS text[]), "
    "CAST(:details AS text[])) AS m(position, parent, role, text, details)), "
    "running AS (INSERT INTO replies (owner, conversation_id, position, started) "
    "SELECT head.owner, head.id, r.position, :started FROM head, unnest(CAST(:streaming AS integer[])) AS r(position)) "
    "SELECT count(*) FROM head"
)
_CREATE_CONVERSATION_POSTGRES = text(
    "WITH head AS (INSERT INTO conversations "
    "(owner, id, created, title, updated, model, settings, revision, search_text, leaf) "
    "VALUES (:owner, :id, :created, :title, :updated, :model, :settings, :revision, :search_text, :leaf) "
    f"RETURNING owner, id), {_ADD_MESSAGES_AND_REPLIES}"
)
_HEAD_SET = (
    "title = :title, updated = :updated, model = :model, settings = :settings, revision = :revision, leaf = :leaf"
)
# ... whether the search text changed too or not (it changes once per exchange: see finish_reply)
_ADD_TO_CONVERSATION_POSTGRES = {
    searched: text(
        f"WITH head AS (UPDATE conversations SET {_HEAD_SET}{', search_text = :search_text' if searched else ''} "
        "WHERE owner = :key_owner AND id = :key_id AND revision = :read_revision RETURNING owner, id), "
        f"{_ADD_MESSAGES_AND_REPLIES}"
    )
    for searched in (False, True)
}

# Rows other statements hold are skipped (a save's, another process's round): a later round does them.
_INDEX_WAITING = text(
    "UPDATE conversations SET search_vector = to_tsvector('simple', search_text) WHERE (owner, id) IN "
    "(SELECT owner, id FROM conversations WHERE search_vector IS NULL LIMIT :batch FOR UPDATE SKIP LOCKED)"
)

T = TypeVar("T")
Operation = Callable[[Connection], T]

_Row = tuple[int | None, str, str, str]  # a message as stored: parent, role, text, details (JSON)
# Conversations whose stored rows this process remembers, to write only what changed: at most this many, and
# this many bytes of their text (a chat can hold megabytes).
KNOWN_KEPT = 1000
KNOWN_MOST_BYTES = 64 << 20


@dataclass(slots=True)
class _Known:
    """A conversation as this process last read or wrote it, at `revision`; `size`: its rows' text, in bytes."""

    revision: int
    rows: tuple[_Row, ...]
    search_text: str
    size: int


class SQLConversationStore:
    """Conversations in SQLite or PostgreSQL; images as files beside (MediaFiles)."""

    def __init__(self, url: str, data_dir: Path, *, password: str | None = None) -> None:
        self.url = url
        self.data_dir = Path(data_dir).expanduser()
        self.media = MediaFiles(self.data_dir / "conversations")
        self.dialect = make_url(url).get_backend_name()
        self._database: _SQLite | _Postgres = _SQLite(url) if self.dialect == "sqlite" else _Postgres(url, password)
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )
        self._known: OrderedDict[tuple[str, str], _Known] = OrderedDict()
        self._known_bytes = 0
        self._migrated = False
        self._done: set[str] = set()  # what `_once` did

    @classmethod
    def for_settings(cls, data_dir: Path, url: str = "", password: str | None = None) -> SQLConversationStore:
        """The store a configuration names: `url`, or SQLite at `data_dir/switchboard.db`."""
        data_dir = Path(data_dir).expanduser()
        return cls(url or f"sqlite:///{data_dir / 'switchboard.db'}", data_dir, password=password)

    # --- reading ------------------------------------------------------------------------------------------------

    async def list(self, owner: str, query: str = "", limit: int | None = None) -> list[Summary]:
        """The owner's conversations, newest first; with `query`, those matching every word of it (words match
        from their start, case and accents aside), best match first, each with a snippet."""
        await self._import_legacy(owner)
        words = _words(query)
        if not words:
            statement = (
                select(conversations.c.id, conversations.c.title, conversations.c.updated)
                .where(conversations.c.owner == owner)
                .order_by(conversations.c.updated.desc())
                .limit(limit)
            )
            rows = await self._run(lambda connection: connection.execute(statement).all())
            return [Summary(id=row.id, title=row.title, updated=row.updated) for row in rows]
        search = self._search(owner, words, limit or SEARCH_LIMIT)
        rows = await self._run(lambda connection: connection.execute(*search).all())
        return [Summary(id=row.id, title=row.title, updated=row.updated, snippet=row.snippet or "") for row in rows]

    def _search(self, owner: str, words: Sequence[str], limit: int) -> tuple[Any, dict[str, Any]]:
        if self.dialect == "postgresql":
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
        if not _ID.fullmatch(conversation_id or ""):
            raise ConversationError(NOT_YOURS)
        await self._import_legacy(owner)
        found = await self._run(lambda connection: _read(connection, owner, conversation_id))
        if found is None:
            raise ConversationError(NOT_YOURS)
        head, rows, parts = found
        self._remember((owner, conversation_id), head.revision, rows, head.search_text)
        return await sized(len(rows), _conversation, head, rows, parts)

    async def revision(self, owner: str, conversation_id: str) -> int | None:
        """The conversation's stored revision (it moves on with every change, a reply's end included); None when
        the owner has no such conversation. One small query, whatever the conversation's size."""
        if not _ID.fullmatch(conversation_id or ""):
            return None
        await self._import_legacy(owner)
        where = (conversations.c.owner == owner, conversations.c.id == conversation_id)
        statement = select(conversations.c.revision).where(*where)
        found = await self._run(lambda connection: connection.scalar(statement))
        return None if found is None else int(found)

    # --- writing ------------------------------------------------------------------------------------------------

    async def save(self, owner: str, conversation: Conversation, *, touch: bool = True) -> None:
        """Write the conversation if the stored revision is the one it was read at (0: a new one); then
        `conversation.revision` is the new revision. StaleConversationError when another write came first.
        `touch`: the conversation is dated now (first in the list); without, it keeps its date (a rename).

        Only what changed since this process last read or wrote that revision is written (the search index only
        when the text changed). A reply being generated is its task's to write: a save adds it (as streaming,
        without text) but never writes over it."""
        if not _ID.fullmatch(conversation.id):
            raise ConversationError(NOT_YOURS)
        await self._import_legacy(owner)
        key = (owner, conversation.id)
        known = self._known.get(key)
        if known is not None and known.revision != conversation.revision:
            known = None
        grows = conversation.revision == 0 or (known is not None and len(conversation.nodes) > len(known.rows))
        if grows and len(conversation.nodes) > MAX_MESSAGES:  # (a chat kept from before the limit stays as it is)
            raise chat_full()
        before = None if known is None else known.rows
        rows, search_text, streaming, only_added = await sized(len(conversation.nodes), _to_save, conversation, before)
        only_added = only_added and self.dialect == "postgresql"
        updated = time.time() if touch else conversation.updated
        head = _head(conversation, updated, conversation.revision + 1, search_text)
        if known is not None and known.search_text == search_text:
            del head["search_text"]  # unchanged: the search index is left as it is

        def write(connection: Connection) -> None:
            if conversation.revision == 0:
                values = {"owner": owner, "id": conversation.id, "created": conversation.created, **head}
                _create(connection, values, rows, streaming)
                return
            read = {"key_owner": owner, "key_id": conversation.id, "read_revision": conversation.revision}
            if only_added:
                if not _add_postgres(connection, {**read, **head}, rows, len(before or ()), streaming):
                    raise _stale()
                return
            changed = connection.execute(_UPDATE_READ_REVISION, {**read, **head})
            if changed.rowcount != 1:
                raise _stale()
            _write_messages(connection, key, rows, before)
            _register_replies(connection, key, streaming, updated, new_from=len(before or ()))

        try:
            await self._run(write, write=True, alone=conversation.revision == 0 or only_added)
        except IntegrityError:  # a new conversation whose id is taken: another write created it first
            self._forget(key)
            raise _stale() from None
        if conversation.revision == 0:
            self._inserted()
        conversation.updated = updated
        conversation.revision += 1
        self._remember(key, conversation.revision, rows, search_text)

    def _remember(self, key: tuple[str, str], revision: int, rows: Sequence[_Row], search_text: str) -> None:
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
        if not _ID.fullmatch(conversation_id or ""):
            raise ConversationError(NOT_YOURS)

        def remove(connection: Connection) -> int:
            for table in (reply_parts, replies, messages):
                connection.execute(
                    delete(table).where(table.c.owner == owner, table.c.conversation_id == conversation_id)
                )
            where = (conversations.c.owner == owner, conversations.c.id == conversation_id)
            return connection.execute(delete(conversations).where(*where)).rowcount

        if await self._run(remove, write=True) != 1:
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
        values = {"owner": owner, "conversation_id": conversation_id, "position": position, "seq": seq}
        details = None if provenance is None else _message_row(provenance.model_copy(update={"status": "streaming"}))[3]

        def write(connection: Connection) -> None:
            row = {**values, "text": part.text, "reasoning": part.reasoning, "at": time.time()}
            connection.execute(_INSERT_PART, row)
            if details is not None:
                connection.execute(
                    update(messages).where(*_message_key(owner, conversation_id, position)).values(details=details)
                )

        await self._run(write, write=True)

    async def finish_reply(self, owner: str, conversation_id: str, position: int, message: StoredMessage) -> None:
        """Write reply `position` as it ended (whole text, status, timings) in place of its parts, and make it part
        of the conversation's search text. Not checked against a revision (the reply is its task's alone); it moves
        the conversation to a new revision, so a page holding the old one reads it again. Nothing when the
        conversation was deleted meanwhile."""
        _, role, reply_text, details = _message_row(message)
        key = _message_key(owner, conversation_id, position)

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

        await self._run(write, write=True)
        self._forget((owner, conversation_id))

    async def interrupt_replies(self) -> int:
        """Mark every reply still registered as running as interrupted, with its text up to its last checkpoint:
        for a single app process at start-up, when no reply of an earlier run can still be going. How many.
        (Replicas sharing the store leave this to their sweep: backend/relay.py.)"""
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

        def registered(connection: Connection) -> list[tuple[str, str, int, float]]:
            columns = (replies.c.owner, replies.c.conversation_id, replies.c.position, replies.c.started)
            return [(row[0], row[1], row[2], row[3]) for row in connection.execute(select(*columns)).all()]

        return await self._run(registered)

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
        message.error = "The app stopped while this reply was being written; this is what had arrived."
        await self.finish_reply(owner, conversation_id, position, message)
        return True

    async def save_image(self, owner: str, data: bytes, mime: str) -> str:
        return await self.media.save(owner, data, mime)

    async def load_image(self, owner: str, reference: str) -> Image:
        return await self.media.load(owner, reference)

    def image_path(self, owner: str, reference: str) -> Path:
        return self.media.path(owner, reference)

    # --- generated images' details --------------------------------------------------------------------------------

    async def add_image(self, owner: str, name: str, created: float, details: dict[str, Any]) -> None:
        """Record a generated image (its file `name` in the owner's image folder) with its details."""
        row = {"owner": owner, "name": name, "created": created, "details": json.dumps(details)}
        await self._run(lambda connection: connection.execute(insert(images).values(**row)), write=True)

    async def images(self, owner: str, limit: int, legacy_folder: Path | None = None) -> Sequence[dict[str, Any]]:
        """The owner's generated images, newest first: each its details with `name` and `created`. Details an
        earlier version kept as JSON files beside the images (in `legacy_folder`) are imported once first."""
        if legacy_folder is not None:
            await self._once(f"images:{owner}", lambda: self._import_legacy_images(owner, legacy_folder))
        statement = (
            select(images.c.name, images.c.created, images.c.details)
            .where(images.c.owner == owner)
            .order_by(images.c.created.desc(), images.c.name.desc())
            .limit(limit)
        )
        rows = await self._run(lambda connection: connection.execute(statement).all())
        return [{**json.loads(row.details), "name": row.name, "created": row.created} for row in rows]

    async def _import_legacy_images(self, owner: str, folder: Path) -> None:
        found = await legacy_image_details(folder)

        def write(connection: Connection) -> None:
            done = connection.scalar(select(legacy_image_imports.c.owner).where(legacy_image_imports.c.owner == owner))
            if done is not None:
                return
            if found:
                rows = [
                    {"owner": owner, "name": name, "created": created, "details": json.dumps(details)}
                    for name, created, details in found
                ]
                connection.execute(insert(images), rows)
                log.info("imported the details of %d generated image(s) of %r into the database", len(rows), owner)
            connection.execute(insert(legacy_image_imports).values(owner=owner, count=len(found), at=time.time()))

        await self._run(write, write=True)

    # --- system-prompt presets -------------------------------------------------------------------------------------

    async def presets(self, owner: str) -> Sequence[Preset]:
        """The owner's saved system prompts, by name (case aside)."""
        statement = select(presets.c.name, presets.c.text).where(presets.c.owner == owner)
        rows = await self._run(lambda connection: connection.execute(statement).all())
        return sorted((Preset(name=row.name, text=row.text) for row in rows), key=lambda preset: preset.name.lower())

    async def save_preset(self, owner: str, preset: Preset) -> None:
        """Keep `preset` under its name, in place of one of that name (case aside). An owner keeps at most
        PRESETS_KEPT."""
        same = (presets.c.owner == owner, func.lower(presets.c.name) == preset.name.lower())
        row = {"owner": owner, "name": preset.name, "text": preset.text, "updated": time.time()}

        def write(connection: Connection) -> None:
            replaced = connection.execute(delete(presets).where(*same)).rowcount
            if not replaced:
                kept = connection.scalar(select(func.count()).select_from(presets).where(presets.c.owner == owner))
                if (kept or 0) >= PRESETS_KEPT:
                    raise ConversationError(f"You have {PRESETS_KEPT} presets, the most kept: delete one first.")
            connection.execute(insert(presets).values(**row))

        await self._run(write, write=True)

    async def delete_preset(self, owner: str, name: str) -> None:
        statement = delete(presets).where(presets.c.owner == owner, presets.c.name == name)
        removed = await self._run(lambda connection: connection.execute(statement).rowcount, write=True)
        if removed != 1:
            raise ConversationError("There is no preset of that name.")

    # --- API keys (the /v1 API) ------------------------------------------------------------------------------------

    async def create_api_key(self, owner: str) -> tuple[str, str]:
        """A new API key for `owner`: its id (to list and revoke it) and the key, shown this once (only its hash
        is kept)."""
        key_id = secrets.token_hex(4)
        key = f"sb-{key_id}-{secrets.token_urlsafe(32)}"
        row = {"digest": _digest(key), "owner": owner, "id": key_id, "created": time.time(), "revoked": None}
        await self._run(lambda connection: connection.execute(insert(api_keys).values(**row)), write=True)
        return key_id, key

    async def api_key_owner(self, key: str) -> tuple[str, str] | None:
        """The owner and id of `key`, or None when it is not a key or was revoked."""
        if not key.startswith("sb-") or len(key) > 200:
            return None
        statement = select(api_keys.c.owner, api_keys.c.id).where(
            api_keys.c.digest == _digest(key), api_keys.c.revoked.is_(None)
        )
        row = await self._run(lambda connection: connection.execute(statement).first())
        return None if row is None else (row.owner, row.id)

    async def revoke_api_key(self, key_id: str) -> str:
        """Revoke the key `key_id` (its requests get 401 from now on); whose it was. ConversationError if none."""

        def revoke(connection: Connection) -> str | None:
            owner = connection.scalar(select(api_keys.c.owner).where(api_keys.c.id == key_id))
            if owner is not None:
                connection.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked=time.time()))
            return owner

        owner = await self._run(revoke, write=True)
        if owner is None:
            raise ConversationError(f"There is no API key {key_id!r}.")
        return owner

    # --- the database -------------------------------------------------------------------------------------------

    async def open(self, owners: Iterable[str] = ()) -> None:
        """Connect, bring the schema up to date (once), and import the JSON conversations of `owners` an earlier
        version left (once; others' on their first visit). A newer, damaged or locked database is a ConfigError
        with one sentence."""
        await self._run(lambda connection: None)
        for owner in owners:
            await self._import_legacy(owner)

    async def aclose(self) -> None:
        """Close this event loop's connections (a later call opens new ones)."""
        await self._database.aclose()

    async def _run(self, operation: Operation[T], *, write: bool = False, alone: bool = False) -> T:
        """`operation` in one transaction, committed when it returns. A SQLite write transaction takes the write
        lock when it begins (BEGIN IMMEDIATE), so two writers wait for each other instead of one failing
        halfway. `alone`: the operation runs one statement on PostgreSQL, atomic without a transaction."""
        try:
            if not self._migrated:
                async with self._lock("migrate"):  # the first calls arrive together: one migrates, all wait
                    if not self._migrated:
                        await self._database.run(lambda connection: _upgrade(connection, self.url), write=True)
                        self._migrated = True
                        self._inserted()  # what a process that stopped left unindexed
            return await self._database.run(operation, write=write, alone=alone)
        except (OperationalError, OSError) as error:  # OSError: a server that cannot be reached at all
            raise _unavailable(self.url, error) from None
        except DatabaseError as error:
            if self._migrated:
                raise
            raise _unavailable(self.url, error) from None

    def _inserted(self) -> None:
        """Conversations were inserted: on PostgreSQL, without their search vectors, computed soon after."""
        if isinstance(self._database, _Postgres):
            self._database.index_soon()

    def _lock(self, name: str) -> asyncio.Lock:
        """A lock of this event loop's (an asyncio.Lock belongs to one loop)."""
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        return locks.setdefault(name, asyncio.Lock())

    async def _import_legacy(self, owner: str) -> None:
        """Conversations an earlier version kept as JSON files, imported into the database once per owner, on the
        owner's first visit; the files are left as they were."""
        await self._once(f"conversations:{owner}", lambda: self._import_legacy_once(owner))

    async def _once(self, name: str, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` once in this process's life, however many calls arrive together; a key conflict means
        another process did it at the same moment (the import records say so), which is as good."""
        if name in self._done:
            return
        async with self._lock(name):
            if name not in self._done:
                with contextlib.suppress(IntegrityError):
                    await action()
                self._done.add(name)

    async def _import_legacy_once(self, owner: str) -> None:
        found = await legacy_conversations(self.data_dir / "conversations", owner)
        analyze = self.dialect == "postgresql"

        def write(connection: Connection) -> int:
            done = connection.scalar(select(legacy_imports.c.owner).where(legacy_imports.c.owner == owner))
            if done is not None:
                return 0
            known = set(connection.scalars(select(conversations.c.id).where(conversations.c.owner == owner)).all())
            fresh = [conversation for conversation in found if conversation.id not in known]
            for conversation in fresh:
                head = _head(conversation, conversation.updated, 1, _search_text(conversation))
                values = {"owner": owner, "id": conversation.id, "created": conversation.created, **head}
                _create(connection, values, [_message_row(message) for message in conversation.nodes], [])
            connection.execute(insert(legacy_imports).values(owner=owner, count=len(fresh), at=time.time()))
            if found:
                log.info("imported %d conversation(s) of %r from JSON files into the database", len(fresh), owner)
            if fresh and analyze:
                # Statistics for the rows just added, or searches scan them all until autovacuum gets to it.
                connection.exec_driver_sql("ANALYZE conversations")
            return len(fresh)

        if await self._run(write, write=True):
            self._inserted()


class _SQLite:
    """SQLite through the standard library's driver, each operation whole on one thread of the store's own: one
    hop from the event loop and back per operation, and writers in one process never wait on each other's
    locks."""

    def __init__(self, url: str) -> None:
        path = make_url(url).database or ""
        self.path = path
        self._engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._write_lock = threading.Lock()  # this process's writers: the store's thread and _Upkeep's merges
        self._upkeep = _Upkeep(path, self._write_lock)

    async def run(self, operation: Operation[T], *, write: bool, alone: bool = False) -> T:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="switchboard-sqlite")
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._transaction, operation, write)

    def _transaction(self, operation: Operation[T], write: bool) -> T:
        if self._engine is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._engine = create_engine(f"sqlite:///{self.path}", connect_args={"timeout": 10})
            event.listen(self._engine, "connect", _sqlite_connected)
            event.listen(self._engine, "begin", _sqlite_begin)
        if not write:
            return self._in_transaction(operation, write)
        with self._write_lock:
            result = self._in_transaction(operation, write)
        self._upkeep.after_write()
        return result

    def _in_transaction(self, operation: Operation[T], write: bool) -> T:
        assert self._engine is not None
        with self._engine.connect() as connection:
            if write:
                connection = connection.execution_options(switchboard_write=True)
            with connection.begin():
                result = operation(connection)
            if write and self._upkeep.log_too_long():
                # The writer copies the log itself, as SQLite would have: no write comes between, so it starts over.
                raw = connection.connection.driver_connection  # (outside SQLAlchemy's transactions)
                assert raw is not None
                raw.execute("PRAGMA wal_checkpoint(PASSIVE)")
            return result

    async def aclose(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            engine, self._engine = self._engine, None
            if engine is not None:
                await asyncio.get_running_loop().run_in_executor(thread, engine.dispose)
            thread.shutdown(wait=False)
        self._upkeep.close()


class _Upkeep:
    """Work SQLite would otherwise do inside whichever commit crosses a mark, done beside the writer on a thread of
    its own, in rounds UPKEEP_EVERY seconds apart while writes come (the last one after the last write):

    - copying the write-ahead log into the database file (SQLite's own checkpoint runs in the commit that takes the
      log past 1,000 pages, fsync and all: one save in thirty waited 5-10 ms for it). A checkpoint beside the
      writer (PASSIVE) never blocks it, but the log only starts over when a write finds it all copied; should
      steady writes keep it growing to WAL_MOST_BYTES, the writer checkpoints it itself, as SQLite would;
    - merging the search index's segments (FTS5 merges them in the save that fills a level: one save in twenty
      waited 3-15 ms; migration 0006 turns that off). A merge writes, so it takes the writer's lock, a few pages at
      a time and only once no write came for QUIET seconds: a save rarely waits, and then for one step at most.
      Under writes that never pause, FTS5 merges a level itself when it reaches 64 segments.
    """

    def __init__(self, path: str, write_lock: threading.Lock) -> None:
        self.path = path
        self._write_lock = write_lock
        self._thread: ThreadPoolExecutor | None = None
        self._state = threading.Lock()  # between the writer's thread and the upkeep's
        self._active = False  # the upkeep runs (and goes round again if writes come meanwhile)
        self._written = 0.0  # when the last write ended
        self._closing = threading.Event()
        self._connection: sqlite3.Connection | None = None

    def after_write(self) -> None:
        """Called on the writer's thread after each write transaction (its lock released)."""
        with self._state:
            self._written = time.monotonic()
            if self._active:
                return  # the upkeep running sees this write, and goes round once more
            self._active = True
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="switchboard-sqlite-upkeep")
        self._thread.submit(self._upkeep)

    def _upkeep(self) -> None:
        """Rounds UPKEEP_EVERY apart for as long as writes come, the last one after the last write: each merges
        the index step by step while writes pause (until no merge is due, or for a second), then checkpoints."""
        while not self._closing.wait(UPKEEP_EVERY):
            began = time.monotonic()
            try:
                self._checkpoint()  # what writes added since the last round (it never waits for them)
                ends = began + 1.0
                while time.monotonic() < ends and not self._closing.is_set():
                    quiet = time.monotonic() - self._written
                    if quiet < QUIET:
                        time.sleep(QUIET - quiet)
                    elif not self._merge_step():
                        break
                self._checkpoint()
            except sqlite3.Error as error:  # FTS5's own crisis merges and the writer's checkpoint still bound both
                log.warning("store: upkeep of %s failed: %s", self.path, error)
            with self._state:
                if self._written < began:
                    self._active = False
                    return
        with self._state:
            self._active = False

    def _merge_step(self) -> bool:
        """Merge about MERGE_PAGES pages of a search index level that has 4 segments or more; whether there was
        any (FTS5 counts a merge's work as two changes or more)."""
        connection = self._connect()
        with self._write_lock:
            before = connection.total_changes
            connection.execute(
                "INSERT INTO conversation_search(conversation_search, rank) VALUES ('merge', ?)", (MERGE_PAGES,)
            )
            return connection.total_changes - before >= 2

    def _checkpoint(self) -> None:
        self._connect().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def log_too_long(self) -> bool:
        """Whether steady writes kept the write-ahead log from starting over until it reached WAL_MOST_BYTES."""
        return _file_size(self.path + "-wal") >= WAL_MOST_BYTES

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            for pragma in ("synchronous=NORMAL", "wal_autocheckpoint=0"):  # as the writer's (_sqlite_connected)
                self._connection.execute(f"PRAGMA {pragma}")
        return self._connection

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._closing.set()  # a round waiting (for its time, or for writes to pause) ends now
            thread.shutdown(wait=True)
            self._closing.clear()
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class _Postgres:
    """PostgreSQL through asyncpg, an engine per event loop (a pooled connection belongs to the loop that opened
    it: the server's, a test's, a CLI's asyncio.run)."""

    def __init__(self, url: str, password: str | None) -> None:
        self.url = url
        self.password = password
        self._engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEngine] = weakref.WeakKeyDictionary()
        self._indexers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Indexer] = weakref.WeakKeyDictionary()

    async def run(self, operation: Operation[T], *, write: bool, alone: bool = False) -> T:
        try:
            return await self._run(operation, alone)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
        # A pooled connection the server had closed (a restart, an idle timeout): the pool has dropped it and
        # the ones opened with it; the operation, which failed on its first statement, runs again on a new one.
        # (Cheaper than asking the server whether each connection is alive before every use.)
        return await self._run(operation, alone)

    async def _run(self, operation: Operation[T], alone: bool) -> T:
        async with self._engine().connect() as connection:
            if alone:  # no BEGIN and COMMIT: two round trips fewer
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            async with connection.begin():
                return await connection.run_sync(operation)

    def _engine(self) -> AsyncEngine:
        loop = asyncio.get_running_loop()
        engine = self._engines.get(loop)
        if engine is None:
            # A custom plan for every search: with the generic plan of a prepared statement, PostgreSQL cannot see
            # how selective the words are and scans every row of the owner instead of the search index (60 ms
            # instead of 1 ms over 10,000 conversations).
            settings = {"plan_cache_mode": "force_custom_plan"}
            password = {"password": self.password} if self.password else {}
            engine = create_async_engine(self.url, connect_args={"server_settings": settings, **password})
            self._engines[loop] = engine
        return engine

    def index_soon(self) -> None:
        """Conversations were inserted without their search vectors (migration 0007): compute them soon."""
        loop = asyncio.get_running_loop()
        indexer = self._indexers.get(loop)
        if indexer is None:
            indexer = self._indexers[loop] = _Indexer(self._index_batch)
        indexer.inserted()

    async def _index_batch(self) -> int:
        return await self.run(_index_waiting, write=True, alone=True)

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        indexer = self._indexers.pop(loop, None)
        if indexer is not None:
            await indexer.close()
        engine = self._engines.pop(loop, None)
        if engine is not None:
            await engine.dispose()


class _Indexer:
    """PostgreSQL: the search vectors of conversations inserted without one, computed on one event loop once
    inserts pause for INDEX_QUIET seconds (at most INDEX_WITHIN after the first waiting), in statements of
    INDEX_BATCH rows, so that making a chat's text a vector is not part of the write a page waits on (half of it).
    Search computes a missing vector itself: this keeps searches quick, never decides what they find. Rows a
    stopped process left are done by the next process's first round."""

    def __init__(self, index_batch: Callable[[], Awaitable[int]]) -> None:
        self._index_batch = index_batch  # one statement; the rows it did
        self._first: float | None = None  # when the first insert not yet in a round came (loop time)
        self._timer: asyncio.TimerHandle | None = None
        self._round: asyncio.Task[None] | None = None
        self._again = False  # inserts came while a round ran: it goes round once more
        self._closing = False

    def inserted(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._timer is not None:
            self._timer.cancel()
        if self._first is None:
            self._first = now
        self._timer = loop.call_at(min(now + INDEX_QUIET, self._first + INDEX_WITHIN), self._start)

    def _start(self) -> None:
        self._timer = self._first = None
        if self._round is not None:
            self._again = True
        elif not self._closing:
            self._round = asyncio.get_running_loop().create_task(self._index())

    async def _index(self) -> None:
        try:
            again = True
            while again and not self._closing:
                self._again = False
                while await self._index_batch() == INDEX_BATCH and not self._closing:
                    pass
                again = self._again
        except (SQLAlchemyError, OSError) as error:  # search computes the vectors still missing meanwhile
            log.warning("store: computing new conversations' search vectors failed: %s", error)
        finally:
            self._round = None  # a done task would keep its event loop (this indexer's key) alive

    async def close(self) -> None:
        """Stop (a statement running ends first)."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        if self._round is not None:
            await self._round


def _read(
    connection: Connection, owner: str, conversation_id: str
) -> tuple[Any, list[_Row], dict[int, ReplyPart]] | None:
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


def _conversation(head: Any, rows: Sequence[_Row], parts: dict[int, ReplyPart]) -> Conversation:
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


def _to_save(conversation: Conversation, before: Sequence[_Row] | None) -> tuple[list[_Row], str, list[int], bool]:
    """What a save of the conversation writes (titled from its first message if it has no title yet): its
    messages' rows, its search text, the positions of its replies being generated, and whether it only adds
    messages to `before` (the rows stored, when known)."""
    conversation.auto_title()
    rows = [_message_row(message) for message in conversation.nodes]
    streaming = [n for n, message in enumerate(conversation.nodes) if message.status == "streaming"]
    return rows, _search_text(conversation), streaming, _only_added(before, rows, streaming)


def _write_messages(
    connection: Connection, key: tuple[str, str], rows: Sequence[_Row], before: Sequence[_Row] | None
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
        connection.execute(_INSERT_MESSAGES, added)


def _create(connection: Connection, values: dict[str, Any], rows: Sequence[_Row], streaming: Sequence[int]) -> None:
    """Insert a new conversation (`values`: its row), its messages and its replies being generated, as
    registered from `values["updated"]`. IntegrityError when the id is taken."""
    key = (values["owner"], values["id"])
    if connection.dialect.name != "postgresql":
        connection.execute(_INSERT_CONVERSATION, values)
        _write_messages(connection, key, rows, [])
        _register_replies(connection, key, streaming, values["updated"], new_from=0)
        return
    connection.execute(_CREATE_CONVERSATION_POSTGRES, {**values, **_added(rows, 0, streaming, values["updated"])})


def _only_added(before: Sequence[_Row] | None, rows: Sequence[_Row], streaming: Sequence[int]) -> bool:
    """Whether a save only adds messages (and replies being generated among them) to what is stored: a message
    sent, the save a page waits on most."""
    if before is None or len(rows) <= len(before):
        return False
    return tuple(rows[: len(before)]) == tuple(before) and all(position >= len(before) for position in streaming)


def _add_postgres(
    connection: Connection, values: dict[str, Any], rows: Sequence[_Row], first: int, streaming: Sequence[int]
) -> bool:
    """PostgreSQL: update the conversation's row (`values`: its new values, its key and the revision read) and
    add its messages from position `first` on and its replies being generated, as one statement; whether the
    revision read was the stored one (if not, nothing was written)."""
    statement = _ADD_TO_CONVERSATION_POSTGRES["search_text" in values]
    return connection.execute(statement, {**values, **_added(rows, first, streaming, values["updated"])}).scalar() == 1


def _added(rows: Sequence[_Row], first: int, streaming: Sequence[int], started: float) -> dict[str, Any]:
    """The values _ADD_MESSAGES_AND_REPLIES takes: the messages from position `first` on, as arrays of their
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


def _register_replies(
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
        connection.execute(_INSERT_REPLIES, rows)


def _waiting_question(connection: Connection, owner: str, conversation_id: str, position: int) -> list[str]:
    """The text of the question reply `position` answers when no other reply to it has ended (so it is not in the
    search text yet: see `_search_text`)."""
    parent = connection.scalar(select(messages.c.parent).where(*_message_key(owner, conversation_id, position)))
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


def _index_waiting(connection: Connection) -> int:
    """Compute the search vectors of up to INDEX_BATCH conversations inserted without one; how many it did."""
    return connection.execute(_INDEX_WAITING, {"batch": INDEX_BATCH}).rowcount


def _forget_reply(connection: Connection, owner: str, conversation_id: str, position: int) -> None:
    for table in (reply_parts, replies):
        connection.execute(delete(table).where(*_message_key(owner, conversation_id, position, table)))


def _message_key(owner: str, conversation_id: str, position: int, table: Any = messages) -> tuple[Any, ...]:
    return (table.c.owner == owner, table.c.conversation_id == conversation_id, table.c.position == position)


def _upgrade(connection: Connection, url: str) -> None:
    """Alembic's upgrade to the newest schema, on `connection`; refuses a database a newer version wrote."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    scripts = ScriptDirectory.from_config(config)
    current = MigrationContext.configure(connection).get_current_revision()
    if current is not None and current not in {script.revision for script in scripts.walk_revisions()}:
        raise ConfigError(
            f"store: the database at {_where(url)} was written by a newer Switchboard (schema {current}); "
            "upgrade Switchboard, or point store.url at another database."
        )
    command.upgrade(config, "head")


def _sqlite_connected(connection: Any, _record: Any) -> None:
    """WAL (readers never wait for the writer; a killed process loses no committed transaction), foreign keys, a
    wait instead of an error while another process writes; transactions begun by us, not by the driver."""
    connection.isolation_level = None
    cursor = connection.cursor()
    pragmas = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=10000")
    # The log is checkpointed beside the writer (_Upkeep), and cut back once it starts over.
    sizes = ("wal_autocheckpoint=0", f"journal_size_limit={WAL_MOST_BYTES // 4}")
    for pragma in (*pragmas, *sizes):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get("switchboard_write")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _message_row(message: StoredMessage) -> _Row:
    """A message as stored. A reply being generated is stored without its text and reasoning: those grow in
    `reply_parts` until it ends."""
    streaming = message.status == "streaming"
    exclude = {"role", "text", "parent", *(("reasoning",) if streaming else ())}
    details = message.model_dump(mode="json", exclude=exclude, exclude_defaults=True)
    return (message.parent, message.role, "" if streaming else message.text, json.dumps(details))


def _head(conversation: Conversation, updated: float, revision: int, search_text: str) -> dict[str, Any]:
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


def _digest(key: str) -> str:
    """What is kept of an API key: its SHA-256 (a key is random, long and never typed: no salt or slow hash
    needed to make a stolen table useless)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _search_text(conversation: Conversation) -> str:
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


def _words(query: str) -> list[str]:
    """The words of a search, as the full-text indexes split text (letters, digits, underscores)."""
    return re.findall(r"\w+", query.lower())[:20]


def _stale() -> StaleConversationError:
    return StaleConversationError(
        "This chat was changed elsewhere (another tab or window) since it was opened here; it shows the current "
        "version now."
    )


def _where(url: str) -> str:
    """The database for a message: its file or host and name, never a password."""
    parsed = make_url(url)
    return parsed.database or "" if parsed.get_backend_name() == "sqlite" else parsed.render_as_string(True)


def _unavailable(url: str, error: SQLAlchemyError | OSError) -> ConfigError:
    """One sentence for a database that cannot be used: damaged, locked, unreachable."""
    reason = str(getattr(error, "orig", error)).splitlines()[0][:200]
    if "not a database" in reason or "malformed" in reason:
        return ConfigError(f"store: {_where(url)} is damaged (not a readable database): {reason}")
    if "locked" in reason:
        return ConfigError(f"store: {_where(url)} is locked by another program; close it and start again")
    return ConfigError(f"store: cannot use the database at {_where(url)}: {reason}")
