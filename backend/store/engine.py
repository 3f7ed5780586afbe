"""The one database every kind of stored data shares: SQLAlchemy 2 Core over two engines.

- SQLite by default: one file, `app.data_dir/switchboard.db`, in WAL mode (readers never wait for a writer; a
  process killed mid-write leaves every committed transaction readable). backend/store/sqlite.py
- PostgreSQL (asyncpg) with `store.url = "postgresql+asyncpg://USER@HOST:PORT/DB"`, the password from the
  variable `store.password_env` names: for several app processes sharing one store. backend/store/postgres.py

Every operation is one plain function over a SQLAlchemy `Connection`, run in one transaction: for PostgreSQL
through the async engine (`run_sync`), for SQLite whole on the store's own thread. SQLite does a save in about
0.2 ms; an async driver that hops to its thread and back for every statement (aiosqlite) made the same save cost
1.5 ms, so one hop per operation is what keeps the UI's saves as quick as the JSON files were.

The schema comes from Alembic migrations (`backend/store/migrations`), applied when the database is first used; a
database written by a newer version is refused with one sentence, as is a damaged or locked one.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError, SQLAlchemyError

from ..errors import ConfigError
from ._operation import Operation, T
from .postgres import Postgres
from .sqlite import SQLite

MIGRATIONS = Path(__file__).parent / "migrations"


class Database:
    """One SQLite or PostgreSQL database: `run` an operation in one transaction, the schema brought up to date
    first (once)."""

    def __init__(self, url: str, *, password: str | None = None) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        self._engine: SQLite | Postgres = SQLite(url) if self.dialect == "sqlite" else Postgres(url, password)
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )
        self._migrated = False
        self._done: set[str] = set()  # what `once` did

    async def run(self, operation: Operation[T], *, write: bool = False, alone: bool = False) -> T:
        """`operation` in one transaction, committed when it returns. A SQLite write transaction takes the write
        lock when it begins (BEGIN IMMEDIATE), so two writers wait for each other instead of one failing
        halfway. `alone`: the operation runs one statement on PostgreSQL, atomic without a transaction."""
        try:
            if not self._migrated:
                async with self.lock("migrate"):  # the first calls arrive together: one migrates, all wait
                    if not self._migrated:
                        await self._engine.run(lambda connection: _upgrade(connection, self.url), write=True)
                        self._migrated = True
                        self.inserted()  # what a process that stopped left unindexed
            return await self._engine.run(operation, write=write, alone=alone)
        except (OperationalError, OSError) as error:  # OSError: a server that cannot be reached at all
            raise _unavailable(self.url, error) from None
        except DatabaseError as error:
            if self._migrated:
                raise
            raise _unavailable(self.url, error) from None

    def inserted(self) -> None:
        """Conversations were inserted: on PostgreSQL, without their search vectors, computed soon after."""
        if isinstance(self._engine, Postgres):
            self._engine.index_soon()

    def lock(self, name: str) -> asyncio.Lock:
        """A lock of this event loop's (an asyncio.Lock belongs to one loop)."""
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        return locks.setdefault(name, asyncio.Lock())

    async def once(self, name: str, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` once in this process's life, however many calls arrive together; a key conflict means
        another process did it at the same moment (the import records say so), which is as good."""
        if name in self._done:
            return
        async with self.lock(name):
            if name not in self._done:
                with contextlib.suppress(IntegrityError):
                    await action()
                self._done.add(name)

    async def aclose(self) -> None:
        """Close this event loop's connections (a later call opens new ones)."""
        await self._engine.aclose()


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
