"""PostgreSQL, for several app processes sharing one store: asyncpg through SQLAlchemy's async engine, and the
search vectors of new conversations computed just after their write."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ._operation import Operation, T

log = logging.getLogger(__name__)


# PostgreSQL's search vectors of new conversations, computed after their write (_Indexer)
INDEX_QUIET = 0.05  # seconds without an insert before a round
INDEX_WITHIN = 1.0  # seconds after the first insert waiting, at most
INDEX_BATCH = 50  # conversations a statement (about 35 ms of the server's time)

# Rows other statements hold are skipped (a save's, another process's round): a later round does them.
_INDEX_WAITING = text(
    "UPDATE conversations SET search_vector = to_tsvector('simple', search_text) WHERE (owner, id) IN "
    "(SELECT owner, id FROM conversations WHERE search_vector IS NULL LIMIT :batch FOR UPDATE SKIP LOCKED)"
)


class Postgres:
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


def _index_waiting(connection: Connection) -> int:
    """Compute the search vectors of up to INDEX_BATCH conversations inserted without one; how many it did."""
    return connection.execute(_INDEX_WAITING, {"batch": INDEX_BATCH}).rowcount
