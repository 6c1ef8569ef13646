"""Read side of customers for the API: filtered, cursor-paged lists and snapshots of many at once."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, literal_column, null, or_, select, union_all
from sqlalchemy.orm import Session

from retento import batch
from retento.customers.models import SEARCHED, Consent, Customer, CustomerInterest, CustomerTag
from retento.customers.service import COLUMNS


def list_customers(session: Session, *, after_id: int = 0, limit: int = 50, offset: int = 0,
                   **filters: Any) -> list[Customer]:
    """Customers with id above `after_id` matching every given filter (see `_filtered`), oldest first."""
    q = _filtered(select(Customer), **filters)
    q = q.where(Customer.id > after_id).order_by(Customer.id).offset(offset).limit(limit)
    return list(session.scalars(q))


def count_customers(session: Session, **filters: Any) -> int:
    return session.scalar(_filtered(select(func.count(Customer.id)), **filters)) or 0


def _filtered(q: Any, *, site_ids: list[int] | None = None, email: str | None = None, phone: str | None = None,
              tag: str | None = None, external_id: str | None = None, created_from: datetime | None = None,
              created_to: datetime | None = None, ids: list[int] | None = None,
              external_ids: list[str] | None = None, tags: list[str] | None = None,
              search: str | None = None) -> Any:
    if search:
        q = q.where(_search(search.strip()))
    if ids is not None:
        q = q.where(Customer.id.in_(ids))
    if external_ids is not None:
        q = q.where(Customer.external_id.in_(external_ids))
    if tags:
        q = q.where(Customer.id.in_(select(CustomerTag.customer_id).where(CustomerTag.tag.in_(tags))))
    if site_ids is not None:
        q = q.where(Customer.site_id.in_(site_ids))
    if email is not None:
        q = q.where(Customer.email == email)
    if phone is not None:
        q = q.where(Customer.phone == phone)
    if external_id is not None:
        q = q.where(Customer.external_id == external_id)
    if tag is not None:
        q = q.where(Customer.id.in_(select(CustomerTag.customer_id).where(CustomerTag.tag == tag)))
    if created_from is not None:
        q = q.where(Customer.created_at >= created_from)
    if created_to is not None:
        q = q.where(Customer.created_at < created_to)
    return q


def _search(text: str) -> Any:
    """What a person types to find a customer: part of a first or last name, an email or a phone number (digits,
    any punctuation), in any case; or an external id. `ILIKE '%text%'`: on PostgreSQL the trigram index
    `ix_customers_search` answers it (models.SEARCHED); SQLite compares lower-cased ASCII."""
    exact = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    found = [Customer.external_id.ilike(exact, escape="\\"),  # an equality the trigram index answers too
             *(getattr(Customer, c).ilike(f"%{exact}%", escape="\\") for c in SEARCHED if c != "external_id")]
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) >= 3 and digits != text and all(ch.isdigit() or ch in "+-() " for ch in text):
        found.append(Customer.phone.like(f"%{digits}%"))  # "+7 (916) 123" finds +7916123...
    return or_(*found)


_IDS = bindparam("ids", expanding=True)
# Consents, tags and interests of many customers in one statement (consents first: they give the column types).
_LABELS = union_all(
    select(Consent.customer_id, literal_column("'consent'").label("kind"), Consent.channel.label("value"),
           Consent.granted, Consent.at, Consent.source).where(Consent.customer_id.in_(_IDS)),
    select(CustomerTag.customer_id, literal_column("'tag'"), CustomerTag.tag, null(), null(), null())
    .where(CustomerTag.customer_id.in_(_IDS)),
    select(CustomerInterest.customer_id, literal_column("'interest'"), CustomerInterest.interest, null(), null(),
           null()).where(CustomerInterest.customer_id.in_(_IDS)),
)
_L = _LABELS.subquery("labels")
_C = Customer.__table__
# Each customer row joined to its labels (one result row per label, one with NULLs for a customer without any).
_WITH_LABELS = (select(*_C.c, _L.c.kind, _L.c.value, _L.c.granted, _L.c.at, _L.c.source)
                .select_from(_C.outerjoin(_L, _L.c.customer_id == _C.c.id)).where(_C.c.id.in_(_IDS)))
_ROW_KEYS = tuple(c.key for c in _C.c)


def read_snapshots(db: Session | Connection, ids: list[int]) -> list[dict[str, Any]]:
    """Snapshots (see `service.snapshot`, plus updated_at) of the customers with these ids that exist, in id
    order: one Core statement (so a consistent read even outside a transaction), no ORM objects."""
    out: dict[int, dict[str, Any]] = {}
    if not ids:
        return []
    n = len(_ROW_KEYS)
    for row in _core(db).execute(_WITH_LABELS, {"ids": ids}):
        snap = out.get(row[0])
        if snap is None:
            snap = out[row[0]] = dict(zip(_ROW_KEYS, row[:n], strict=True))
            snap.update(tags=[], interests=[], consents={})
        _add_label(snap, *row[n:])
    for snap in out.values():
        snap["tags"].sort()
        snap["interests"].sort()
    return [out[i] for i in sorted(out)]


def _add_label(snap: dict[str, Any], kind: str | None, value: str, granted: bool, at: Any, source: str) -> None:
    if kind == "consent":
        snap["consents"][value] = {"granted": granted, "at": at, "source": source}
    elif kind is not None:
        snap["tags" if kind == "tag" else "interests"].append(value)


def _core(db: Session | Connection) -> Connection:
    """The Core connection under a session: a Core statement run there skips the ORM's execution layer."""
    return db.connection() if isinstance(db, Session) else db


