"""The conversation store on SQL: one implementation (SQLAlchemy 2, async), two engines.

- SQLite (aiosqlite) by default: one file, `app.data_dir/switchboard.db`, in WAL mode (readers never wait for a
  writer; a process killed mid-write leaves every committed transaction readable).
- PostgreSQL (asyncpg) with `store.url = "postgresql+asyncpg://USER@HOST:PORT/DB"`, the password from the
  variable `store.password_env` names: for several app processes sharing one store.

The schema comes from Alembic migrations (`backend/store/migrations`), applied when the store opens; a database
written by a newer version is refused with one sentence, as is a damaged or locked one. Search uses the engine's
full-text index (SQLite FTS5, PostgreSQL tsvector), ranked, with a snippet around the match.

Every query names the owner: the owner is the first column of every key. Every save states the revision it read
and is refused (StaleConversationError) when the stored one moved on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event, insert, select, text, update
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..conversations import (
    Conversation,
    ConversationError,
    MediaFiles,
    StaleConversationError,
    StoredMessage,
    Summary,
    legacy_conversations,
)
from ..errors import ConfigError
from ..imagegen import legacy_image_details
from ..media import Image
from ._schema import conversations, images, legacy_image_imports, legacy_imports, messages

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
NOT_YOURS = "That conversation does not exist (or is not yours)."
SEARCH_LIMIT = 50
_ID = re.compile(r"[0-9a-f]{16}")


_Row = tuple[str, str, str]  # a message as stored: role, text, details (JSON)
KNOWN_KEPT = 1000  # conversations whose stored rows this process remembers, to write only what changed


@dataclass(slots=True)
class _Known:
    """A conversation as this process last read or wrote it, at `revision`."""

    revision: int
    rows: tuple[_Row, ...]
    search_text: str


class SQLConversationStore:
    """Conversations in SQLite or PostgreSQL; images as files beside (MediaFiles)."""

    def __init__(self, url: str, data_dir: Path, *, password: str | None = None) -> None:
        self.url = url
        self.password = password
        self.data_dir = Path(data_dir).expanduser()
        self.media = MediaFiles(self.data_dir / "conversations")
        self.dialect = make_url(url).get_backend_name()
        # An engine per event loop: a pooled connection belongs to the loop that opened it (the server's loop,
        # a test's, a CLI's asyncio.run).
        self._engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEngine] = weakref.WeakKeyDictionary()
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )
        self._known: OrderedDict[tuple[str, str], _Known] = OrderedDict()
        self._migrated = False
        self._done: set[str] = set()  # what `_once` did

    @classmethod
    def for_settings(cls, data_dir: Path, url: str = "", password: str | None = None) -> SQLConversationStore:
        """The store a configuration names: `url`, or SQLite at `data_dir/switchboard.db`."""
        data_dir = Path(data_dir).expanduser()
        return cls(url or f"sqlite+aiosqlite:///{data_dir / 'switchboard.db'}", data_dir, password=password)

    # --- reading ------------------------------------------------------------------------------------------------

    async def list(self, owner: str, query: str = "", limit: int | None = None) -> list[Summary]:
        """The owner's conversations, newest first; with `query`, those matching every word of it (words match
        from their start, case and accents aside), best match first, each with a snippet."""
        await self._import_legacy(owner)
        words = _words(query)
        async with self._connect() as connection:
            if not words:
                statement = (
                    select(conversations.c.id, conversations.c.title, conversations.c.updated)
                    .where(conversations.c.owner == owner)
                    .order_by(conversations.c.updated.desc())
                    .limit(limit)
                )
                rows = (await connection.execute(statement)).all()
                return [Summary(id=row.id, title=row.title, updated=row.updated) for row in rows]
            rows = (await connection.execute(*self._search(owner, words, limit or SEARCH_LIMIT))).all()
        return [Summary(id=row.id, title=row.title, updated=row.updated, snippet=row.snippet or "") for row in rows]

    def _search(self, owner: str, words: Sequence[str], limit: int) -> tuple[Any, dict[str, Any]]:
        if self.dialect == "postgresql":
            statement = text(
                "SELECT c.id, c.title, c.updated, ts_headline('simple', c.search_text, q, "
                '\'MaxWords=14, MinWords=6, StartSel="", StopSel="", MaxFragments=1\') AS snippet '
                "FROM conversations c, to_tsquery('simple', :query) q "
                "WHERE c.owner = :owner AND c.search_vector @@ q "
                "ORDER BY ts_rank(c.search_vector, q) DESC, c.updated DESC LIMIT :limit"
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
        if not _ID.fullmatch(conversation_id or ""):
            raise ConversationError(NOT_YOURS)
        await self._import_legacy(owner)
        async with self._connect() as connection:
            head = (
                await connection.execute(
                    select(conversations).where(conversations.c.owner == owner, conversations.c.id == conversation_id)
                )
            ).one_or_none()
            if head is None:
                raise ConversationError(NOT_YOURS)
            rows = (
                await connection.execute(
                    select(messages.c.role, messages.c.text, messages.c.details)
                    .where(messages.c.owner == owner, messages.c.conversation_id == conversation_id)
                    .order_by(messages.c.position)
                )
            ).all()
        self._remember(
            (owner, conversation_id), head.revision, [(r.role, r.text, r.details) for r in rows], head.search_text
        )
        return Conversation(
            id=head.id,
            title=head.title,
            created=head.created,
            updated=head.updated,
            model=head.model,
            settings=json.loads(head.settings),
            revision=head.revision,
            messages=[StoredMessage(role=row.role, text=row.text, **json.loads(row.details)) for row in rows],
        )

    # --- writing ------------------------------------------------------------------------------------------------

    async def save(self, owner: str, conversation: Conversation) -> None:
        """Write the conversation if the stored revision is the one it was read at (0: a new one); then
        `conversation.revision` is the new revision. StaleConversationError when another write came first.

        Only what changed since this process last read or wrote that revision is written (a reply's checkpoint
        rewrites one message, not the whole conversation; the search index only when the text changed)."""
        conversation.auto_title()
        if not _ID.fullmatch(conversation.id):
            raise ConversationError(NOT_YOURS)
        await self._import_legacy(owner)
        key = (owner, conversation.id)
        rows = [_message_row(message) for message in conversation.messages]
        search_text = _search_text(conversation)
        known = self._known.get(key)
        if known is not None and known.revision != conversation.revision:
            known = None
        updated = time.time()
        head = _head(conversation, updated, conversation.revision + 1, search_text)
        if known is not None and known.search_text == search_text:
            del head["search_text"]  # unchanged: the search index is left as it is
        try:
            async with self._connect(write=True) as connection:
                if conversation.revision == 0:
                    values = {"owner": owner, "id": conversation.id, "created": conversation.created, **head}
                    await connection.execute(insert(conversations).values(**values))
                    await self._write_messages(connection, key, rows, [])
                else:
                    changed = await connection.execute(
                        update(conversations)
                        .where(
                            conversations.c.owner == owner,
                            conversations.c.id == conversation.id,
                            conversations.c.revision == conversation.revision,
                        )
                        .values(**head)
                    )
                    if changed.rowcount != 1:
                        raise _stale()
                    await self._write_messages(connection, key, rows, None if known is None else known.rows)
        except IntegrityError:  # a new conversation whose id is taken: another write created it first
            self._known.pop(key, None)
            raise _stale() from None
        conversation.updated = updated
        conversation.revision += 1
        self._remember(key, conversation.revision, rows, search_text)

    async def _write_messages(
        self, connection: AsyncConnection, key: tuple[str, str], rows: Sequence[_Row], before: Sequence[_Row] | None
    ) -> None:
        """Make the stored messages `rows`: all of them when what is stored is not known (`before` None), else
        only those that differ from `before`."""
        owner, conversation_id = key
        where = (messages.c.owner == owner, messages.c.conversation_id == conversation_id)
        if before is None:
            await connection.execute(delete(messages).where(*where))
            before = []
        elif len(before) > len(rows):
            await connection.execute(delete(messages).where(*where, messages.c.position >= len(rows)))
        for position, row in enumerate(rows[: len(before)]):
            if row != before[position]:
                values = {"role": row[0], "text": row[1], "details": row[2]}
                await connection.execute(update(messages).where(*where, messages.c.position == position).values(values))
        added = [
            {
                "owner": owner,
                "conversation_id": conversation_id,
                "position": position,
                "role": role,
                "text": text,
                "details": details,
            }
            for position, (role, text, details) in enumerate(rows)
            if position >= len(before)
        ]
        if added:
            await connection.execute(insert(messages), added)

    def _remember(self, key: tuple[str, str], revision: int, rows: Sequence[_Row], search_text: str) -> None:
        self._known[key] = _Known(revision, tuple(rows), search_text)
        self._known.move_to_end(key)
        while len(self._known) > KNOWN_KEPT:
            self._known.popitem(last=False)

    async def delete(self, owner: str, conversation_id: str) -> None:
        if not _ID.fullmatch(conversation_id or ""):
            raise ConversationError(NOT_YOURS)
        async with self._connect(write=True) as connection:
            await connection.execute(
                delete(messages).where(messages.c.owner == owner, messages.c.conversation_id == conversation_id)
            )
            gone = await connection.execute(
                delete(conversations).where(conversations.c.owner == owner, conversations.c.id == conversation_id)
            )
            if gone.rowcount != 1:
                raise ConversationError(NOT_YOURS)

    async def save_image(self, owner: str, data: bytes, mime: str) -> str:
        return await self.media.save(owner, data, mime)

    async def load_image(self, owner: str, reference: str) -> Image:
        return await self.media.load(owner, reference)

    def image_path(self, owner: str, reference: str) -> Path:
        return self.media.path(owner, reference)

    # --- generated images' details --------------------------------------------------------------------------------

    async def add_image(self, owner: str, name: str, created: float, details: dict[str, Any]) -> None:
        """Record a generated image (its file `name` in the owner's image folder) with its details."""
        async with self._connect(write=True) as connection:
            row = {"owner": owner, "name": name, "created": created, "details": json.dumps(details)}
            await connection.execute(insert(images).values(**row))

    async def images(self, owner: str, limit: int, legacy_folder: Path | None = None) -> Sequence[dict[str, Any]]:
        """The owner's generated images, newest first: each its details with `name` and `created`. Details an
        earlier version kept as JSON files beside the images (in `legacy_folder`) are imported once first."""
        if legacy_folder is not None:
            await self._once(f"images:{owner}", lambda: self._import_legacy_images(owner, legacy_folder))
        async with self._connect() as connection:
            rows = (
                await connection.execute(
                    select(images.c.name, images.c.created, images.c.details)
                    .where(images.c.owner == owner)
                    .order_by(images.c.created.desc(), images.c.name.desc())
                    .limit(limit)
                )
            ).all()
        return [{**json.loads(row.details), "name": row.name, "created": row.created} for row in rows]

    async def _import_legacy_images(self, owner: str, folder: Path) -> None:
        async with self._connect(write=True) as connection:
            done = await connection.scalar(
                select(legacy_image_imports.c.owner).where(legacy_image_imports.c.owner == owner)
            )
            if done is None:
                found = await legacy_image_details(folder)
                if found:
                    rows = [
                        {"owner": owner, "name": name, "created": created, "details": json.dumps(details)}
                        for name, created, details in found
                    ]
                    await connection.execute(insert(images), rows)
                    log.info("imported the details of %d generated image(s) of %r into the database", len(rows), owner)
                await connection.execute(
                    insert(legacy_image_imports).values(owner=owner, count=len(found), at=time.time())
                )

    # --- the database -------------------------------------------------------------------------------------------

    async def open(self, owners: Iterable[str] = ()) -> None:
        """Connect, bring the schema up to date (once), and import the JSON conversations of `owners` an earlier
        version left (once; others' on their first visit). A newer, damaged or locked database is a ConfigError
        with one sentence."""
        async with self._connect():
            pass
        for owner in owners:
            await self._import_legacy(owner)

    async def aclose(self) -> None:
        engine = self._engines.pop(asyncio.get_running_loop(), None)
        if engine is not None:
            await engine.dispose()

    @asynccontextmanager
    async def _connect(self, *, write: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed at the end of the block. A SQLite write transaction takes the
        write lock when it begins (BEGIN IMMEDIATE), so two writers wait for each other instead of one failing
        halfway."""
        try:
            engine = await self._engine()
            async with engine.connect() as connection:
                if write:
                    await connection.execution_options(switchboard_write=True)
                async with connection.begin():
                    yield connection
        except (OperationalError, OSError) as error:  # OSError: a server that cannot be reached at all
            raise _unavailable(self.url, error) from None

    async def _engine(self) -> AsyncEngine:
        loop = asyncio.get_running_loop()
        engine = self._engines.get(loop)
        if engine is not None:
            return engine
        async with self._lock("engine"):  # the first calls arrive together: one opens (and migrates), all wait
            engine = self._engines.get(loop)
            if engine is None:
                engine = self._create_engine()
                if not self._migrated:
                    try:
                        await self._migrate(engine)
                    except BaseException:
                        await engine.dispose()
                        raise
                    self._migrated = True
                self._engines[loop] = engine
        return engine

    def _lock(self, name: str) -> asyncio.Lock:
        """A lock of this event loop's (an asyncio.Lock belongs to one loop)."""
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        return locks.setdefault(name, asyncio.Lock())

    def _create_engine(self) -> AsyncEngine:
        if self.dialect != "sqlite":
            # A custom plan for every search: with the generic plan of a prepared statement, PostgreSQL cannot see
            # how selective the words are and scans every row of the owner instead of the search index (60 ms
            # instead of 1 ms over 10,000 conversations).
            settings = {"plan_cache_mode": "force_custom_plan"}
            password = {"password": self.password} if self.password else {}
            return create_async_engine(
                self.url, pool_pre_ping=True, connect_args={"server_settings": settings, **password}
            )
        Path(make_url(self.url).database or "").parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(self.url, connect_args={"timeout": 10})
        event.listen(engine.sync_engine, "connect", _sqlite_connected)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine

    async def _migrate(self, engine: AsyncEngine) -> None:
        try:
            async with engine.begin() as connection:
                await connection.run_sync(_upgrade, self.url)
        except (DatabaseError, OSError) as error:
            raise _unavailable(self.url, error) from None

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
        async with self._connect(write=True) as connection:
            done = await connection.scalar(select(legacy_imports.c.owner).where(legacy_imports.c.owner == owner))
            if done is None:
                found = await legacy_conversations(self.data_dir / "conversations", owner)
                known = set(
                    (await connection.scalars(select(conversations.c.id).where(conversations.c.owner == owner))).all()
                )
                fresh = [conversation for conversation in found if conversation.id not in known]
                for conversation in fresh:
                    head = _head(conversation, conversation.updated, 1, _search_text(conversation))
                    values = {"owner": owner, "id": conversation.id, "created": conversation.created, **head}
                    await connection.execute(insert(conversations).values(**values))
                    rows = [_message_row(message) for message in conversation.messages]
                    await self._write_messages(connection, (owner, conversation.id), rows, [])
                await connection.execute(insert(legacy_imports).values(owner=owner, count=len(fresh), at=time.time()))
                if found:
                    log.info("imported %d conversation(s) of %r from JSON files into the database", len(fresh), owner)
                if fresh and self.dialect == "postgresql":
                    # Statistics for the rows just added, or searches scan them all until autovacuum gets to it.
                    await connection.exec_driver_sql("ANALYZE conversations")


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
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=10000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get("switchboard_write")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _message_row(message: StoredMessage) -> _Row:
    details = message.model_dump(mode="json", exclude={"role", "text"}, exclude_defaults=True)
    return (message.role, message.text, json.dumps(details))


def _head(conversation: Conversation, updated: float, revision: int, search_text: str) -> dict[str, Any]:
    """The conversation's own row, but its keys and creation time."""
    return {
        "title": conversation.title,
        "updated": updated,
        "model": conversation.model,
        "settings": json.dumps(conversation.settings),
        "revision": revision,
        "search_text": search_text,
    }


def _search_text(conversation: Conversation) -> str:
    return "\n".join([conversation.title, *(message.text for message in conversation.messages if message.text)])


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
