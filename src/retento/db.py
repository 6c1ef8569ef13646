"""Engine, sessions and the column types shared by every domain (one schema for both databases)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache, partial
from itertools import repeat
from operator import is_, itemgetter, methodcaller
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    MetaData,
    Numeric,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    insert,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql.elements import Null
from sqlalchemy.types import DateTime, TypeDecorator

from retento.core.sql import unindexed as unindexed  # here since before core.sql; imported from here widely
from retento.scoping import ScopedSession

log = logging.getLogger(__name__)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in, timezone-aware UTC out, on both databases."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Any) -> Any:
        """process_bind_param and then the driver-level conversion, in one call (bulk inserts run it per value)."""
        inner = self.impl_instance.bind_processor(dialect)
        utc = timezone.utc
        if dialect.name != "sqlite" or inner is None:
            return super().bind_processor(dialect)
        sample = datetime(987, 6, 5, 4, 3, 2, 1)
        if inner(sample) != sample.isoformat(" ", "microseconds"):  # not SQLAlchemy's default storage format
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            return value.astimezone(utc).isoformat(" ", "microseconds")[:-6]  # without its "+00:00"

        return process

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Amount(TypeDecorator):
    """Exact decimal: NUMERIC on PostgreSQL; on SQLite a REAL read back and quantized to the scale."""

    impl = Numeric(18, 2)
    cache_ok = True

    def __init__(self, scale: int = 2, precision: int = 18) -> None:
        super().__init__()
        self.scale, self.precision = scale, precision
        self._quantum = Decimal(1).scaleb(-scale)
        self.impl = Numeric(precision, scale)

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=False))
        return dialect.type_descriptor(Numeric(self.precision, self.scale))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        value = Decimal(value).quantize(self._quantum)
        return float(value) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Any) -> Any:
        """process_bind_param and then the driver-level conversion, in one call (bulk inserts run it per value)."""
        quantum, inner, as_float = self._quantum, self.impl_instance.bind_processor(dialect), dialect.name == "sqlite"

        def process(value: Any) -> Any:
            if value is None:
                return None
            value = (value if type(value) is Decimal else Decimal(value)).quantize(quantum)
            if as_float:
                value = float(value)
            return inner(value) if inner else value

        return process

    def bulk_processor(self, dialect: Any) -> Any:
        """values -> what `bind_processor` gives each, in C-level maps; None unless all are Decimals."""
        steps: list[Any] = [methodcaller("quantize", self._quantum)]
        if dialect.name == "sqlite":
            steps.append(float)
        if inner := self.impl_instance.bind_processor(dialect):
            steps.append(inner)

        def convert(values: list[Any]) -> list[Any] | None:
            if set(map(type, values)) != {Decimal}:
                return None
            out: Any = values
            for step in steps:
                out = map(step, out)
            return list(out)

        return convert

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        return Decimal(repr(value) if isinstance(value, float) else value).quantize(self._quantum)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Leased:
    """The lease columns of a table of deferred work that `retento.core.work.claim` leases (mixed into its model)."""

    lease_token: Mapped[str | None] = mapped_column(String(32))  # the claim that holds the row: the fence
    lease_owner: Mapped[str | None] = mapped_column(String(64))  # which worker (host:pid), for operators
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


def Currency() -> String:  # noqa: N802 - a column type factory
    return String(3)


def _json_loads(value: Any) -> Any:
    """orjson's loads; a JSON number SQLite hands back as a number stays one (as SQLAlchemy's SQLite JSON type
    expects from the deserializer: a TypeError it catches, which orjson does not raise)."""
    if isinstance(value, int | float):
        return value
    return orjson.loads(value)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, default=_json_default).decode()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def make_engine(url: str, *, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            json_serializer=_json_dumps,
            json_deserializer=_json_loads,
            connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
        )
        _sqlite_setup(engine)
        return engine
    return create_engine(url, echo=echo, json_serializer=_json_dumps, json_deserializer=_json_loads,
                         pool_pre_ping=True)


_BUSY_SECONDS = 30

# Every SQLite connection (besides WAL for files): foreign keys on, fsync only at checkpoints, wait for the
# writer lock instead of failing, and a page cache large enough that index inserts don't go to the OS each time.
SQLITE_PRAGMAS = (
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
    f"PRAGMA busy_timeout={_BUSY_SECONDS * 1000}",
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
_WRITE_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
CHECKPOINTERS: weakref.WeakKeyDictionary[Any, Checkpointer] = weakref.WeakKeyDictionary()  # by connection pool


def _sqlite_setup(engine: Engine) -> None:
    """WAL, foreign keys, and one writer at a time (BEGIN IMMEDIATE) so no transaction fails to upgrade."""
    _WRITE_LOCKS[engine.pool] = threading.RLock()
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
    sites (see retento.scoping)."""
    return sessionmaker(engine, class_=ScopedSession, expire_on_commit=False)


