"""Customers as plain data (what history, events and trigger conditions carry), read with Core: one customer, or
many at once (optionally only some fields)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import String, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from retento.core.db.types import json_default
from retento.customers.models import Consent, Customer, CustomerInterest, CustomerTag
from retento.customers.schemas import CustomerFields

COLUMNS = tuple(
    name for name in CustomerFields.model_fields if name not in ("tags", "interests", "consents")
) + ("external_id",)


def snapshot(session: Session, customer: Customer) -> dict[str, Any]:
    """The whole customer as plain data (what history and events carry)."""
    data: dict[str, Any] = {"id": customer.id, "site_id": customer.site_id}
    data.update({name: getattr(customer, name) for name in COLUMNS})
    data["email_confirmed_at"] = customer.email_confirmed_at
    data["created_at"] = customer.created_at
    data.update(_labels(session, customer.id))
    return data


def snapshots(session: Session, ids: Iterable[int], *,
              fields: Iterable[str] | None = None) -> dict[int, dict[str, Any]]:
    """`snapshot` of many customers in four Core queries (no ORM objects): id -> snapshot (missing ids are left
    out). With `fields`, only those (and `id`, `site_id`) are read: tags, interests, consents only if asked for."""
    ids = list(set(ids))
    if not ids:
        return {}
    wanted = set(fields) if fields is not None else None
    names = tuple(n for n in (*COLUMNS, "email_confirmed_at", "created_at") if wanted is None or n in wanted)
    dialect = session.get_bind().dialect.name
    read_customers, read_labels, read_consents = _snapshot_reads(dialect, names)
    out: dict[int, dict[str, Any]] = {}
    for r in session.execute(read_customers, {"ids": _ids_param(dialect, ids)}).all():
        out[r[0]] = {"id": r[0], "site_id": r[1], **dict(zip(names, r[2:], strict=True))}
    if not out:
        return out
    found = _ids_param(dialect, out)
    for name, q in read_labels:
        if wanted is not None and name not in wanted:
            continue
        for data in out.values():
            data[name] = []
        for cid, label in session.execute(q, {"ids": found}).all():
            out[cid][name].append(label)
        for data in out.values():
            data[name].sort()  # in Python, as `snapshot` and `edit` do (not the database's collation)
    if wanted is None or "consents" in wanted:
        for data in out.values():
            data["consents"] = {}
        for cid, channel, granted, at, source in session.execute(read_consents, {"ids": found}).all():
            out[cid]["consents"][channel] = {"granted": granted, "at": at, "source": source}
    return out


@lru_cache(maxsize=64)
def _snapshot_reads(dialect: str, names: tuple[str, ...]) -> tuple[Any, tuple[tuple[str, Any], ...], Any]:
    """`snapshots`' statements for a dialect and a set of columns, built once (their construction and cache key
    cost more than their run on a batch): the customers, their tags and interests, their consents, each among the
    ids bound as one parameter (`_ids_param`), as `core.db.bulk.one_of` binds them."""
    def among(column: Any) -> Any:
        if dialect == "postgresql":
            return column == any_(bindparam("ids", type_=postgresql.ARRAY(column.type)))
        return column.in_(select(func.json_each(bindparam("ids", type_=String)).table_valued("value").c.value))

    t, tag, interest, c = (Customer.__table__, CustomerTag.__table__.c, CustomerInterest.__table__.c,
                           Consent.__table__.c)
    return (select(t.c.id, t.c.site_id, *(t.c[n] for n in names)).where(among(t.c.id)),
            (("tags", select(tag.customer_id, tag.tag).where(among(tag.customer_id))),
             ("interests", select(interest.customer_id, interest.interest).where(among(interest.customer_id)))),
            select(c.customer_id, c.channel, c.granted, c.at, c.source).where(among(c.customer_id)))


def _ids_param(dialect: str, ids: Iterable[int]) -> Any:
    wanted = sorted(set(ids))
    return wanted if dialect == "postgresql" else orjson.dumps(wanted, default=json_default).decode()


def _labels(session: Session, customer_id: int) -> dict[str, Any]:
    tags = sorted(session.scalars(select(CustomerTag.tag).where(CustomerTag.customer_id == customer_id)))
    interests = sorted(
        session.scalars(select(CustomerInterest.interest).where(CustomerInterest.customer_id == customer_id))
    )
    consents = {
        c.channel: {"granted": c.granted, "at": c.at, "source": c.source}
        for c in session.scalars(select(Consent).where(Consent.customer_id == customer_id))
    }
    return {"tags": tags, "interests": interests, "consents": consents}
