"""Reference data that every order write checks against (sites, active statuses, managers), read once per
transaction: a batch of trigger runs calls `edit_many` many times in one transaction, and the three small
queries cost more than the edits themselves.

The copy lives in `session.info` and goes as soon as the session flushes a change to a site, status, status group
or manager (every write to them goes through the ORM), on any rollback (a savepoint that changed them may be
undone) and when the transaction ends.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from retento.orders.models import Status, StatusGroup
from retento.sites.models import Manager, Site

_KEY = "orders_reference"
_SITES = select(Site.id, Site.code, Site.currency, Site.currencies)
_STATUSES = select(Status.code, Status.group_code).where(Status.active)
_MANAGERS = select(Manager.id)
_WATCHED = (Site, Status, StatusGroup, Manager)


class Reference(NamedTuple):
    sites: list[tuple[int, str, str, list[str]]]  # (id, code, currency, currencies) of every site
    statuses: dict[str, str]  # active status code -> group code
    managers: frozenset[int]


def reference(session: Session) -> Reference:
    """The reference data as this transaction sees it (read on first use, then kept until a change to it)."""
    found = session.info.get(_KEY)
    if found is None:
        found = session.info[_KEY] = Reference([tuple(r) for r in session.execute(_SITES)],
                                               dict(session.execute(_STATUSES).all()),
                                               frozenset(session.scalars(_MANAGERS)))
    return found


@event.listens_for(Session, "before_flush")
def _forget_on_change(session: Session, _context: Any, _instances: Any) -> None:
    if _KEY in session.info and any(isinstance(o, _WATCHED)
                                    for o in (*session.new, *session.dirty, *session.deleted)):
        session.info.pop(_KEY, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(_KEY, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_KEY, None)