@lru_cache(maxsize=64)
def read_sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions for read-only work: on SQLite a deferred BEGIN, which does not wait for (or block) the writer."""
    return sessionmaker(_read_only(engine), class_=ScopedSession, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error. On SQLite a writing transaction first
    takes this process's writer lock (see `_WRITE_LOCKS`) and holds it until after the commit."""
    with _writer_lock(factory.kw.get("bind")), factory() as session, session.begin():
        yield session


@contextmanager
def _writer_lock(bind: Any) -> Iterator[None]:
    lock = None if bind is None or bind.get_execution_options().get("read_only") else _WRITE_LOCKS.get(bind.pool)
    # Waiting longer than SQLite's own busy timeout would only hide a stuck writer: past it, go on and let
    # SQLite answer "database is locked" as it did before this lock existed.
    held = lock.acquire(timeout=_BUSY_SECONDS) if lock is not None else False
    try:
        yield
    finally:
        if held:
            lock.release()


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


# Advisory-lock keys on PostgreSQL are (tag << 48) | a 48-bit value: a tag per kind of thing locked, so kinds never
# collide. The change-log claims (`changelog`) are shared locks; the others exclusive (`lock_keys`).
ADVISORY_TAGS = {"history": 0x7201, "events": 0x7202, "trigger": 0x7211}
ADVISORY_BITS = 48
ADVISORY_LOW = (1 << ADVISORY_BITS) - 1
_LOCK_KEYS = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")  # in array order


def advisory_key(tag: str, value: int) -> int:
    """The advisory-lock key of `value` (an id; larger values wrap, costing at most a needless wait)."""
    return (ADVISORY_TAGS[tag] << ADVISORY_BITS) | (value & ADVISORY_LOW)


def lock_keys(session: Session, keys: Iterable[int]) -> None:
    """Exclusive advisory locks held until the transaction ends, on PostgreSQL; nothing on SQLite (one writer).

    Taken in ascending order in one statement, so two transactions locking overlapping sets of keys this way
    never deadlock on them."""
    wanted = sorted(set(keys))
    if wanted and session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK_KEYS, {"keys": wanted})


def reserve_ids(session: Session, table: Table, count: int) -> list[int]:
    """`count` new primary keys of `table`, ascending, for rows this transaction is about to insert.

    PostgreSQL: taken from the column's sequence in one round trip, so concurrent writers never collide.
    SQLite: the ids the database itself would give (one past the largest); the transaction began with
    BEGIN IMMEDIATE, so no other writer can take them before commit.
    """
    if count <= 0:
        return []
    name = table.name
    if session.get_bind().dialect.name == "postgresql":
        q = text(f"SELECT nextval(pg_get_serial_sequence('{name}', 'id')) FROM generate_series(1, :n)")
        return sorted(session.scalars(q, {"n": count}))
    top = session.scalar(text(f"SELECT COALESCE(MAX(id), 0) FROM {name}"))
    return list(range(top + 1, top + 1 + count))


PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}  # positional, by the drivers' paramstyle


def rows_with_keys(session: Session, table: Table, columns: Sequence[str], *, site_id: int, key: str,
                   values: Iterable[Any]) -> list[tuple]:
    """`columns` of the rows of `table` on one site whose `key` is one of `values`, as the driver gives them.

    For a batch's hundreds of external ids or numbers: the (site_id, key) index is sought once per value, and
    the values go to the driver as they are, without SQLAlchemy's per-value bookkeeping of an `IN` list.
    Use it for columns whose stored form is the Python value (ids, strings).
    """
    dialect = session.get_bind().dialect
    placeholder = PLACEHOLDERS[dialect.paramstyle]
    quote = dialect.identifier_preparer.quote
    head = (f"SELECT {', '.join(map(quote, columns))} FROM {dialect.identifier_preparer.format_table(table)} "
            f"WHERE site_id = {placeholder} AND {quote(key)} IN ")
    if session.autoflush:  # as a query through the session would, so pending objects are seen
        session.flush()
    wanted, conn, out = sorted(set(values)), session.connection(), []
    for i in range(0, len(wanted), 900):
        chunk = wanted[i : i + 900]
        sql = f"{head}({', '.join([placeholder] * len(chunk))})"
        out += conn.exec_driver_sql(sql, (site_id, *chunk)).all()
    return out


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]], *,
                skip_existing: bool = False) -> None:
    """INSERT many rows (all with the same keys) through the driver's executemany.

    Each value goes through its column type's own bind processing, so the database gets exactly what
    `session.execute(insert(table), rows)` would send, without Core's per-row statement bookkeeping.
    `skip_existing`: a row that would break a unique key is left out (`ON CONFLICT DO NOTHING`).
    """
    if not rows:
        return
    conn = session.connection()
    plan = _insert_plan(conn.dialect, table, tuple(rows[0]))
    if plan is None:
        stmt = insert(table)
        if skip_existing:
            dialect_insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
            stmt = dialect_insert(table).on_conflict_do_nothing()
        conn.execute(stmt, list(rows))
        return
    sql, keys, converters = plan
    if skip_existing:
        sql += " ON CONFLICT DO NOTHING"
    columns = [list(map(itemgetter(k), rows)) for k in keys]
    for i, convert in converters:
        columns[i] = convert(columns[i])
    conn.exec_driver_sql(sql, list(zip(*columns, strict=True)))


