"""What `retento work` and `/api/v1/work` show and do, over the application's registry of queues."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from retento.core import work
from retento.core.errors import NotFound
from retento.core.registry import Registry

Queues = Registry[work.Queue]


def overview(session: Session, queues: Queues, *, now: datetime) -> list[dict[str, Any]]:
    """Every queue: due now, due later, leased, expired leases, dead, the oldest due time, and notes (work that
    waits for something this process cannot give, e.g. a channel without settings)."""
    return [{**work.stats(session, q, now=now).as_dict(), "notes": q.notes(session, now) if q.notes else []}
            for q in queues.values()]


def warnings(session: Session, queues: Queues, *, now: datetime) -> list[str]:
    return [f"{q.name}: {note}" for q in queues.values() if q.notes for note in q.notes(session, now)]


def queue(queues: Queues, name: str) -> work.Queue:
    q = queues.get(name)
    if q is None:
        raise NotFound("queue", f"no queue {name!r}; queues: {', '.join(sorted(queues.names()))}")
    return q


def dead(session: Session, queues: Queues, *, name: str, after_id: int = 0,
         limit: int = 50) -> list[dict[str, Any]]:
    return work.dead_letters(session, queue(queues, name), after_id=after_id, limit=limit)


def retry(session: Session, queues: Queues, *, name: str, ids: list[int], now: datetime) -> list[int]:
    """Dead work of `ids` due again now with fresh attempts; returns the ids that were dead."""
    return work.retry(session, queue(queues, name), ids, now=now)


def drop(session: Session, queues: Queues, *, name: str, ids: list[int], now: datetime) -> list[int]:
    return work.drop(session, queue(queues, name), ids, now=now)
