"""Orders: set-based create (one order is a batch of one), edit, upsert; history and events in the same transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any, NamedTuple

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from retento import batch
from retento.batch import Done, Outcome, Stored
from retento.catalog.models import Product
from retento.core import bus
from retento.core.changes import ChangeContext
from retento.core.db.bulk import insert_rows, reserve_ids, rows_with_keys, update_rows
from retento.core.errors import Conflict, DomainError, FieldError, NotFound
from retento.core.jsonable import serialised
from retento.core.money import round_money
from retento.customers.models import Customer
from retento.history import service as history
from retento.orders import events as ev
from retento.orders.models import Order, OrderItem
from retento.orders.reference import reference
from retento.orders.schemas import OrderCreate, OrderEdit, OrderFields, dump_items

# snapshot(s) and items_of are part of this service's API (`orders.snapshots(...)`); they live in snapshots.py
from retento.orders.snapshots import FLAT, ITEM_COLUMNS, _snapshot, items_of, snapshot, snapshots  # noqa: F401
from retento.sites.models import Site
from retento.sites.service import get_site

ENTITY = "order"
_ZERO = Decimal(0)


def status_groups(session: Session) -> dict[str, str]:
    """status code -> group code (active statuses only; read once per transaction, see `reference`)."""
    return dict(reference(session).statuses)


def parse_create(raw: Any, *, prefix: str = "") -> OrderCreate:
    try:
        return OrderCreate.model_validate(raw)
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc, prefix) from None


_MANY = TypeAdapter(list[OrderCreate])


def parse_create_many(raws: Sequence[Any]) -> list[OrderCreate]:
    """`parse_create` for a batch in one validation call; errors name the order as `[n].field`."""
    try:
        return _MANY.validate_python(raws)
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc, indexed=True) from None


def parse_edit(raw: Any, *, prefix: str = "") -> OrderEdit:
    try:
        return OrderEdit.model_validate(raw)
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc, prefix) from None


@dataclass
class Prepared:
    order: dict[str, Any]
    items: list[dict[str, Any]]
    site_code: str


class _SiteRef(NamedTuple):
    id: int
    code: str
    currency: str
    currencies: list[str]


class _ProductRef(NamedTuple):
    id: int
    offer_id: str
    name: str
    kind: str
    category: str | None
    price: Decimal


@dataclass
class _Refs:
    """Reference data for one batch, loaded with a handful of queries."""

    sites: dict[str, _SiteRef]
    statuses: dict[str, str]
    managers: set[int]
    products: dict[tuple[int, str], _ProductRef] = field(default_factory=dict)
    customers_by_ext: dict[tuple[int, str], int] = field(default_factory=dict)
    customers_by_id: dict[int, int] = field(default_factory=dict)  # id -> site_id

    @classmethod
    def load(cls, session: Session, items: Sequence[OrderFields], *, site_id: int | None = None) -> _Refs:
        """`site_id`: the site of orders given without one (edits); otherwise each order's `site`."""
        refs = cls.base(session)
        refs.add(session, items, refs.site_ids(items, site_id))
        return refs

    @classmethod
    def base(cls, session: Session) -> _Refs:
        """Sites, statuses and managers: what every order of any batch may refer to."""
        ref = reference(session)  # read once per transaction
        return cls(sites={s[1]: _SiteRef(*s) for s in ref.sites}, statuses=dict(ref.statuses),
                   managers=set(ref.managers))

    def add(self, session: Session, items: Sequence[OrderFields], site_ids: Sequence[int | None]) -> None:
        """Load the products and customers that `items` (on `site_ids`, one each) refer to."""
        refs = self
        offers: dict[int, set[str]] = defaultdict(set)
        ext: dict[int, set[str]] = defaultdict(set)
        for o, sid in zip(items, site_ids, strict=True):
            if sid is None:
                continue
            offers[sid].update(i.offer_id for i in (o.items or ()) if i.offer_id)
            if o.customer and o.customer.external_id:
                ext[sid].add(o.customer.external_id)
        # Every lookup names the site, so it is a seek in the (site_id, key) unique index, not a table scan.
        columns = (Product.id, Product.offer_id, Product.name, Product.kind, Product.category, Product.price)
        for sid, chunk in _per_site(offers):
            for p in session.execute(select(*columns).where(Product.site_id == sid, Product.offer_id.in_(chunk))):
                refs.products[(sid, p.offer_id)] = _ProductRef(*p)
        for sid, keys in ext.items():
            found = rows_with_keys(session, Customer.__table__, ("external_id", "id"), site_id=sid,
                                   key="external_id", values=keys)
            refs.customers_by_ext.update(((sid, e), cid) for e, cid in found)
        ids = {o.customer.id for o in items if o.customer and o.customer.id}
        for chunk in _chunks(sorted(ids)):
            q = select(Customer.id, Customer.site_id).where(Customer.id.in_(chunk))
            refs.customers_by_id.update((cid, site_id) for cid, site_id in session.execute(q))

    def site_ids(self, items: Sequence[OrderFields], site_id: int | None = None) -> list[int | None]:
        if site_id is not None:
            return [site_id] * len(items)
        return [s.id if (s := self.sites.get(o.site)) else None for o in items]  # type: ignore[attr-defined]


