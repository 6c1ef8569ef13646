"""A merge of duplicate customers as each domain's `customer_merge` handler sees it (`customers.merging` runs
them), and where merged customers went: importing no application part, so every domain's service may use it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from retento.core.changes import ChangeContext
from retento.core.errors import NotFound
from retento.customers.models import CustomerMerge


@dataclass(frozen=True)
class Merge:
    """What a domain's handler is told: on `site_id`, `merged_ids` become `keep_id` (they still exist while the
    handlers run; customers rows are deleted after)."""

    site_id: int
    keep_id: int
    merged_ids: tuple[int, ...]
    ctx: ChangeContext
    now: datetime

    @property
    def all_ids(self) -> list[int]:
        return [self.keep_id, *self.merged_ids]

    def move(self, session: Session, table: Table, column: str = "customer_id", **values: Any) -> int:
        """Rows of `table` whose `column` names a merged customer name the kept one (and take `values`); how many."""
        c = table.c[column]
        return session.execute(update(table).where(c.in_(self.merged_ids))
                               .values({column: self.keep_id, **values})).rowcount or 0


def merged_into(session: Any, ids: Iterable[int], *, site_ids: Iterable[int] | None = None) -> dict[int, int]:
    """merged id -> the customer it was merged into, for those of `ids` that were (of `site_ids` only, when
    given); `session`: a Session or a Connection."""
    ids = sorted(set(ids))
    out: dict[int, int] = {}
    for i in range(0, len(ids), 900):
        q = select(CustomerMerge.merged_id, CustomerMerge.kept_id).where(CustomerMerge.merged_id.in_(ids[i:i + 900]))
        if site_ids is not None:  # (a Session of a site-limited key sees its sites' rows only anyway)
            q = q.where(CustomerMerge.site_id.in_(list(site_ids)))
        out.update(session.execute(q).tuples().all())
    return out


def merged_external(session: Session, *, site_id: int, external_id: str) -> int | None:
    """The customer an externalId of a merged-away customer now belongs to, if any."""
    return session.scalar(select(CustomerMerge.kept_id).where(CustomerMerge.site_id == site_id,
                                                             CustomerMerge.merged_external_id == external_id)
                          .order_by(CustomerMerge.merged_at.desc()).limit(1))


def not_found(name: str, cid: int, gone: dict[int, int]) -> NotFound:
    """The 404 of a customer id that is not there: naming the customer it was merged into, if it was."""
    if cid in gone:
        return NotFound(name, f"customer {cid} was merged into customer {gone[cid]}")
    return NotFound(name, f"customer {cid} not found")
