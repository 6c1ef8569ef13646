"""Import customers, orders and products from CSV / JSON Lines files through the domain services.

Rows are read in batches (one transaction each) and stored with the services' set-based paths:
`customers.service.create_many` / `edit`, `orders.service.prepare` + `write` / `edit`,
`catalog.service.upsert_many`. A row whose externalId (products: offer id) is already stored updates
that record, so importing the same file twice never duplicates anything. A bad row is reported with
its line, field and reason and written unchanged to the rejects file; it never leaves a half-written
record, and the good rows of its batch are stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import select, tuple_
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from retento.catalog import service as catalog
from retento.catalog.models import Product
from retento.clock import Clock
from retento.customers import service as customers
from retento.customers.models import Customer
from retento.db import transaction
from retento.errors import DomainError, NotFound
from retento.history.schemas import ActorType, ChangeContext, Source
from retento.imports.formats import (
    Format,
    InputFile,
    Record,
    Rejects,
    UnusableInput,
    default_rejects_path,
    detect,
)
from retento.imports.schemas import SCHEMAS, Kind, columns_problem, from_csv, normalize_keys, with_site
from retento.orders import service as orders
from retento.orders.models import Order
from retento.sites.models import Site
from retento.sites.service import manager_ids, sites_by_code

T = TypeVar("T")
Outcome = DomainError | str  # "created" | "updated" | "unchanged", or why the row was rejected


class Done(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass
class Result:
    kind: Kind
    path: Path
    total: int
    counts: dict[str, int] = field(default_factory=lambda: {d.value: 0 for d in Done})
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, "field: reason; ...")
    rejects_path: Path | None = None
    errors_path: Path | None = None
    seconds: float = 0.0


def import_file(
    sessions: sessionmaker[Session],
    *,
    clock: Clock,
    kind: Kind,
    path: Path,
    fmt: str | None = None,
    site: str | None = None,
    rejects: Path | None = None,
    batch_size: int = 500,
    on_progress: Callable[[int, int], None] | None = None,
) -> Result:
    """Import one file; raises UnusableInput when the file as a whole cannot be read.

    `on_progress(rows done, rows in the file)` is called before the first batch and after each one.
    """
    source = InputFile(path, detect(path, fmt))
    if source.format is Format.CSV and (problem := columns_problem(kind, source.header)):
        raise UnusableInput(f"{path.name}: {problem}")
    if site:
        with transaction(sessions) as s:
            if site not in sites_by_code(s):
                raise UnusableInput(f"--site: unknown site {site!r}")
    ctx = ChangeContext(Source.IMPORT, ActorType.SYSTEM, path.name[:64])
    result = Result(kind=kind, path=path, total=source.total)
    rejects = rejects or default_rejects_path(path)
    if path.resolve() in (rejects.resolve(), rejects.with_suffix(".errors").resolve()):
        raise UnusableInput("--rejects: must not be the input file (it is overwritten)")
    sink = Rejects(source, rejects)
    started = time.perf_counter()
    done = 0
    if on_progress:
        on_progress(done, source.total)
    try:
        for batch in _batched(source.records(), batch_size):
            with transaction(sessions) as s:
                outcomes = store_batch(s, kind, batch, fmt=source.format, site=site, ctx=ctx, now=clock.now())
            for record, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, DomainError):
                    result.rejected.append((record.line, outcome.message))
                    sink.add(record, outcome.message)
                else:
                    result.counts[outcome] += 1
            done += len(batch)
            if on_progress:
                on_progress(done, source.total)
    finally:
        sink.close()
    result.seconds = time.perf_counter() - started
    if sink.count:
        result.rejects_path, result.errors_path = sink.path, sink.errors_path
    return result


def _batched(records: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(records)
    while batch := list(islice(it, size)):
        yield batch


def store_batch(session: Session, kind: Kind, records: Sequence[Record], *, fmt: Format, site: str | None,
                ctx: ChangeContext, now: datetime) -> list[Outcome]:
    """Validate and store one batch; one outcome per record, in order."""
    sites = sites_by_code(session)
    out: list[Outcome | None] = [None] * len(records)
    parsed: list[tuple[int, BaseModel]] = []
    for n, record in enumerate(records):
        try:
            parsed.append((n, _parse(kind, record, fmt=fmt, site=site, sites=sites)))
        except DomainError as exc:
            out[n] = exc
    store = STORES[kind]
    for chunk in _without_repeats(kind, parsed):
        for (n, _), outcome in zip(chunk, store(session, [m for _, m in chunk], sites=sites, ctx=ctx, now=now),
                                   strict=True):
            out[n] = outcome
    return out  # type: ignore[return-value]


def _parse(kind: Kind, record: Record, *, fmt: Format, site: str | None, sites: dict[str, Site]) -> BaseModel:
    if record.error is not None:
        raise record.error
    assert record.data is not None
    raw = from_csv(kind, record.data) if fmt is Format.CSV else record.data
    model = SCHEMAS[kind]
    raw = normalize_keys(model, with_site(raw, site))
    known = sites.get(raw.get("site")) if isinstance(raw.get("site"), str) else None
    try:
        return model.model_validate(raw, context={"region": known.default_region if known else "RU"})
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc) from None


def _key(kind: Kind, item: Any) -> tuple[str, str] | None:
    value = item.offer_id if kind is Kind.PRODUCTS else item.external_id
    return (item.site, value) if value else None


def _without_repeats(kind: Kind, parsed: list[tuple[int, BaseModel]]) -> Iterator[list[tuple[int, BaseModel]]]:
    """Split where a key repeats, so the second row with an externalId updates what the first one stored."""
    chunk: list[tuple[int, BaseModel]] = []
    seen: set[tuple[str, str]] = set()
    for n, item in parsed:
        key = _key(kind, item)
        if key is not None and key in seen:
            yield chunk
            chunk, seen = [], set()
        if key is not None:
            seen.add(key)
        chunk.append((n, item))
    if chunk:
        yield chunk


def _db_error(exc: Exception) -> DomainError:
    text = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    return DomainError.one("record", f"the database refused it: {text}")


def _together_or_each(session: Session, items: list[T], fn: Callable[[list[T]], list[Outcome]]) -> list[Outcome]:
    """Store all items in one savepoint; if that fails, each in its own so only the bad ones are dropped."""
    if not items:
        return []
    try:
        with session.begin_nested():
            return fn(items)
    except (DomainError, IntegrityError, DataError):
        return _each(session, items, fn)


def _each(session: Session, items: list[T], fn: Callable[[list[T]], list[Outcome]]) -> list[Outcome]:
    """One savepoint per item: a failing item leaves nothing behind, the others are kept."""
    out: list[Outcome] = []
    for item in items:
        try:
            with session.begin_nested():
                out += fn([item])
        except DomainError as exc:
            out.append(exc)
        except (IntegrityError, DataError) as exc:
            out.append(_db_error(exc))
    return out


def _merge(size: int, parts: list[tuple[list[int], list[Outcome]]]) -> list[Outcome]:
    out: list[Outcome | None] = [None] * size
    for indexes, outcomes in parts:
        for n, outcome in zip(indexes, outcomes, strict=True):
            out[n] = outcome
    return out  # type: ignore[return-value]


def _changed(changes: list) -> str:
    return Done.UPDATED if changes else Done.UNCHANGED


def _store_customers(session: Session, items: list[Any], *, sites: dict[str, Site], ctx: ChangeContext,
                     now: datetime) -> list[Outcome]:
    managers = manager_ids(session) if any(d.manager_id for d in items) else set()
    refused: dict[int, Outcome] = {}
    for n, d in enumerate(items):
        if d.site not in sites:
            refused[n] = NotFound("site", f"unknown site {d.site!r}")
        elif d.manager_id is not None and d.manager_id not in managers:
            refused[n] = NotFound("manager_id", f"unknown manager {d.manager_id}")
    ok = [n for n in range(len(items)) if n not in refused]
    keys = {(sites[items[n].site].id, items[n].external_id) for n in ok if items[n].external_id}
    existing = _load(session, Customer, Customer.external_id, keys)
    new = [n for n in ok if (sites[items[n].site].id, items[n].external_id) not in existing]
    old = [n for n in ok if n not in set(new)]

    def create(chunk: list[Any]) -> list[Outcome]:
        return [Done.CREATED] * len(customers.create_many(session, items=chunk, ctx=ctx, now=now))

    def update(chunk: list[Any]) -> list[Outcome]:
        return [_changed(customers.edit(session, customer=existing[(sites[d.site].id, d.external_id)], data=d,
                                        ctx=ctx, now=now)) for d in chunk]

    return _merge(len(items), [
        (list(refused), list(refused.values())),
        (new, _together_or_each(session, [items[n] for n in new], create)),
        (old, _each(session, [items[n] for n in old], update)),
    ])


def _load(session: Session, model: Any, column: Any, keys: set[tuple[int, str]]) -> dict[tuple[int, str], Any]:
    """Stored rows by (site id, external id / offer id)."""
    found: dict[tuple[int, str], Any] = {}
    ordered = sorted(keys)
    for i in range(0, len(ordered), 400):
        chunk = ordered[i : i + 400]
        for row in session.scalars(select(model).where(tuple_(model.site_id, column).in_(chunk))):
            found[(row.site_id, getattr(row, column.key))] = row
    return found


def _store_orders(session: Session, items: list[Any], *, sites: dict[str, Site], ctx: ChangeContext,
                  now: datetime) -> list[Outcome]:
    def key(d: Any) -> tuple[int, str] | None:
        return (sites[d.site].id, d.external_id) if d.site in sites and d.external_id else None

    existing = _load(session, Order, Order.external_id, {k for d in items if (k := key(d))})
    old = [n for n, d in enumerate(items) if key(d) in existing]
    new = [n for n in range(len(items)) if n not in set(old)]
    prepared = orders.prepare(session, [items[n] for n in new], now=now)
    bad = [(n, p) for n, p in zip(new, prepared, strict=True) if isinstance(p, DomainError)]
    good = [(n, p) for n, p in zip(new, prepared, strict=True) if not isinstance(p, DomainError)]

    def create(chunk: list[Any]) -> list[Outcome]:
        return [Done.CREATED] * len(orders.write(session, chunk, ctx=ctx, now=now))

    def update(chunk: list[Any]) -> list[Outcome]:
        return [_changed(orders.edit(session, order=existing[key(d)], data=d, ctx=ctx, now=now)) for d in chunk]

    return _merge(len(items), [
        ([n for n, _ in bad], [p for _, p in bad]),
        ([n for n, _ in good], _together_or_each(session, [p for _, p in good], create)),
        (old, _each(session, [items[n] for n in old], update)),
    ])


def _store_products(session: Session, items: list[Any], *, sites: dict[str, Site], ctx: ChangeContext,
                    now: datetime) -> list[Outcome]:
    known = [n for n, d in enumerate(items) if d.site in sites]
    unknown = [n for n, d in enumerate(items) if d.site not in sites]
    keys = {(sites[items[n].site].id, items[n].offer_id) for n in known}
    existing = _load(session, Product, Product.offer_id, keys)

    def upsert(chunk: list[Any]) -> list[Outcome]:
        catalog.upsert_many(session, items=chunk, now=now)
        return [Done.UPDATED if (sites[d.site].id, d.offer_id) in existing else Done.CREATED for d in chunk]

    return _merge(len(items), [
        (unknown, [NotFound("site", f"unknown site {items[n].site!r}") for n in unknown]),
        (known, _together_or_each(session, [items[n] for n in known], upsert)),
    ])


STORES: dict[Kind, Callable[..., list[Outcome]]] = {
    Kind.CUSTOMERS: _store_customers, Kind.ORDERS: _store_orders, Kind.PRODUCTS: _store_products,
}