def _chunks(values: list[Any], size: int = 900) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _per_site(wanted: dict[int, set[str]]) -> Iterator[tuple[int, list[str]]]:
    for sid, keys in wanted.items():
        for chunk in _chunks(sorted(keys)):
            yield sid, chunk


def prepare(session: Session, items: Sequence[OrderCreate], *, now: datetime) -> list[Prepared | DomainError]:
    """Check every order of a batch against the database; no writes. One result per input, in order."""
    refs = _Refs.load(session, items)
    taken_ext, taken_num = _taken(session, items, refs)
    out: list[Prepared | DomainError] = []
    for data in items:
        try:
            p = _prepare_one(data, refs, now)
            key_ext = (p.order["site_id"], data.external_id)
            key_num = (p.order["site_id"], p.order["number"])
            if data.external_id and key_ext in taken_ext:
                raise Conflict("external_id", f"order with externalId {data.external_id!r} already exists")
            if p.order["number"] is not None and key_num in taken_num:
                raise Conflict("number", f"order number {p.order['number']!r} already exists")
            if data.external_id:
                taken_ext.add(key_ext)
            if p.order["number"] is not None:
                taken_num.add(key_num)
            out.append(p)
        except DomainError as exc:
            out.append(exc)
    return out


def _taken(session: Session, items: Sequence[OrderCreate], refs: _Refs) -> tuple[set, set]:
    """(site id, externalId) and (site id, number) pairs of the batch that existing orders already use."""
    ext: dict[int, set[str]] = defaultdict(set)
    nums: dict[int, set[str]] = defaultdict(set)
    for o, sid in zip(items, refs.site_ids(items), strict=True):
        if sid is not None:
            if o.external_id:
                ext[sid].add(o.external_id)
            if o.number or o.external_id:
                nums[sid].add(o.number or o.external_id)
    def taken(key: str, wanted: dict[int, set[str]]) -> set[tuple[int, str]]:
        return {(sid, value) for sid, keys in wanted.items() for (value,) in
                rows_with_keys(session, Order.__table__, (key,), site_id=sid, key=key, values=keys)}

    return taken("external_id", ext), taken("number", nums)


def _prepare_one(data: OrderCreate, refs: _Refs, now: datetime) -> Prepared:
    site = refs.sites.get(data.site)
    if site is None:
        raise NotFound("site", f"unknown site {data.site!r}")
    created_at = data.created_at or now
    values = {
        "site_id": site.id, "external_id": data.external_id, "number": data.number or data.external_id,
        "status": "new", "customer_id": None, "currency": site.currency, "delivery_type": None,
        "delivery_date": None, "delivery_address": None, "delivery_cost": _ZERO, "payment_type": None,
        "payment_status": None, "paid_amount": _ZERO, "manager_id": None, "customer_comment": None,
        "manager_comment": None, "custom_fields": {}, "tags": [], "status_updated_at": created_at,
        "created_at": created_at, "updated_at": now,
    }
    values.update(_common(data, refs, site))
    items = _items(data.items, refs, site)
    values.update(_totals(items, values.get("discount_total") or _ZERO, values["delivery_cost"]))
    return Prepared(order=values, items=items, site_code=site.code)


