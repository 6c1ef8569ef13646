"""Read side of history for the APIs: filtered pages with a total count."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from retento.core.db import changelog
from retento.history.models import HistoryEntry


def page(session: Session, *, entity: str, since_id: int = 0, site_ids: list[int] | None = None,
         start: datetime | None = None, end: datetime | None = None, limit: int = 100,
         offset: int = 0) -> tuple[list[HistoryEntry], int]:
    """Changes of one kind of entity after `since_id` (and in [start, end]), oldest first, and how many match;
    only those no later commit can precede (see `changelog`)."""
    settled = changelog.up_to_settled(session, HistoryEntry.__table__)

    def where(q: Any) -> Any:
        q = q.where(HistoryEntry.entity == entity, HistoryEntry.id > since_id, settled)
        if site_ids is not None:
            q = q.where(HistoryEntry.site_id.in_(site_ids))
        if start is not None:
            q = q.where(HistoryEntry.created_at >= start)
        if end is not None:
            q = q.where(HistoryEntry.created_at <= end)
        return q

    total = session.scalar(where(select(func.count(HistoryEntry.id)))) or 0
    rows = list(session.scalars(where(select(HistoryEntry)).order_by(HistoryEntry.id).offset(offset).limit(limit)))
    return rows, total
