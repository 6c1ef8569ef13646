"""Customers: create, edit, upsert by externalId; every write records history and events."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import Select, and_, bindparam, delete, insert, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from retento import batch
from retento.batch import Done, Outcome, Stored
from retento.core import bus, limits
from retento.core.changes import ChangeContext
from retento.core.db.bulk import insert_rows, one_of, rows_with_keys, update_rows
from retento.core.errors import Conflict, DomainError, FieldError, NotFound
from retento.customers import events as ev, labels, merges
from retento.customers.models import Consent, Customer, CustomerInterest, CustomerTag
from retento.customers.schemas import CustomerCreate, CustomerEdit, CustomerFields

# snapshot(s) and COLUMNS are part of this service's API (`customers.snapshots(...)`); they live in snapshots.py
from retento.customers.snapshots import COLUMNS, snapshot, snapshots  # noqa: F401
from retento.history import service as history
from retento.sites.models import Site
from retento.sites.service import get_site, manager_ids

ENTITY = "customer"


def parse_create(session: Session, raw: dict[str, Any], *, prefix: str = "") -> CustomerCreate:
    """Validate a new customer; phone numbers without a country code are read in the site's region."""
    site_code = raw.get("site") if isinstance(raw, dict) else None
    region = _region(session, site_code)
    try:
        return CustomerCreate.model_validate(raw, context={"region": region})
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc, prefix) from None


_REGIONAL = frozenset(k for name in ("phone", "whatsapp_id")  # the fields read in the site's region, and aliases
                      for k in (name, CustomerEdit.model_fields[name].alias) if k)


def parse_edit(session: Session, raw: dict[str, Any], *, site_id: int, prefix: str = "") -> CustomerEdit:
    region = "RU"
    if not isinstance(raw, dict) or not _REGIONAL.isdisjoint(raw):  # (a tags-only edit reads no site)
        site = session.get(Site, site_id)
        region = site.default_region if site else "RU"
    try:
        return CustomerEdit.model_validate(raw, context={"region": region})
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc, prefix) from None


def _region(session: Session, site_code: Any) -> str:
    if isinstance(site_code, str):
        region = session.scalar(select(Site.default_region).where(Site.code == site_code))
        if region:
            return region
    return "RU"