def _common(data: OrderFields, refs: _Refs, site: Site) -> dict[str, Any]:
    """Column values for the fields present in `data` (create and edit share this)."""
    given = data.model_fields_set
    values: dict[str, Any] = {}
    if "status" in given and data.status is not None:
        if data.status not in refs.statuses:
            raise NotFound("status", f"unknown status {data.status!r}")
        values["status"] = data.status
    if "currency" in given and data.currency is not None:
        if data.currency not in site.currencies:
            raise DomainError.one("currency", f"site {site.code!r} does not accept {data.currency} "
                                              f"(accepted: {', '.join(site.currencies)})")
        values["currency"] = data.currency
    if "customer" in given:
        values["customer_id"] = _customer_id(data, refs, site)
    if "manager_id" in given:
        if data.manager_id is not None and data.manager_id not in refs.managers:
            raise NotFound("manager_id", f"unknown manager {data.manager_id}")
        values["manager_id"] = data.manager_id
    if "discount_total" in given:
        values["discount_total"] = data.discount_total or Decimal(0)
    for name in ("customer_comment", "manager_comment"):
        if name in given:
            values[name] = getattr(data, name)
    if "custom_fields" in given:
        values["custom_fields"] = data.custom_fields or {}
    if "tags" in given:
        values["tags"] = sorted(set(data.tags or ()))
    if data.delivery is not None:
        for sub in data.delivery.model_fields_set:
            values[f"delivery_{sub}"] = getattr(data.delivery, sub)
    if data.payment is not None:
        for sub in data.payment.model_fields_set:
            values["paid_amount" if sub == "paid_amount" else f"payment_{sub}"] = getattr(data.payment, sub)
    return values


def _customer_id(data: OrderFields, refs: _Refs, site: Site) -> int | None:
    ref = data.customer
    if ref is None:
        return None
    if ref.id is not None:
        if refs.customers_by_id.get(ref.id) != site.id:
            raise NotFound("customer.id", f"customer {ref.id} not found on site {site.code!r}")
        return ref.id
    cid = refs.customers_by_ext.get((site.id, ref.external_id))
    if cid is None:
        raise NotFound("customer.external_id", f"customer {ref.external_id!r} not found on site {site.code!r}")
    return cid


def _items(items: Sequence[Any], refs: _Refs, site: Site) -> list[dict[str, Any]]:
    out = []
    site_id, products = site.id, refs.products
    for n, item in enumerate(items):
        offer_id = item.offer_id
        if offer_id:
            product = products.get((site_id, offer_id))
            if product is None:
                raise NotFound(f"items.{n}.offer_id", f"no product with offer id {offer_id!r} on site {site.code!r}")
            price = product.price if item.price is None else item.price
            line = {"product_id": product.id, "offer_id": offer_id, "name": item.name or product.name,
                    "kind": item.kind.value if item.kind else product.kind,
                    "category": item.category or product.category}
        else:
            price = item.price
            line = {"product_id": None, "offer_id": None, "name": item.name,
                    "kind": item.kind.value if item.kind else "product", "category": item.category or None}
        if item.discount > round_money(price * item.quantity):
            raise DomainError.one(f"items.{n}.discount", "discount is larger than the line's amount")
        line["quantity"], line["price"], line["discount"] = item.quantity, price, item.discount
        out.append(line)
    return out


def _totals(items: list[dict[str, Any]], discount_total: Decimal, delivery_cost: Decimal) -> dict[str, Decimal]:
    items_total = _ZERO
    for i in items:  # a plain loop: this runs for every order of a batch
        items_total += round_money(i["price"] * i["quantity"]) - i["discount"]
    if discount_total > items_total:
        raise DomainError.one("discount_total", "order discount is larger than the items' total")
    return {"items_total": items_total, "discount_total": discount_total,
            "total": items_total - discount_total + delivery_cost}


