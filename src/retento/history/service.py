"""Writing and reading the change history of customers and orders."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retento.core.changes import ChangeContext
from retento.core.db import changelog
from retento.core.db.bulk import insert_rows
from retento.core.jsonable import jsonable, serialised
from retento.history.models import HistoryEntry


def entry(
    *,
    entity: str,
    entity_id: int,
    site_id: int,
    ctx: ChangeContext,
    now: datetime,
    field: str | None = None,
    old: Any = None,
    new: Any = None,
    created: bool = False,
    deleted: bool = False,
) -> dict[str, Any]:
    """One history row as a dict, ready for `write`."""
    return {
        "created_at": now,
        "entity": entity,
        "entity_id": entity_id,
        "site_id": site_id,
        "created": created,
        "deleted": deleted,
        "source": ctx.source.value,
        "actor_type": ctx.actor_type.value,
        "actor_id": ctx.actor_id,
        "field": field,
        "old_value": serialised(old),
        "new_value": serialised(new),
    }


def write(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    changelog.claim(session, HistoryEntry.__table__)
    insert_rows(session, HistoryEntry.__table__, rows)


def since(
    session: Session,
    *,
    since_id: int = 0,
    entity: str | None = None,
    entity_id: int | None = None,
    site_ids: list[int] | None = None,
    start: datetime | None = None,
    limit: int = 100,
) -> list[HistoryEntry]:
    """Changes with id greater than `since_id`, oldest first. Page on with the last id you got: no change
    committed later can have a smaller id (see `changelog`)."""
    q = select(HistoryEntry).where(HistoryEntry.id > since_id, changelog.up_to_settled(session, HistoryEntry.__table__))
    if entity is not None:
        q = q.where(HistoryEntry.entity == entity)
    if entity_id is not None:
        q = q.where(HistoryEntry.entity_id == entity_id)
    if site_ids is not None:
        q = q.where(HistoryEntry.site_id.in_(site_ids))
    if start is not None:
        q = q.where(HistoryEntry.created_at >= start)
    return list(session.scalars(q.order_by(HistoryEntry.id).limit(limit)))


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, old, new) for every field whose JSON value differs, in key order of `new`."""
    out = []
    for key, value in new.items():
        before = old.get(key)
        if before is not value and jsonable(before) != jsonable(value):  # the same object: unchanged
            out.append((key, before, value))
    return out
