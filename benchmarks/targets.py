"""Throwaway databases for benchmarks: a fresh one per backend, a same-state copy for the baseline, raw driver access.

SQLite: files in a temporary directory (copied after the engine is closed, so the WAL is checkpointed).
PostgreSQL: `retento_bench_<random>` databases on the server of the given DSN (the copy is made with
`CREATE DATABASE ... TEMPLATE`), dropped afterwards.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.string import TextLoader
from sqlalchemy import make_url

from retento.core.db.engine import SQLITE_PRAGMAS

DEFAULT_PG_DSN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass
class Target:
    """One backend's database for a benchmark run."""

    backend: str  # sqlite | postgres
    url: str  # SQLAlchemy URL of the database Retento writes to
    admin: str | None = None  # libpq conninfo of the PostgreSQL maintenance database
    made: list[Target] = field(
        default_factory=list, repr=False
    )  # PostgreSQL databases to drop, shared by clones

    @property
    def version(self) -> str:
        if self.backend == "sqlite":
            return f"SQLite {sqlite3.sqlite_version}"
        with psycopg.connect(_conninfo(self.url)) as conn:
            return "PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0].split()[0]

    def clone(self, suffix: str) -> Target:
        """A copy of this database as it is now (no connections may be open to it)."""
        if self.backend == "sqlite":
            src = Path(make_url(self.url).database)
            dst = src.with_name(f"{src.stem}_{suffix}.db")
            shutil.copy(src, dst)
            return Target("sqlite", f"sqlite:///{dst}")
        name = f"{make_url(self.url).database}_{suffix}"
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(self.url).database}"')
        copy = Target(
            "postgres",
            make_url(self.url).set(database=name).render_as_string(hide_password=False),
            admin=self.admin,
            made=self.made,
        )
        self.made.append(copy)
        return copy

    def named(self, suffix: str) -> Target:
        """The copy `clone(suffix)` made of this database (in this run or one before it)."""
        if self.backend == "sqlite":
            src = Path(make_url(self.url).database)
            return Target("sqlite", f"sqlite:///{src.with_name(f'{src.stem}_{suffix}.db')}")
        name = f"{make_url(self.url).database}_{suffix}"
        copy = Target("postgres", make_url(self.url).set(database=name).render_as_string(hide_password=False),
                      admin=self.admin, made=self.made)
        if copy.url not in {t.url for t in self.made}:
            self.made.append(copy)
        return copy

    @contextmanager
    def raw(self) -> Iterator[Any]:
        """A plain driver connection: sqlite3 with Retento's pragmas, or psycopg with JSON read as text."""
        if self.backend == "sqlite":
            conn = sqlite3.connect(make_url(self.url).database, isolation_level=None, check_same_thread=False)
            for pragma in ("PRAGMA journal_mode=WAL", *SQLITE_PRAGMAS):  # what Retento's connections get
                conn.execute(pragma)
            try:
                yield conn
            finally:
                conn.close()
            return
        with psycopg.connect(_conninfo(self.url)) as conn:
            for name in ("json", "jsonb"):  # rows are copied as stored: JSON stays text, no re-serialising
                conn.adapters.register_loader(name, TextLoader)
            yield conn


    def analyze(self) -> None:
        """PostgreSQL: the planner's statistics of every table, as autovacuum keeps them on a server with its
        default settings, made before anything is timed. The bench machine's server runs with `autovacuum = off`,
        and a copy made with `CREATE DATABASE ... TEMPLATE` starts with no change counters, so autovacuum would
        not analyze the copied tables either: never analyzed, a million-row table looked up by 500 keys of a
        non-unique column is read whole (the planner's default guess makes a sequential scan cheaper than the
        index), on every batch. SQLite: nothing (Retento's statements do not lean on `sqlite_stat1`)."""
        if self.backend == "postgres":
            with self.raw() as conn:
                conn.autocommit = True
                conn.execute("ANALYZE")


