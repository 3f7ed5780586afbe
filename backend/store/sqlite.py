"""SQLite, the default store: one file, each operation whole on one thread of the store's own, its upkeep beside
the writer."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url

from ._operation import Operation, T

log = logging.getLogger(__name__)


UPKEEP_EVERY = 0.25  # seconds between two rounds (while writes come)
QUIET = 0.005  # seconds without a write before a merge step
MERGE_PAGES = 16  # a search index merge step (about 0.7 ms): what a save may wait behind
WAL_MOST_BYTES = 64 << 20  # the write-ahead log's size at which the writer checkpoints it itself


class SQLite:
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
