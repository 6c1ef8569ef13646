"""Storing a batch with one outcome per item: what imports and the batch upsert routes share.

A batch is written set-based, all items in one savepoint; if that fails (one bad item), each item is written in
a savepoint of its own with the same set-based function, so a bad item leaves nothing behind and the others are
kept. Each item ends as `Stored` (created, updated or unchanged, with its id) or as the DomainError that refused
it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import select, tuple_
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from retento.core.errors import DomainError, NotFound
from retento.sites.service import get_site

T = TypeVar("T")


class Done(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Stored:
    done: Done
    id: int


Outcome = Stored | DomainError


def db_error(exc: Exception) -> DomainError:
    text = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    return DomainError.one("record", f"the database refused it: {text}")


def together_or_each(session: Session, items: Sequence[T], fn: Callable[[list[T]], list[Outcome]]) -> list[Outcome]:
    """`fn(items)` in one savepoint; if that fails, `fn([item])` for each in its own, so only the bad ones drop."""
    if not items:
        return []
    try:
        with session.begin_nested():
            return fn(list(items))
    except (DomainError, IntegrityError, DataError):
        return each(session, items, fn)


def each(session: Session, items: Sequence[T], fn: Callable[[list[T]], list[Outcome]]) -> list[Outcome]:
    """One savepoint per item: a failing item leaves nothing behind, the others are kept."""
    out: list[Outcome] = []
    for item in items:
        try:
            with session.begin_nested():
                out += fn([item])
        except DomainError as exc:
            out.append(exc)
        except (IntegrityError, DataError) as exc:
            out.append(db_error(exc))
    return out


def merge(size: int, parts: Sequence[tuple[Sequence[int], Sequence[Outcome]]]) -> list[Outcome]:
    """The outcomes of parts of a batch ([(positions, outcomes)]) back in the batch's order."""
    out: list[Outcome | None] = [None] * size
    for positions, outcomes in parts:
        for n, outcome in zip(positions, outcomes, strict=True):
            out[n] = outcome
    return out  # type: ignore[return-value]


def without_repeats(items: Sequence[T], key: Callable[[T], Hashable | None]) -> Iterator[list[int]]:
    """Positions of the items in runs where no key repeats (None never repeats): split where one does, so that a
    later item with the same key (an externalId) updates what the earlier one stored."""
    chunk: list[int] = []
    seen: set[Hashable] = set()
    for n, item in enumerate(items):
        k = key(item)
        if k is not None and k in seen:
            yield chunk
            chunk, seen = [], set()
        if k is not None:
            seen.add(k)
        chunk.append(n)
    if chunk:
        yield chunk


def upsert_items(session: Session, raws: Sequence[Any], *, parse: Callable[[Session, Any], Any],
                 store: Callable[..., list[Outcome]], field: Callable[[int, str], str], ctx: Any,
                 now: Any) -> list[Outcome]:
    """The batch routes' work (`/api/v1/customers/batch`, v5 `customers/upload`, ...): `parse(session, raw)`
    each item (a DomainError refuses that item alone), then `store` (a domain's `upsert_many`) the parsed ones;
    one outcome per raw item, in order. A site the session may not use is a 403 for the whole batch, naming the
    first item with it (`field(n, "site")`): nothing is stored."""
    out: list[Outcome | None] = [None] * len(raws)
    parsed: list[tuple[int, Any]] = []
    for n, raw in enumerate(raws):
        try:
            parsed.append((n, parse(session, raw)))
        except DomainError as exc:
            if exc.status == 403:  # a site (or another object) the key may not use: the whole batch
                raise
            out[n] = exc
    for code, n in {d.site: n for n, d in reversed(parsed)}.items():
        try:
            get_site(session, code, field=field(n, "site"))
        except NotFound:
            pass  # the item is refused by `store`
    for (n, _), outcome in zip(parsed, store(session, items=[d for _, d in parsed], ctx=ctx, now=now), strict=True):
        out[n] = outcome
    return out  # type: ignore[return-value]


def ids_by_external(session: Session, model: Any, pairs: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """(site id, externalId) -> id of the `model` rows (customers, orders) that exist, 500 pairs a query (an ORM
    query: a site-limited session finds only its sites' rows)."""
    out: dict[tuple[int, str], int] = {}
    ordered = sorted(pairs)
    for i in range(0, len(ordered), 500):
        q = select(model.site_id, model.external_id, model.id).where(
            tuple_(model.site_id, model.external_id).in_(ordered[i:i + 500]))
        out.update({(site_id, ext): row_id for site_id, ext, row_id in session.execute(q)})
    return out