def snapshots(session: Session, customers: list[Customer]) -> list[dict[str, Any]]:
    """What `service.snapshot` gives for one customer (plus updated_at), for many loaded ones in one query."""
    labels = _labels(session, [c.id for c in customers])
    out = []
    for c in customers:
        data: dict[str, Any] = {"id": c.id, "site_id": c.site_id}
        data.update({name: getattr(c, name) for name in COLUMNS})
        data.update(email_confirmed_at=c.email_confirmed_at, created_at=c.created_at, updated_at=c.updated_at)
        data.update(labels[c.id])
        out.append(data)
    return out


def _labels(db: Session | Connection, ids: list[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = defaultdict(lambda: {"tags": [], "interests": [], "consents": {}})
    if ids:
        for cid, *label in _core(db).execute(_LABELS, {"ids": ids}):
            _add_label(out[cid], *label)
        for labels in out.values():
            labels["tags"].sort()
            labels["interests"].sort()
    return out


def ids_by_external(session: Session, pairs: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """(site_id, external_id) -> customer id, for the pairs that exist."""
    return batch.ids_by_external(session, Customer, pairs)


def refs_by_ids(session: Session, ids: set[int]) -> dict[int, Any]:
    """id -> a row with `id` and `site_id`, for the ids that exist (no ORM objects loaded)."""
    out: dict[int, Any] = {}
    items = sorted(ids)
    for i in range(0, len(items), 500):
        out.update({r.id: r for r in session.connection().execute(_REFS, {"ids": items[i : i + 500]})})
    return out


_REFS = select(Customer.id, Customer.site_id).where(Customer.id.in_(_IDS))


def by_ids(session: Session, ids: set[int]) -> dict[int, Customer]:
    out: dict[int, Customer] = {}
    items = sorted(ids)
    for i in range(0, len(items), 500):
        out.update({c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_(items[i : i + 500])))})
    return out


def find_by_contact(session: Session, *, site_id: int, email: str | None, phone: str | None) -> Customer | None:
    """The oldest customer of the site with this email, else with this phone."""
    for column, value in ((Customer.email, email), (Customer.phone, phone)):
        if value:
            found = session.scalar(select(Customer).where(Customer.site_id == site_id, column == value)
                                   .order_by(Customer.id).limit(1))
            if found is not None:
                return found
    return None
