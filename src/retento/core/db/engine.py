"""Engines and session factories: SQLite (WAL, pragmas, one writer per process, background checkpoints) and
PostgreSQL; read-only sessions and connections."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

from retento.core.db.types import json_dumps, json_loads
from retento.core.scoping import ScopedSession

log = logging.getLogger(__name__)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            json_serializer=json_dumps,
            json_deserializer=json_loads,
            connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
        )
        _sqlite_setup(engine)
        return engine
    engine = create_engine(url, echo=echo, json_serializer=json_dumps, json_deserializer=json_loads)
    _ping_when_idle(engine)
    return engine


# A pooled PostgreSQL connection is checked with a round trip before use only when it has sat idle this long
# (SQLAlchemy's `pool_pre_ping` pings on every checkout: one extra round trip per transaction, which was a
# fifth of the send worker's time, one small transaction per message). A connection that breaks while in use
# fails its statement; SQLAlchemy recognises the disconnect and replaces the pool's connections.
PING_IDLE_SECONDS = 5.0


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi)
        except engine.dialect.loaded_dbapi.Error as err:
            if not engine.dialect.is_disconnect(err, dbapi, None):
                raise
            alive = False
        if not alive:
            raise exc.DisconnectionError("the pooled connection was closed while idle")  # the pool reconnects


BUSY_SECONDS = 30


# Every SQLite connection (besides WAL for files): foreign keys on, fsync only at checkpoints, wait for the
# writer lock instead of failing, and a page cache large enough that index inserts don't go to the OS each time.
SQLITE_PRAGMAS = (
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
    f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}",
    "PRAGMA cache_size=-65536",  # KiB: 64 MB (SQLite's default is 2 MB)
    # Checkpoints run in a background thread (`Checkpointer`); the automatic one, inside whichever commit
    # crosses the limit, is only a backstop (40 MB of WAL) for when that thread cannot keep up.
    "PRAGMA wal_autocheckpoint=10000",
)


CHECKPOINT_SECONDS = 1.0


def checkpoint(engine: Engine) -> tuple[int, int, int]:
    """One passive WAL checkpoint of a SQLite file on its own connection (not the pool's, whose connections
    begin write transactions): copies what it can to the database without waiting for readers or writers.
    Returns SQLite's (busy, frames in the WAL, frames checkpointed)."""
    conn = sqlite3.connect(engine.url.database, timeout=0, isolation_level=None)
    try:
        return tuple(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())  # type: ignore[return-value]
    finally:
        conn.close()


class Checkpointer(threading.Thread):
    """Keeps SQLite's WAL checkpoints off the commit path: with the default automatic checkpoint, the commit
    that makes the WAL cross 1,000 pages copies them into the database and fsyncs it, a 10-30 ms stall of
    whatever request made that commit. This daemon thread checkpoints every CHECKPOINT_SECONDS instead, and
    stops when the engine is disposed or gone."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(name="sqlite-checkpoint", daemon=True)
        self._engine = weakref.ref(engine)
        self.stopped = threading.Event()
        self._busy = threading.Lock()
        event.listen(engine, "engine_disposed", lambda _e: self.stop())

    def stop(self) -> None:
        """No checkpoint after this returns (one in progress is waited for: the caller may copy the file)."""
        self.stopped.set()
        with self._busy:
            pass

    def run(self) -> None:
        while not self.stopped.wait(CHECKPOINT_SECONDS):
            with self._busy:
                engine = self._engine()
                if engine is None or self.stopped.is_set():
                    return
                try:
                    checkpoint(engine)
                except sqlite3.Error as exc:  # busy or locked now: the next round will do it
                    log.debug("background WAL checkpoint skipped: %r", exc)
                del engine


# SQLite allows one writer. Threads of one process that want to write queue on this lock (first come, first
# served, woken the moment the writer commits) instead of spinning in SQLite's busy handler, which sleeps in
# growing steps (1, 2, 5, 10 ... 100 ms) and turns a short queue into long tail latencies. Other processes
# (a worker, more API processes) still meet at SQLite's own lock and busy handler. Keyed by the connection pool,
# which an engine shares with its `execution_options` copies. An RLock, so a thread that nests two write
# transactions behaves as before (SQLite itself makes the inner one wait).
WRITE_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()


CHECKPOINTERS: weakref.WeakKeyDictionary[Any, Checkpointer] = weakref.WeakKeyDictionary()  # by connection pool


def _sqlite_setup(engine: Engine) -> None:
    """WAL, foreign keys, and one writer at a time (BEGIN IMMEDIATE) so no transaction fails to upgrade."""
    WRITE_LOCKS[engine.pool] = threading.RLock()
    if engine.url.database not in (None, "", ":memory:"):
        CHECKPOINTERS[engine.pool] = Checkpointer(engine)
        CHECKPOINTERS[engine.pool].start()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        for pragma in SQLITE_PRAGMAS:
            cur.execute(pragma)
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Readers (see `read_sessions`) take no write lock, so they run alongside the one writer (WAL).
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("read_only") else "BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions of the `ScopedSession` class: made in a request of a site-limited API key, they see only its
    sites (see retento.core.scoping)."""
    return sessionmaker(engine, class_=ScopedSession, expire_on_commit=False)


@lru_cache(maxsize=64)
def read_sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions for read-only work: on SQLite a deferred BEGIN, which does not wait for (or block) the writer."""
    return sessionmaker(_read_only(engine), class_=ScopedSession, expire_on_commit=False)


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A Core connection for a read made of ONE statement (one statement is a consistent snapshot by itself).

    PostgreSQL: autocommit, so the read costs one round trip instead of BEGIN, SELECT, COMMIT. SQLite: a deferred
    BEGIN (local, no round trip; no write lock).
    """
    if engine.dialect.name == "postgresql":
        with _autocommit(engine).connect() as conn:
            yield conn
        return
    with _read_only(engine).begin() as conn:
        yield conn


@lru_cache(maxsize=64)
def _autocommit(engine: Engine) -> Engine:
    return engine.execution_options(read_only=True, isolation_level="AUTOCOMMIT")


@lru_cache(maxsize=64)
def _read_only(engine: Engine) -> Engine:
    return engine.execution_options(read_only=True)