def write(session: Session, prepared: Sequence[Prepared], *, ctx: ChangeContext, now: datetime) -> list[int]:
    """Store prepared orders with their items, history and events. Returns the new ids, in order."""
    if not prepared:
        return []
    ids = reserve_ids(session, Order.__table__, len(prepared))
    # What every history row and event of the batch shares; each order fills in its own ids and values.
    entry = history.entry(entity=ENTITY, entity_id=0, site_id=0, ctx=ctx, now=now, created=True,
                          field="status")
    created = bus.event_row(ev.ORDER_CREATED, ctx=ctx, now=now)
    rows, items, hist, events = [], [], [], []
    for oid, p in zip(ids, prepared, strict=True):
        row = {**p.order, "id": oid}
        if row["number"] is None:
            row["number"] = f"{oid}A"  # as RetailCRM numbers orders that come without one
        rows.append(row)
        for item in p.items:
            item["order_id"] = oid
        items += p.items
        snap = serialised(_snapshot(oid, p.site_code, row, p.items))  # one serialisation for history and event
        site_id = row["site_id"]
        hist.append({**entry, "entity_id": oid, "site_id": site_id, "new_value": snap})
        events.append({**created, "site_id": site_id, "customer_id": row["customer_id"], "order_id": oid,
                       "payload": serialised({"order": snap})})
    insert_rows(session, Order.__table__, rows)
    insert_rows(session, OrderItem.__table__, items)
    history.write(session, hist)
    bus.record(session, events)
    return ids


def create_many(session: Session, *, items: Sequence[OrderCreate], ctx: ChangeContext, now: datetime) -> list[int]:
    """All or nothing: the first bad order raises, naming its index and field."""
    prepared = prepare(session, items, now=now)
    for n, p in enumerate(prepared):
        if isinstance(p, DomainError):
            if len(items) > 1:
                p.errors = [FieldError(f"[{n}].{e.field}", e.reason) for e in p.errors]
            raise p
    return write(session, prepared, ctx=ctx, now=now)  # type: ignore[arg-type]


def create(session: Session, *, data: OrderCreate, ctx: ChangeContext, now: datetime) -> Order:
    (oid,) = create_many(session, items=[data], ctx=ctx, now=now)
    return get(session, oid)