class Autovacuum:
    """PostgreSQL with `autovacuum = off` (the bench machine): what autovacuum does on a server with its default
    settings, while a timed phase writes. A thread looks at the tables' counters every `NAPTIME` seconds and, by
    autovacuum's rules and defaults, VACUUMs a table whose dead rows pass 50 + 20 % of its rows or whose rows
    inserted since its last vacuum pass 1,000 + 20 % (`autovacuum_vacuum_threshold` / `_scale_factor`,
    `_insert_threshold` / `_insert_scale_factor`), and ANALYZEs one whose rows changed since its last analyze pass
    50 + 10 % (`autovacuum_analyze_threshold` / `_scale_factor`), throttled as autovacuum is (`vacuum_cost_delay`
    2 ms, `vacuum_cost_limit` 200). Autovacuum's own naptime is a minute by default, often lowered on busy
    servers. So tables that start empty and grow by hundreds of thousands of rows in the phase (a trigger's pending
    runs) are planned on what they hold, and the index entries of runs finished long ago are cleared, as on a
    production server (never analyzed, a million-row table looked up by a few hundred keys is read whole; never
    vacuumed, every claim of due runs steps over the entries of all the runs finished before). It runs beside the
    timed work, in a server process of its own, as autovacuum's worker would; `count` (tables vacuumed or
    analyzed) and `seconds` say what it did. With autovacuum on, or on SQLite, it does nothing."""

    NAPTIME = 10.0
    _DUE = ("SELECT s.relname, s.n_dead_tup > 50 + 0.2 * r.n OR s.n_ins_since_vacuum > 1000 + 0.2 * r.n, "
            "s.n_mod_since_analyze > 50 + 0.1 * r.n FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid, "
            "LATERAL (SELECT greatest(c.reltuples, 0) AS n) r ORDER BY s.relname")

    def __init__(self, target: Target) -> None:
        self.count, self.seconds, self._target = 0, 0.0, target
        self._stop, self._thread, self._conn = threading.Event(), None, None

    def __enter__(self) -> Autovacuum:
        if self._target.backend == "postgres":
            with self._target.raw() as conn:
                on = conn.execute("SHOW autovacuum").fetchone()[0] == "on"
            if not on:
                self._thread = threading.Thread(target=self._run, name="bench-autovacuum", daemon=True)
                self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            if self._conn is not None:
                self._conn.cancel()  # a long VACUUM under way stops now, as the phase has
            self._thread.join()

    def _run(self) -> None:
        with self._target.raw() as conn:
            conn.autocommit, self._conn = True, conn
            conn.execute("SET vacuum_cost_delay = '2ms'")
            conn.execute("SET vacuum_cost_limit = 200")
            while not self._stop.wait(self.NAPTIME):
                for table, vacuum, analyze in conn.execute(self._DUE).fetchall():
                    if self._stop.is_set() or not (vacuum or analyze):
                        continue
                    started = time.perf_counter()
                    try:
                        conn.execute(f'{"VACUUM (ANALYZE)" if vacuum and analyze else "VACUUM" if vacuum else "ANALYZE"}'
                                     f' "{table}"')
                    except psycopg.errors.QueryCanceled:
                        break
                    self.seconds += time.perf_counter() - started
                    self.count += 1
            self._conn = None


def _conninfo(url: str) -> str:
    u = make_url(url)
    parts = {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username or "postgres",
        "dbname": u.database,
        "password": u.password,
    }
    return " ".join(f"{k}={v}" for k, v in parts.items() if v)


@contextmanager
def fresh(backend: str, pg_dsn: str = DEFAULT_PG_DSN, *, keep: bool = False, reuse: str | None = None
          ) -> Iterator[Target]:
    """An empty database for `backend`; it and every clone of it are removed on exit, unless `keep` (PostgreSQL).
    `reuse`: the name of a PostgreSQL database kept so (it and its clones are removed on exit)."""
    if reuse is not None:
        admin = _conninfo(pg_dsn)
        target = Target("postgres", make_url(pg_dsn).set(database=reuse).render_as_string(hide_password=False),
                        admin=admin)
        target.made.append(target)
        try:
            yield target
        finally:
            _drop(admin, target.made)
        return
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="retento_bench_") as tmp:
            yield Target("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}")
        return
    if backend != "postgres":
        raise ValueError(f"unknown backend {backend!r} (sqlite or postgres)")
    admin = _conninfo(pg_dsn)
    name = f"retento_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    target = Target(
        "postgres", make_url(pg_dsn).set(database=name).render_as_string(hide_password=False), admin=admin
    )
    target.made.append(target)
    try:
        yield target
    except BaseException:
        _drop(admin, target.made)
        raise
    if not keep:
        _drop(admin, target.made)


def _drop(admin: str, made: list[Target]) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        for t in reversed(made):
            conn.execute(f'DROP DATABASE IF EXISTS "{make_url(t.url).database}" WITH (FORCE)')


def keep_new(backend: str, pg_dsn: str = DEFAULT_PG_DSN) -> tuple[Target, str]:
    """An empty database that outlives the run (a data set built once, measured later with `reused`), and the
    name that finds it again: the SQLite file's path or the PostgreSQL database's name."""
    if backend == "sqlite":
        path = Path(tempfile.mkdtemp(prefix="retento_bench_kept_")) / "bench.db"
        return Target("sqlite", f"sqlite:///{path}"), str(path)
    name = f"retento_bench_kept_{uuid.uuid4().hex[:10]}"
    admin = _conninfo(pg_dsn)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return Target("postgres", make_url(pg_dsn).set(database=name).render_as_string(hide_password=False),
                  admin=admin), name


@contextmanager
def reused(kept: str, pg_dsn: str = DEFAULT_PG_DSN) -> Iterator[Target]:
    """A working copy of a data set made by `keep_new` (an SQLite file's path or a PostgreSQL database's name):
    the kept one stays as it was, the copy and its clones are removed on exit."""
    if kept.endswith(".db") and Path(kept).exists():
        with tempfile.TemporaryDirectory(prefix="retento_bench_") as tmp:
            shutil.copy(kept, Path(tmp) / "bench.db")
            yield Target("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}")
        return
    admin = _conninfo(pg_dsn)
    source = Target("postgres", make_url(pg_dsn).set(database=kept).render_as_string(hide_password=False),
                    admin=admin)
    work = source.clone(uuid.uuid4().hex[:6])
    try:
        yield work
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for t in reversed(source.made):
                conn.execute(f'DROP DATABASE IF EXISTS "{make_url(t.url).database}" WITH (FORCE)')