def _converter(process: Any, type_: Any, dialect: Any) -> Any:
    """A column's values -> process(v) for each: once for a column holding one object throughout (the batch's
    `now`, a flag), in C-level maps where the type offers a bulk form and the values allow it."""
    impl = type_.dialect_impl(dialect)
    bulk = impl.bulk_processor(dialect) if hasattr(impl, "bulk_processor") else _json_bulk(impl, dialect)

    def convert(values: list[Any]) -> list[Any]:
        first = values[0]
        if all(map(is_, values, repeat(first))):
            return [process(first)] * len(values)
        if bulk is not None and (out := bulk(values)) is not None:
            return out
        return list(map(process, values))

    return convert


def _json_bulk(impl: Any, dialect: Any) -> Any:
    """SQLite JSON columns serialised by `_json_dumps`: the same text, without a Python call per value."""
    if (not isinstance(impl, JSON) or impl.none_as_null or dialect.name != "sqlite"
            or dialect._json_serializer is not _json_dumps
            or impl._str_impl.bind_processor(dialect) is not None):
        return None
    dumps = partial(orjson.dumps, default=_json_default)

    def convert(values: list[Any]) -> list[str] | None:
        if JSON.NULL in values or Null in set(map(type, values)):
            return None
        return list(map(bytes.decode, map(dumps, values)))

    return convert


@lru_cache(maxsize=256)
def _insert_plan(dialect: Any, table: Table, keys: tuple[str, ...]) -> tuple[str, tuple[str, ...], list] | None:
    """(SQL, keys, [(position, processor)]); None where Core must do it (defaults to fill, other drivers)."""
    placeholder = PLACEHOLDERS.get(dialect.paramstyle)
    missing = [c for c in table.columns if c.key not in keys and c.default is not None]
    if placeholder is None or missing:
        return None
    columns = [table.c[k] for k in keys]
    processors = [(i, _converter(p, c.type, dialect))
                  for i, c in enumerate(columns) if (p := c.type._cached_bind_processor(dialect))]
    preparer = dialect.identifier_preparer
    sql = (f"INSERT INTO {preparer.format_table(table)} ({', '.join(preparer.format_column(c) for c in columns)}) "
           f"VALUES ({', '.join([placeholder] * len(columns))})")
    return sql, keys, processors


def update_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]], *, key: str = "id") -> None:
    """UPDATE many rows (all with the same keys): each row's other columns where `key` equals its `key`.

    PostgreSQL: one statement for all of them, the rows sent as one JSON array read back with
    `jsonb_to_recordset` and the columns' own types (an executemany costs a round of the protocol per row);
    JSON columns travel as their JSON text, so None is stored as JSON null, as an ORM or Core write does.
    SQLite: executemany of `UPDATE ... WHERE key = ?`, which costs little there.
    """
    if not rows:
        return
    columns = [k for k in rows[0] if k != key]
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name != "postgresql":
        sets = {c: bindparam(f"v_{c}") for c in columns}
        stmt = update(table).where(table.c[key] == bindparam("k_")).values(sets)
        conn.execute(stmt, [{"k_": r[key], **{f"v_{c}": r[c] for c in columns}} for r in rows])
        return
    sql, is_json = _update_plan(dialect, table, key, tuple(columns))
    payload = [{c: (_json_dumps(r[c]) if is_json[c] else r[c]) for c in (key, *columns)} for r in rows]
    conn.exec_driver_sql(sql, (orjson.dumps(payload, default=_json_default).decode(),))


@lru_cache(maxsize=256)
def _update_plan(dialect: Any, table: Table, key: str, columns: tuple[str, ...]) -> tuple[str, dict[str, bool]]:
    prep = dialect.identifier_preparer
    is_json = {c: isinstance(table.c[c].type.dialect_impl(dialect), JSON) for c in (key, *columns)}
    defs = ", ".join(f"{prep.quote(c)} {'text' if is_json[c] else table.c[c].type.compile(dialect=dialect)}"
                     for c in (key, *columns))
    sets = ", ".join(f"{prep.quote(c)} = " + (f"CAST(v.{prep.quote(c)} AS jsonb)" if is_json[c] else
                                               f"v.{prep.quote(c)}") for c in columns)
    name = prep.format_table(table)
    sql = (f"UPDATE {name} SET {sets} FROM jsonb_to_recordset(CAST(%s AS jsonb)) AS v({defs}) "
           f"WHERE {name}.{prep.quote(key)} = v.{prep.quote(key)}")
    return sql, is_json
