"""One unit of work: `transaction(factory)` commits or rolls back; on SQLite it first takes this process's
writer lock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from retento.core.db.engine import BUSY_SECONDS, WRITE_LOCKS


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error. On SQLite a writing transaction first
    takes this process's writer lock (see `WRITE_LOCKS`) and holds it until after the commit."""
    with _writer_lock(factory.kw.get("bind")), factory() as session, session.begin():
        yield session


@contextmanager
def _writer_lock(bind: Any) -> Iterator[None]:
    lock = None if bind is None or bind.get_execution_options().get("read_only") else WRITE_LOCKS.get(bind.pool)
    # Waiting longer than SQLite's own busy timeout would only hide a stuck writer: past it, go on and let
    # SQLite answer "database is locked" as it did before this lock existed.
    held = lock.acquire(timeout=BUSY_SECONDS) if lock is not None else False
    try:
        yield
    finally:
        if held:
            lock.release()