def get(session: Session, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound("id", f"order {order_id} not found")
    return order


def find(session: Session, *, site_id: int, external_id: str) -> Order | None:
    return session.scalar(select(Order).where(Order.site_id == site_id, Order.external_id == external_id))


def edit(session: Session, *, order: Order, data: OrderEdit | OrderCreate, ctx: ChangeContext,
         now: datetime) -> list[tuple[str, Any, Any]]:
    """Change the fields present in `data`; returns the recorded changes (field, old, new)."""
    site = session.get(Site, order.site_id)
    refs = _Refs.load(session, [data], site_id=order.site_id)
    before = _state({k: getattr(order, k) for k in FLAT if k != "items"}, items_of(session, order.id))
    after, changes = _edited(before, data, refs, site)
    if not changes:
        return []
    for name, _old, _new in changes:
        if name == "items":
            session.execute(delete(OrderItem).where(OrderItem.order_id == order.id))
            session.execute(insert(OrderItem.__table__), [{"order_id": order.id, **i} for i in after["items"]])
        else:
            setattr(order, name, after[name])
    if before["status"] != after["status"]:
        order.status_updated_at = now
    order.updated_at = now
    session.flush()
    hist, events = _change_rows(order.id, order.site_id, before, after, changes, refs, ctx, now)
    history.write(session, hist)
    bus.record(session, events)
    return changes


def _state(row: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """An order's editable values (FLAT, items last), as `_edited` compares them."""
    return {**{k: row[k] for k in FLAT if k != "items"}, "items": items}


def _edited(before: dict[str, Any], data: OrderFields, refs: _Refs,
            site: Site | _SiteRef) -> tuple[dict[str, Any], list[tuple[str, Any, Any]]]:
    """The order's values after `data` and the changes (field, old, new); no I/O (edit and edit_many share it)."""
    values = _common(data, refs, site)
    after = {**before, **values}
    if "items" in data.model_fields_set and data.items is not None:
        after["items"] = _items(data.items, refs, site)
    after.update(_totals(after["items"], after["discount_total"], after["delivery_cost"]))
    dumped = dump_items(before["items"])  # items not edited: the same list on both sides, not compared
    changes = history.diff({**before, "items": dumped}, {
        **after, "items": dumped if after["items"] is before["items"] else dump_items(after["items"])})
    return after, changes


def _change_rows(order_id: int, site_id: int, before: dict[str, Any], after: dict[str, Any],
                 changes: list[tuple[str, Any, Any]], refs: _Refs, ctx: ChangeContext,
                 now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """History rows and events (order_changed, order_status_changed) of one edit."""
    hist = [history.entry(entity=ENTITY, entity_id=order_id, site_id=site_id, ctx=ctx, now=now,
                          field=f, old=o, new=n) for f, o, n in changes]
    common = {"ctx": ctx, "now": now, "site_id": site_id, "customer_id": after["customer_id"], "order_id": order_id}
    events = [bus.event_row(ev.ORDER_CHANGED, **common,
                            payload={"changes": [{"field": f, "old": o, "new": n} for f, o, n in changes]})]
    if before["status"] != after["status"]:
        events.append(bus.event_row(ev.ORDER_STATUS_CHANGED, **common, payload={
            "old": before["status"], "new": after["status"],
            "old_group": refs.statuses.get(before["status"]), "new_group": refs.statuses[after["status"]],
        }))
    return hist, events


EditFn = Callable[[dict[str, Any]], "OrderEdit | None"]
_ORDER = Order.__table__
_ITEM = OrderItem.__table__
_READ = (_ORDER.c.id, _ORDER.c.site_id, *(_ORDER.c[k] for k in FLAT if k != "items"))
_READ_KEYS = tuple(c.key for c in _READ)
# built once: a statement's construction and cache key cost more Python than its execution on a small batch
_READ_ORDERS = select(*_READ).where(_ORDER.c.id.in_(bindparam("ids", expanding=True)))
_READ_ITEMS = (select(_ITEM.c.order_id, *(_ITEM.c[c] for c in ITEM_COLUMNS))
               .where(_ITEM.c.order_id.in_(bindparam("ids", expanding=True))).order_by(_ITEM.c.id))


def edit_many(session: Session, *, edits: Sequence[tuple[int, OrderEdit | EditFn, ChangeContext]],
              now: datetime) -> list[list[tuple[str, Any, Any]]]:
    """`edit` for many (order id, data, ctx), with the same rows, history and events as calling `edit` for each
    in list order (edits of one order apply one after the other), in a few statements. `data` may be a function
    of the order's current values (FLAT, as the earlier edits of the list left them) returning the OrderEdit,
    or None for no edit. Returns each edit's changes. Raises the DomainError of the first edit that cannot be
    done (an unknown order, status, manager, ...) before writing anything."""
    if not edits:
        return []
    session.flush()
    ids = list(dict.fromkeys(oid for oid, _, _ in edits))
    state: dict[int, dict[str, Any]] = {}
    site_of: dict[int, int] = {}
    for chunk in _chunks(ids):
        for row in session.execute(_READ_ORDERS, {"ids": chunk}).all():
            site_of[row[0]] = row[1]
            state[row[0]] = _state(dict(zip(_READ_KEYS, row, strict=True)), [])  # a Row's attribute costs ~0.5 µs
    for oid in ids:
        if oid not in state:
            raise NotFound("id", f"order {oid} not found")
    for chunk in _chunks(ids):
        for row in session.execute(_READ_ITEMS, {"ids": chunk}).all():
            state[row[0]]["items"].append(dict(zip(ITEM_COLUMNS, row[1:], strict=True)))
    refs = _Refs.base(session)
    static = [(d, site_of[oid]) for oid, d, _ in edits if not callable(d)]
    refs.add(session, [d for d, _ in static], [sid for _, sid in static])
    sites = {s.id: s for s in refs.sites.values()}
    out, hist, events = [], [], []
    moved: set[int] = set()  # orders whose status changed (status_updated_at = now, even if changed back)
    touched: dict[int, set[str]] = defaultdict(set)  # fields each order's edits changed
    for oid, data, ctx in edits:
        before, site_id = state[oid], site_of[oid]
        if callable(data):
            data = data(before)
            if data is None:
                out.append([])
                continue
            if data.customer is not None or data.items:
                refs.add(session, [data], [site_id])
        after, changes = _edited(before, data, refs, sites[site_id])
        out.append(changes)
        if changes:
            h, e = _change_rows(oid, site_id, before, after, changes, refs, ctx, now)
            hist += h
            events += e
            state[oid] = after
            touched[oid].update(c[0] for c in changes)
            if after["status"] != before["status"]:
                moved.add(oid)
    _store(session, state, touched, moved, now)
    history.write(session, hist)
    bus.record(session, events)
    return out


def _store(session: Session, state: dict[int, dict[str, Any]], touched: dict[int, set[str]], moved: set[int],
           now: datetime) -> None:
    """Write the fields the edits changed (`touched`) with their last values: one UPDATE per set of columns, the
    items of orders whose items changed replaced; their ORM objects in the session are expired."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    new_items: dict[int, list[dict[str, Any]]] = {}
    for oid, fields in touched.items():
        after = state[oid]
        if "items" in fields:
            new_items[oid] = after["items"]
        values = {k: after[k] for k in sorted(fields - {"items"})}
        if oid in moved:
            values["status_updated_at"] = now
        values["updated_at"] = now
        groups[tuple(values)].append({"id": oid, **values})
    for rows in groups.values():  # by id: concurrent writers lock rows in the same order
        update_rows(session, _ORDER, sorted(rows, key=itemgetter("id")))
    for chunk in _chunks(sorted(new_items)):
        session.execute(delete(_ITEM).where(_ITEM.c.order_id.in_(chunk)))
    if new_items:
        session.execute(insert(_ITEM), [{"order_id": oid, **i} for oid, items in new_items.items() for i in items])
        for obj in [o for o in session.identity_map.values() if isinstance(o, OrderItem) and o.order_id in new_items]:
            session.expunge(obj)
    for oid in touched:
        if (obj := session.identity_map.get(identity_key(Order, oid))) is not None:
            session.expire(obj)


def upsert(session: Session, *, data: OrderCreate, ctx: ChangeContext, now: datetime) -> tuple[int, bool]:
    """Create, or update the order with the same externalId on the same site. Returns (id, created)."""
    (outcome,) = upsert_many(session, items=[data], ctx=ctx, now=now)
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome.id, outcome.done is Done.CREATED


def upsert_many(session: Session, *, items: Sequence[OrderCreate], ctx: ChangeContext, now: datetime) -> list[Outcome]:
    """Create orders, or update those whose externalId their site has, one outcome per item in order, as
    `customers.service.upsert_many` (an update changes the fields the item gives, as `edit`; `items`, when given,
    replace the order's items). Set-based: `prepare` + `write` and `edit_many` over the batch."""
    out: list[Outcome] = []
    for chunk in batch.without_repeats(items, lambda d: (d.site, d.external_id) if d.external_id else None):
        out += _upsert_chunk(session, [items[n] for n in chunk], ctx, now)
    return out


def _upsert_chunk(session: Session, items: list[OrderCreate], ctx: ChangeContext, now: datetime) -> list[Outcome]:
    site_ids = {}
    for code in dict.fromkeys(d.site for d in items):
        try:
            site_ids[code] = get_site(session, code).id
        except NotFound:  # `prepare` refuses the items naming it (another site's: a 403, raised)
            pass
    keys = {n: (site_ids[d.site], d.external_id) for n, d in enumerate(items) if d.site in site_ids and d.external_id}
    existing = batch.ids_by_external(session, Order, set(keys.values()))
    old = [n for n, k in keys.items() if k in existing]
    new = [n for n in range(len(items)) if n not in set(old)]
    prepared = list(zip(new, prepare(session, [items[n] for n in new], now=now), strict=True))
    bad = [(n, p) for n, p in prepared if isinstance(p, DomainError)]
    good = [(n, p) for n, p in prepared if not isinstance(p, DomainError)]

    def create(chunk: list[Prepared]) -> list[Outcome]:
        return [Stored(Done.CREATED, oid) for oid in write(session, chunk, ctx=ctx, now=now)]

    def update(chunk: list[tuple[int, OrderCreate]]) -> list[Outcome]:
        changes = edit_many(session, edits=[(oid, d, ctx) for oid, d in chunk], now=now)
        return [Stored(Done.UPDATED if c else Done.UNCHANGED, oid) for (oid, _), c in zip(chunk, changes, strict=True)]

    return batch.merge(len(items), [
        ([n for n, _ in bad], [p for _, p in bad]),
        ([n for n, _ in good], batch.together_or_each(session, [p for _, p in good], create)),
        (old, batch.together_or_each(session, [(existing[keys[n]], items[n]) for n in old], update)),
    ])
