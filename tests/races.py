"""Two transactions racing on PostgreSQL: the second runs in a thread while the first holds its uncommitted write;
once the second waits on a lock, the first commits. What the second returned (or raised) is the race's outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from retento.bootstrap import App, bootstrap
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from tests import factories as f
from tests.conftest import _truncate_pg


@dataclass
class Race:
    app: App
    first: Session  # the first transaction: its write is held uncommitted until the second waits on it
    site_id: int  # the site "shop"

    def second(self, fn: Callable[[Session], Any]) -> dict[str, Any]:
        return second_after_first(self.app, self.first, fn)


@pytest.fixture
def race(pg_url: str) -> Iterator[Race]:
    """An app on the run's PostgreSQL database (emptied before and after) with the site "shop", and an open
    session for the first transaction."""
    _truncate_pg(pg_url)
    app = bootstrap(Settings(database_url=pg_url), clock=FrozenClock("2026-03-02T09:00:00+00:00"))
    first = app.sessions()
    try:
        yield Race(app, first, f.site(app))
    finally:
        first.close()
        app.close()
        _truncate_pg(pg_url)


def second_after_first(app: App, first: Session, second: Callable[[Session], Any]) -> dict[str, Any]:
    """`{"result": ...}` or `{"error": ...}` of `second(session)` in a transaction of its own, started while
    `first` is open and waiting on its lock before `first` commits."""
    got: dict[str, Any] = {}

    def run() -> None:
        try:
            with transaction(app.sessions) as s:
                got["result"] = second(s)
        except Exception as e:  # noqa: BLE001 - the caller asserts on it
            got["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    with app.engine.connect() as conn:  # the second's write waits on the first's uncommitted row
        while not conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                    "AND wait_event_type = 'Lock'")).scalar():
            assert time.monotonic() < deadline and thread.is_alive(), got
            conn.rollback()
    first.commit()
    thread.join(10)
    return got
