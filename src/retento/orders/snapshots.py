"""Orders as plain data (what history, events and trigger conditions carry), read with Core: one order, or many
at once (optionally only some fields)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from retento.orders.models import Order, OrderItem
from retento.orders.schemas import dump_items
from retento.sites.models import Site

FLAT = (
    "status", "customer_id", "currency", "items", "items_total", "discount_total", "delivery_cost", "total",
    "delivery_type", "delivery_date", "delivery_address", "payment_type", "payment_status", "paid_amount",
    "manager_id", "customer_comment", "manager_comment", "custom_fields", "tags",
)
ITEM_COLUMNS = ("product_id", "offer_id", "name", "kind", "category", "quantity", "price", "discount")


_SNAPSHOT_KEYS = ("external_id", "number", "created_at", "status_updated_at",
                  *(k for k in FLAT if k != "items"))
_snapshot_values = itemgetter(*_SNAPSHOT_KEYS)


def _snapshot(oid: int, site_code: str, row: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    snap = {"id": oid, "site": site_code}
    snap.update(zip(_SNAPSHOT_KEYS, _snapshot_values(row), strict=True))
    snap["items"] = dump_items(items)
    return snap


def items_of(session: Session, order_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(OrderItem).where(OrderItem.order_id == order_id).order_by(OrderItem.id))
    return [{c: getattr(r, c) for c in ITEM_COLUMNS} for r in rows]


def snapshot(session: Session, order: Order) -> dict[str, Any]:
    site_code = session.scalar(select(Site.code).where(Site.id == order.site_id))
    row = {c.key: getattr(order, c.key) for c in Order.__table__.columns}
    return _snapshot(order.id, site_code, row, items_of(session, order.id))


def snapshots(session: Session, ids: Iterable[int], *,
              fields: Iterable[str] | None = None) -> dict[int, dict[str, Any]]:
    """`snapshot` of many orders in three Core queries (no ORM objects): id -> snapshot (missing ids are left
    out). With `fields`, only those (and `id`, `site`) are read: items only if asked for."""
    ids = list(set(ids))
    if not ids:
        return {}
    if fields is not None:
        return _partial_snapshots(session, ids, set(fields))
    rows = [r._mapping for r in session.execute(_WHOLE, {"ids": ids})]
    if not rows:
        return {}
    codes = _site_codes(session, {r["site_id"] for r in rows})
    items = _items_of(session, [r["id"] for r in rows])
    return {r["id"]: _snapshot(r["id"], codes[r["site_id"]], r, items[r["id"]]) for r in rows}


def _partial_snapshots(session: Session, ids: list[int], fields: set[str]) -> dict[int, dict[str, Any]]:
    names = tuple(sorted(n for n in fields if n in _ORDER.c and n not in ("id", "site_id")))
    out = {r[0]: {"id": r[0], "site_id": r[1], **dict(zip(names, r[2:], strict=True))}
           for r in session.execute(_partial_query(names), {"ids": ids}).all()}  # fetched at once, not row by row
    if "site" in fields and out:
        codes = _site_codes(session, {o["site_id"] for o in out.values()})
        for o in out.values():
            o["site"] = codes[o["site_id"]]
    if "items" in fields and out:
        for oid, items in _items_of(session, list(out)).items():
            out[oid]["items"] = dump_items(items)
    return out


@lru_cache(maxsize=64)
def _partial_query(names: tuple[str, ...]) -> Any:
    """The statement for a set of fields, built once (its construction costs more than running it on a batch)."""
    t = _ORDER
    return select(t.c.id, t.c.site_id, *(t.c[n] for n in names)).where(t.c.id.in_(bindparam("ids", expanding=True)))


_ORDER = Order.__table__
_ITEM = OrderItem.__table__
_WHOLE = select(_ORDER).where(_ORDER.c.id.in_(bindparam("ids", expanding=True)))
_SITE_CODES = select(Site.id, Site.code).where(Site.id.in_(bindparam("ids", expanding=True)))
_ITEMS = (select(_ITEM.c.order_id, *(_ITEM.c[c] for c in ITEM_COLUMNS))
          .where(_ITEM.c.order_id.in_(bindparam("ids", expanding=True))).order_by(_ITEM.c.id))


def _site_codes(session: Session, site_ids: set[int]) -> dict[int, str]:
    return dict(session.execute(_SITE_CODES, {"ids": list(site_ids)}).all())


def _items_of(session: Session, order_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    items: dict[int, list[dict[str, Any]]] = {oid: [] for oid in order_ids}
    for r in session.execute(_ITEMS, {"ids": order_ids}).all():
        items[r[0]].append(dict(zip(ITEM_COLUMNS, r[1:], strict=True)))
    return items
