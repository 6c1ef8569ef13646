"""Import customers, orders and products from CSV / JSON Lines files through the domain services.

Rows are read in batches (one transaction each) and stored with the services' set-based upserts, the same
write path as the API's batch routes: `customers.service.upsert_many`, `orders.service.upsert_many`,
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
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from retento import batch
from retento.batch import Done, Outcome, Stored
from retento.catalog import service as catalog
from retento.catalog.models import Product
from retento.core.changes import ActorType, ChangeContext, Source
from retento.core.clock import Clock
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError, NotFound
from retento.customers import service as customers
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
from retento.sites.models import Site
from retento.sites.service import sites_by_code

T = TypeVar("T")


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
                    result.counts[outcome.done] += 1
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
    for chunk in batch.without_repeats(parsed, lambda p: _key(kind, p[1])):
        for n, outcome in zip((parsed[i][0] for i in chunk),
                              store(session, [parsed[i][1] for i in chunk], sites=sites, ctx=ctx, now=now),
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


def _store_customers(session: Session, items: list[Any], *, sites: dict[str, Site], ctx: ChangeContext,
                     now: datetime) -> list[Outcome]:
    return customers.upsert_many(session, items=items, ctx=ctx, now=now)


def _store_orders(session: Session, items: list[Any], *, sites: dict[str, Site], ctx: ChangeContext,
                  now: datetime) -> list[Outcome]:
    return orders.upsert_many(session, items=items, ctx=ctx, now=now)


def _store_products(session: Session, items: list[Any], *, sites: dict[str, Site], ctx: ChangeContext,
                    now: datetime) -> list[Outcome]:
    known = [n for n, d in enumerate(items) if d.site in sites]
    unknown = [n for n, d in enumerate(items) if d.site not in sites]
    keys = sorted({(sites[items[n].site].id, items[n].offer_id) for n in known})
    existing = set()
    for i in range(0, len(keys), 400):
        existing.update(session.execute(select(Product.site_id, Product.offer_id).where(
            tuple_(Product.site_id, Product.offer_id).in_(keys[i : i + 400]))).tuples())

    def upsert(chunk: list[Any]) -> list[Outcome]:
        stored = catalog.upsert_many(session, items=chunk, now=now)
        return [Stored(Done.UPDATED if (sites[d.site].id, d.offer_id) in existing else Done.CREATED, p.id)
                for d, p in zip(chunk, stored, strict=True)]

    return batch.merge(len(items), [
        (unknown, [NotFound("site", f"unknown site {items[n].site!r}") for n in unknown]),
        (known, batch.together_or_each(session, [items[n] for n in known], upsert)),
    ])


STORES: dict[Kind, Callable[..., list[Outcome]]] = {
    Kind.CUSTOMERS: _store_customers, Kind.ORDERS: _store_orders, Kind.PRODUCTS: _store_products,
}
