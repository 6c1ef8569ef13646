"""Two transactions racing on PostgreSQL: the second runs in a thread while the first holds its uncommitted write;
once the second waits on a lock, the first commits. What the second returned (or raised) is the race's outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from retento.bootstrap import App
from retento.core.db.transactions import transaction


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