def get(session: Session, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise merges.not_found("id", customer_id, merges.merged_into(session, [customer_id]))
    return customer


def find(session: Session, *, site_id: int, external_id: str) -> Customer | None:
    return session.scalar(select(Customer).where(Customer.site_id == site_id, Customer.external_id == external_id))


def find_by_contact(session: Session, *, site_id: int, telegram_id: str | None = None, vk_id: str | None = None,
                    phone: str | None = None) -> int | None:
    """The id of the site's customer with this Telegram id, VK id, or phone (E.164, as `phone` or `whatsapp_id`);
    the most recently created one where several match (messengers' inbound messages find their customer so)."""
    conds = []
    if telegram_id:
        conds.append(Customer.telegram_id == telegram_id)
    if vk_id:
        conds.append(Customer.vk_id == vk_id)
    if phone:
        conds += [Customer.whatsapp_id == phone, Customer.phone == phone]
    if not conds:
        return None
    return session.scalar(select(Customer.id).where(Customer.site_id == site_id, or_(*conds))
                          .order_by(Customer.id.desc()).limit(1))


def get_by_external_id(session: Session, *, site: str, external_id: str) -> Customer:
    customer = find(session, site_id=get_site(session, site).id, external_id=external_id)
    if customer is None:
        raise NotFound("externalId", f"customer {external_id!r} not found on site {site!r}")
    return customer


def create(session: Session, *, data: CustomerCreate, ctx: ChangeContext, now: datetime) -> Customer:
    return create_many(session, items=[data], ctx=ctx, now=now)[0]


def create_many(
    session: Session, *, items: Sequence[CustomerCreate], ctx: ChangeContext, now: datetime
) -> list[Customer]:
    """Create customers in one go (imports and batches use this path too)."""
    sites = {code: get_site(session, code, field=f"[{i}].site" if len(items) > 1 else "site")
             for i, code in enumerate(dict.fromkeys(d.site for d in items))}
    _check_managers(session, items)
    keys = [(sites[d.site].id, d.external_id) for d in items if d.external_id]
    if len(set(keys)) != len(keys):
        raise Conflict("external_id", "the same externalId appears twice in one batch")
    wanted: dict[int, set[str]] = defaultdict(set)
    for site_id, external_id in keys:
        wanted[site_id].add(external_id)
    taken = {(site_id, e) for site_id, ext in wanted.items() for (e,) in rows_with_keys(
        session, Customer.__table__, ("external_id",), site_id=site_id, key="external_id", values=ext)}
    for site_id, external_id in keys:
        if (site_id, external_id) in taken:
            raise Conflict("external_id", f"customer with externalId {external_id!r} already exists")
    customers = []
    for d in items:
        values = {name: getattr(d, name) for name in COLUMNS}
        values["personal_dates"] = {k: v.isoformat() for k, v in (d.personal_dates or {}).items()}
        values["custom_fields"] = d.custom_fields or {}
        values["email_confirmed"] = bool(d.email_confirmed)
        values["email_confirmed_at"] = now if d.email_confirmed else None
        values["labels"] = labels.of(d.tags or (), d.interests or (), d.consents or {})
        created_at = d.created_at or now
        customers.append(Customer(site_id=sites[d.site].id, created_at=created_at, updated_at=now, **values))
    session.add_all(customers)
    session.flush()
    tags, interests, consents = [], [], []
    for c, d in zip(customers, items, strict=True):
        tags += [{"customer_id": c.id, "tag": t} for t in d.tags or ()]
        interests += [{"customer_id": c.id, "interest": t} for t in d.interests or ()]
        consents += [
            {"customer_id": c.id, "channel": ch.value, "granted": x.granted, "at": x.at or now, "source": x.source}
            for ch, x in (d.consents or {}).items()
        ]
    for model, rows in ((CustomerTag, tags), (CustomerInterest, interests), (Consent, consents)):
        if rows:
            session.execute(insert(model), rows)
    hist, events = [], []
    for c, d in zip(customers, items, strict=True):
        snap = snapshot_from_input(c, d, now)
        hist.append(history.entry(entity=ENTITY, entity_id=c.id, site_id=c.site_id, ctx=ctx, now=now,
                                  created=True, new=snap))
        events.append(bus.event_row(ev.CUSTOMER_CREATED, ctx=ctx, now=now, site_id=c.site_id, customer_id=c.id,
                                    payload={"customer": snap}))
        for ch, x in (d.consents or {}).items():
            events.append(_consent_event(c.id, c.site_id, ch.value, x.granted, x.source, ctx, now))
        if d.email_confirmed:
            events.append(bus.event_row(ev.EMAIL_CONFIRMED, ctx=ctx, now=now, site_id=c.site_id,
                                        customer_id=c.id, payload={"email": c.email}))
    history.write(session, hist)
    bus.record(session, events)
    return customers


def snapshot_from_input(c: Customer, d: CustomerCreate, now: datetime) -> dict[str, Any]:
    data: dict[str, Any] = {"id": c.id, "site_id": c.site_id}
    data.update({name: getattr(c, name) for name in COLUMNS})
    data["email_confirmed_at"] = c.email_confirmed_at
    data["created_at"] = c.created_at
    data["tags"] = d.tags or []
    data["interests"] = d.interests or []
    data["consents"] = {
        ch.value: {"granted": x.granted, "at": x.at or now, "source": x.source} for ch, x in (d.consents or {}).items()
    }
    return data


def _check_managers(session: Session, items: Sequence[CustomerFields]) -> None:
    wanted = {d.manager_id for d in items if d.manager_id is not None}
    if wanted and (missing := wanted - manager_ids(session)):
        raise NotFound("manager_id", f"unknown manager {sorted(missing)[0]}")


def _consent_event(cid: int, site_id: int, channel: str, granted: bool, source: str, ctx: ChangeContext,
                   now: datetime) -> dict[str, Any]:
    return bus.event_row(ev.SUBSCRIBED if granted else ev.UNSUBSCRIBED, ctx=ctx, now=now, site_id=site_id,
                         customer_id=cid, payload={"channel": channel, "source": source})


def edit(session: Session, *, customer: Customer, data: CustomerEdit | CustomerCreate, ctx: ChangeContext,
         now: datetime) -> list[tuple[str, Any, Any]]:
    """Change the fields present in `data`; returns the changes (field, old, new) that were recorded."""
    _check_managers(session, [data])
    before = snapshot(session, customer)
    given, after, changes = _edited(before, data, now)
    if not changes:
        return []
    if (ext := _new_external_id(given, before)) is not None:
        if find(session, site_id=customer.site_id, external_id=ext) is not None:
            raise Conflict("external_id", f"customer with externalId {ext!r} already exists")
    for field, old, new in changes:
        if field in ("tags", "interests"):
            _replace_labels(session, customer.id, field, new)
        elif field == "consents":
            for ch, x in new.items():
                if old.get(ch) != x:
                    session.merge(Consent(customer_id=customer.id, channel=ch, **x))
        else:
            setattr(customer, field, new)
    customer.updated_at = now
    session.flush()
    if any(field in LABELLED for field, _old, _new in changes):
        labels.refresh(session, [customer.id])
        session.expire(customer, ["labels"])
    hist, events = _change_rows(customer.id, customer.site_id, before, after, changes, ctx, now)
    history.write(session, hist)
    bus.record(session, events)
    return changes


def _edited(before: dict[str, Any], data: CustomerFields, now: datetime) -> tuple[dict[str, Any], dict[str, Any],
                                                                                  list[tuple[str, Any, Any]]]:
    """(given fields, the snapshot after `data`, the changes); no I/O (edit and edit_many share it)."""
    given = {name: getattr(data, name) for name in data.model_fields_set if name not in ("site", "created_at")}
    after = dict(before)
    for name, value in given.items():
        if name == "personal_dates":
            value = {k: v.isoformat() for k, v in (value or {}).items()}
        elif name == "custom_fields":
            value = {**before["custom_fields"], **(value or {})}
            try:
                limits.custom_fields_count(len(value))
            except ValueError as exc:  # edits merge custom fields: the merged set keeps the limit too
                raise DomainError([FieldError("custom_fields", str(exc))], status=422) from None
        elif name == "tags" or name == "interests":
            value = value or []
        elif name == "consents":
            merged = dict(before["consents"])
            for ch, x in (value or {}).items():
                if ch.value not in merged or merged[ch.value]["granted"] != x.granted:
                    merged[ch.value] = {"granted": x.granted, "at": x.at or now, "source": x.source}
            value = merged
        after[name] = value
    if after.get("email_confirmed") and not before["email_confirmed"]:
        after["email_confirmed_at"] = now
    if "email" in given and given["email"] != before["email"] and "email_confirmed" not in given:
        after["email_confirmed"], after["email_confirmed_at"] = False, None  # a new address is unconfirmed
    return given, after, history.diff(before, after)


def _new_external_id(given: dict[str, Any], before: dict[str, Any]) -> str | None:
    ext = given.get("external_id")
    return ext if ext and ext != before["external_id"] else None


def _change_rows(cid: int, site_id: int, before: dict[str, Any], after: dict[str, Any],
                 changes: list[tuple[str, Any, Any]], ctx: ChangeContext,
                 now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """History rows and events (consent changes, customer_changed, email_confirmed) of one edit."""
    events = [_consent_event(cid, site_id, ch, x["granted"], x["source"], ctx, now)
              for field, old, new in changes if field == "consents"
              for ch, x in new.items() if old.get(ch) != x and (old.get(ch) or {}).get("granted") != x["granted"]]
    hist = [history.entry(entity=ENTITY, entity_id=cid, site_id=site_id, ctx=ctx, now=now,
                          field=f, old=o, new=n) for f, o, n in changes]
    events.append(bus.event_row(ev.CUSTOMER_CHANGED, ctx=ctx, now=now, site_id=site_id, customer_id=cid,
                                payload={"changes": [{"field": f, "old": o, "new": n} for f, o, n in changes]}))
    if after["email_confirmed"] and not before["email_confirmed"]:
        events.append(bus.event_row(ev.EMAIL_CONFIRMED, ctx=ctx, now=now, site_id=site_id, customer_id=cid,
                                    payload={"email": after["email"]}))
    return hist, events


EditFn = Callable[[dict[str, Any]], "CustomerEdit | None"]
_CUSTOMER = Customer.__table__
_NOT_LOOKED_UP = object()


def edit_many(session: Session, *, edits: Sequence[tuple[int, CustomerEdit | EditFn, ChangeContext]],
              now: datetime) -> list[list[tuple[str, Any, Any]]]:
    """`edit` for many (customer id, data, ctx), with the same rows, history and events as calling `edit` for
    each in list order (edits of one customer apply one after the other), in a few statements. `data` may be a
    function of the customer's current snapshot (as the earlier edits of the list left it) returning the
    CustomerEdit, or None for no edit. Returns each edit's changes. Raises the DomainError of the first edit that
    cannot be done (unknown customer or manager, a taken externalId) before writing anything."""
    if not edits:
        return []
    session.flush()
    state = snapshots(session, (cid for cid, _, _ in edits))
    for cid, _, _ in edits:
        if cid not in state:
            raise NotFound("id", f"customer {cid} not found")
    original = dict(state)  # edits replace a customer's snapshot, never change it in place
    touched: dict[int, set[str]] = defaultdict(set)  # fields each customer's edits changed
    managers: set[int] | None = None
    owners: dict[tuple[int, str], Any] = {}  # (site id, externalId) -> customer id or None, as the batch goes
    out, hist, events = [], [], []
    for cid, data, ctx in edits:
        before = state[cid]
        if callable(data) and (data := data(before)) is None:
            out.append([])
            continue
        if data.manager_id is not None:
            managers = manager_ids(session) if managers is None else managers
            if data.manager_id not in managers:
                raise NotFound("manager_id", f"unknown manager {data.manager_id}")
        given, after, changes = _edited(before, data, now)
        out.append(changes)
        if not changes:
            continue
        site_id = before["site_id"]
        if (ext := _new_external_id(given, before)) is not None:
            if (owner := owners.get((site_id, ext), _NOT_LOOKED_UP)) is _NOT_LOOKED_UP:
                found = find(session, site_id=site_id, external_id=ext)
                owner = found.id if found is not None else None
            if owner is not None:
                raise Conflict("external_id", f"customer with externalId {ext!r} already exists")
            owners[(site_id, ext)] = cid
            if before["external_id"]:
                owners[(site_id, before["external_id"])] = None
        h, e = _change_rows(cid, site_id, before, after, changes, ctx, now)
        hist += h
        events += e
        state[cid] = after
        touched[cid].update(c[0] for c in changes)
    _store(session, original, state, touched, now)
    history.write(session, hist)
    bus.record(session, events)
    return out


_LABELS = {"tags": (CustomerTag, "tag"), "interests": (CustomerInterest, "interest")}
LABELLED = {"tags", "interests", "consents"}  # the fields `customers.labels` summarises


def _by_ids(*columns: Any, key: Any) -> Select[Any]:
    """A read of many customers' rows, built once (`ids`: an expanding parameter)."""
    return select(*columns).where(key.in_(bindparam("ids", expanding=True)))


_READ_MANAGERS = _by_ids(_CUSTOMER.c.id, _CUSTOMER.c.manager_id, key=_CUSTOMER.c.id)


def _store(session: Session, original: dict[int, dict[str, Any]], state: dict[int, dict[str, Any]],
           touched: dict[int, set[str]], now: datetime) -> None:
    """Write the fields the edits changed (`touched`) with their last values: one UPDATE per set of columns,
    labels and consents replaced; their ORM objects in the session are expired."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    replaced: dict[str, dict[int, list[str]]] = {"tags": {}, "interests": {}}
    consents: dict[tuple[int, str], dict[str, Any]] = {}
    changed = list(touched)
    for cid in changed:
        before, after = original[cid], state[cid]
        values = {}
        for k in sorted(touched[cid]):
            v = after[k]
            if k in replaced:
                replaced[k][cid] = v
            elif k == "consents":
                consents.update(((cid, ch), x) for ch, x in v.items() if before[k].get(ch) != x)
            else:
                values[k] = v
        if touched[cid] & LABELLED:  # the labels column from the label rows as written below (`labels.refresh`)
            values["labels"] = labels.of(after["tags"], after["interests"], after["consents"])
        values["updated_at"] = now
        groups[tuple(values)].append({"id": cid, **values})
    for rows in groups.values():  # by id: concurrent writers lock rows in the same order
        update_rows(session, _CUSTOMER, sorted(rows, key=itemgetter("id")))
    for field, new in replaced.items():
        model, column = _LABELS[field]
        t = model.__table__
        if new:
            session.execute(delete(t).where(one_of(session, t.c.customer_id, new)))
        insert_rows(session, t, [{"customer_id": cid, column: v} for cid, values in new.items() for v in values])
    if consents:
        t = Consent.__table__
        session.execute(delete(t).where(t.c.customer_id == bindparam("c"), t.c.channel == bindparam("ch")),
                        [{"c": cid, "ch": ch} for cid, ch in consents])
        session.execute(insert(t), [{"customer_id": cid, "channel": ch, **x} for (cid, ch), x in consents.items()])
    keys = [identity_key(Customer, cid) for cid in changed] + [identity_key(Consent, k) for k in consents]
    for obj in filter(None, map(session.identity_map.get, keys)):
        session.expire(obj)


def _replace_labels(session: Session, customer_id: int, field: str, values: list[str]) -> None:
    model, column = (CustomerTag, "tag") if field == "tags" else (CustomerInterest, "interest")
    session.execute(delete(model).where(model.customer_id == customer_id))
    if values:
        session.execute(insert(model), [{"customer_id": customer_id, column: v} for v in values])


def upsert(session: Session, *, data: CustomerCreate, ctx: ChangeContext, now: datetime) -> tuple[Customer, bool]:
    """Create, or update the customer with the same externalId on the same site. Returns (customer, created)."""
    (outcome,) = upsert_many(session, items=[data], ctx=ctx, now=now)
    if isinstance(outcome, DomainError):
        raise outcome
    return get(session, outcome.id), outcome.done is Done.CREATED


def upsert_many(session: Session, *, items: Sequence[CustomerCreate], ctx: ChangeContext,
                now: datetime) -> list[Outcome]:
    """Create customers, or update those whose externalId their site has (imports and the batch routes), one
    outcome per item in order: `Stored` (created, updated or unchanged, with the id) or the DomainError that
    refused the item (nothing of it is stored; the other items are). An update changes the fields the item
    gives, as `edit`. An item without externalId is created; a later item with the externalId of an earlier one
    updates what that one stored. Set-based: `create_many` and `edit_many` over the batch (item by item only
    after one fails). A site the session may not use raises its 403 for the whole batch."""
    out: list[Outcome] = []
    for chunk in batch.without_repeats(items, lambda d: (d.site, d.external_id) if d.external_id else None):
        out += _upsert_chunk(session, [items[n] for n in chunk], ctx, now)
    return out


def _upsert_chunk(session: Session, items: list[CustomerCreate], ctx: ChangeContext, now: datetime) -> list[Outcome]:
    sites, unknown = {}, {}
    for code in dict.fromkeys(d.site for d in items):
        try:
            sites[code] = get_site(session, code)
        except NotFound as exc:  # (another site's: a 403, raised)
            unknown[code] = exc
    refused = {n: unknown[d.site] for n, d in enumerate(items) if d.site in unknown}
    keys = {n: (sites[d.site].id, d.external_id) for n, d in enumerate(items) if n not in refused and d.external_id}
    existing = batch.ids_by_external(session, Customer, set(keys.values()))
    old = [n for n, k in keys.items() if k in existing]
    new = [n for n in range(len(items)) if n not in refused and n not in set(old)]

    def create(chunk: list[CustomerCreate]) -> list[Outcome]:
        return [Stored(Done.CREATED, c.id) for c in create_many(session, items=chunk, ctx=ctx, now=now)]

    def update(chunk: list[tuple[int, CustomerCreate]]) -> list[Outcome]:
        changes = edit_many(session, edits=[(cid, d, ctx) for cid, d in chunk], now=now)
        return [Stored(Done.UPDATED if c else Done.UNCHANGED, cid) for (cid, _), c in zip(chunk, changes, strict=True)]

    return batch.merge(len(items), [
        (list(refused), list(refused.values())),
        (new, batch.together_or_each(session, [items[n] for n in new], create)),
        (old, batch.together_or_each(session, [(existing[keys[n]], items[n]) for n in old], update)),
    ])


class CustomerRef(Protocol):
    """Enough of a customer to address it: a loaded `Customer` or a row of (id, site_id)."""

    id: int
    site_id: int


def emit_custom_event(
    session: Session,
    *,
    customer: CustomerRef,
    name: str,
    payload: dict[str, Any],
    ctx: ChangeContext,
    now: datetime,
    idempotency_key: str | None = None,
) -> bool:
    """Record a shop's own event (e.g. `cart_abandoned`). False if the idempotency key was seen before."""
    if idempotency_key and session.scalar(select(bus.Event.id).where(bus.Event.idempotency_key == idempotency_key)):
        return False
    bus.record(session, [bus.event_row(ev.CUSTOM, ctx=ctx, now=now, name=name, site_id=customer.site_id,
                                       customer_id=customer.id, payload=payload, idempotency_key=idempotency_key)])
    return True


def contact_sheets(session: Session, *, customer_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Contacts, locale, time zone and current per-channel consent of many customers in two queries
    (what messaging needs to decide who can be reached where)."""
    cols = (Customer.id, Customer.site_id, Customer.first_name, Customer.last_name, Customer.patronymic,
            Customer.email, Customer.phone, Customer.telegram_id, Customer.whatsapp_id, Customer.vk_id,
            Customer.timezone, Customer.locale, Customer.birthday, Customer.custom_fields, Customer.external_id)
    out: dict[int, dict[str, Any]] = {}
    ids = list(customer_ids)
    for i in range(0, len(ids), 10000):
        chunk = ids[i:i + 10000]
        for row in session.execute(select(*cols).where(Customer.id.in_(chunk))):
            out[row.id] = {**row._asdict(), "consents": {}}
        for cid, channel, granted in session.execute(
                select(Consent.customer_id, Consent.channel, Consent.granted).where(Consent.customer_id.in_(chunk))):
            out[cid]["consents"][channel] = granted
    return out


def contacts_select(ids: Any, *, channels: Sequence[str]) -> Select:
    """The set-based twin of `contact_sheets`, to use inside another statement: each row of `ids` (a subquery
    with a `customer_id` column) with `found` (the customer id, NULL if there is no such customer), the contact
    columns, time zone, locale and `consent_<channel>` (granted, or NULL without a record) for each channel."""
    c = Customer.__table__
    cols = [*ids.c, c.c.id.label("found"), c.c.email, c.c.phone, c.c.whatsapp_id, c.c.telegram_id,
            c.c.vk_id, c.c.timezone, c.c.locale]
    source = ids.outerjoin(c, c.c.id == ids.c.customer_id)
    for ch in dict.fromkeys(channels):
        k = Consent.__table__.alias(f"consent_{ch}")
        source = source.outerjoin(k, and_(k.c.customer_id == ids.c.customer_id, k.c.channel == ch))
        cols.append(k.c.granted.label(f"consent_{ch}"))
    return select(*cols).select_from(source)


def site_of(session: Session, *, customer_ids: Sequence[int]) -> dict[int, int]:
    """customer id -> site id for the ids that exist."""
    out: dict[int, int] = {}
    ids = list(customer_ids)
    for i in range(0, len(ids), 10000):
        out.update(session.execute(select(Customer.id, Customer.site_id)
                                   .where(Customer.id.in_(ids[i:i + 10000]))).all())
    return out


def managers_of(session: Session, customer_ids: Sequence[int]) -> dict[int, int | None]:
    """customer id -> its manager id, for the ids that exist (900 ids a query)."""
    ids, out = list(customer_ids), {}
    for i in range(0, len(ids), 900):
        out.update(session.execute(_READ_MANAGERS, {"ids": ids[i:i + 900]}).all())
    return out


def emit_custom_events(session: Session, *, items: Sequence[tuple[int, str, dict[str, Any], ChangeContext, str | None]],
                       now: datetime) -> list[bool]:
    """`emit_custom_event` for many (customer id, name, payload, ctx, idempotency key), as if one by one in list
    order (a key seen before, or earlier in the list, records nothing: False), in a few statements. Raises
    NotFound for an unknown customer before recording anything."""
    sites = site_of(session, customer_ids=list(dict.fromkeys(i[0] for i in items)))
    for cid, *_ in items:
        if cid not in sites:
            raise NotFound("id", f"customer {cid} not found")
    keys = sorted({k for *_, k in items if k})
    t = bus.Event.__table__
    seen = {k for i in range(0, len(keys), 900)
            for k in session.scalars(select(t.c.idempotency_key).where(t.c.idempotency_key.in_(keys[i:i + 900])))}
    out, rows = [], []
    for cid, name, payload, ctx, key in items:
        if key and key in seen:
            out.append(False)
            continue
        if key:
            seen.add(key)
        rows.append(bus.event_row(ev.CUSTOM, ctx=ctx, now=now, name=name, site_id=sites[cid], customer_id=cid,
                                  payload=payload, idempotency_key=key))
        out.append(True)
    bus.record(session, rows)
    return out
