"""A customer's labels in one column (`customers.labels`): its tags, interests and granted consents as sorted
strings `tag:<tag>`, `interest:<interest>`, `consent:<channel>`.

The column summarises the rows of `customer_tags`, `customer_interests` and `customer_consents` and is written in
the same transaction as they are (every write of those rows goes through customers.service, which calls `of` or
`refresh`). Segment rules on tags, interests and consent read it on PostgreSQL, where a GIN index answers
`labels @> '["tag:vip", "consent:email"]'` from the index instead of joining a million customers with the label
tables (docs/segments.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from retento.core.db.bulk import one_of
from retento.customers.models import Consent, Customer, CustomerInterest, CustomerTag

KINDS = ("tag", "interest", "consent")


def label(kind: str, value: str) -> str:
    return f"{kind}:{value}"


def of(tags: Iterable[str], interests: Iterable[str], consents: Mapping[str, Any]) -> list[str]:
    """The labels of one customer (pure): `consents` maps a channel to a consent (a dict or an object with
    `granted`) or to whether it is granted."""
    granted = [ch for ch, x in consents.items()
               if (x["granted"] if isinstance(x, Mapping) else getattr(x, "granted", x)) is True]
    return sorted({*(label("tag", t) for t in tags), *(label("interest", i) for i in interests),
                   *(label("consent", str(getattr(ch, "value", ch))) for ch in granted)})


def current(session: Session, ids: Iterable[int]) -> dict[int, list[str]]:
    """The labels the rows of these customers give (read from the label tables, 900 ids a query)."""
    ids = sorted(set(ids))
    found: dict[int, set[str]] = defaultdict(set)
    tag, interest, consent = CustomerTag.__table__, CustomerInterest.__table__, Consent.__table__
    for i in range(0, len(ids), 900):
        chunk = ids[i:i + 900]
        for kind, q in (("tag", select(tag.c.customer_id, tag.c.tag).where(one_of(session, tag.c.customer_id, chunk))),
                        ("interest", select(interest.c.customer_id, interest.c.interest)
                         .where(one_of(session, interest.c.customer_id, chunk))),
                        ("consent", select(consent.c.customer_id, consent.c.channel)
                         .where(one_of(session, consent.c.customer_id, chunk), consent.c.granted.is_(True)))):
            for cid, value in session.execute(q):
                found[cid].add(label(kind, value))
    return {cid: sorted(found.get(cid, ())) for cid in ids}


def refresh(session: Session, ids: Iterable[int]) -> None:
    """Rewrite the labels column of these customers from their label rows (after a write of those rows)."""
    rows = [{"b_id": cid, "b_labels": values} for cid, values in current(session, ids).items()]
    if rows:
        t = Customer.__table__
        session.connection().execute(update(t).where(t.c.id == bindparam("b_id"))
                                     .values(labels=bindparam("b_labels", type_=t.c.labels.type)), rows)
