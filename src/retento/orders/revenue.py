"""Revenue per site, 15-minute UTC slot and currency, kept for the dashboard's chart (12 months of orders summed on
every page view took seconds at 10,000,000 orders).

Every time zone's offset is a whole number of quarter hours, so a month in any zone starts on a slot boundary and a
month's revenue is a sum of slots. `order_revenue_rollup.through_slot` (W) splits time in two: slots before W are
stored in `order_revenue_buckets`, orders created from W on are read live. The worker moves W up to the current slot
(`advance`, a month of slots per statement when catching up), and the `orders.revenue` subscriber recomputes the
stored slot of every order created, changed or cancelled before W (`apply_orders`: a slot is recomputed from its
orders, so applying an event twice changes nothing). Both take the rollup row's lock, so an event is either applied
after W passed its order or its change is already visible to the statement that stored the slot.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from retento.core.db.types import UTCDateTime
from retento.core.sql import unindexed
from retento.orders import queries
from retento.orders.models import Order, RevenueBucket, RevenueRollup, Status

SLOT = timedelta(minutes=15)
SLOT_SECONDS = 900
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CATCH_UP_SLOTS = 31 * 24 * 4  # slots stored per statement when W is far behind (a month)
CHUNK = 200  # slots recomputed per statement
CENT = Decimal("0.01")
B = RevenueBucket.__table__
O = Order.__table__  # noqa: E741


def slot_of(at: datetime) -> int:
    return (at - EPOCH) // SLOT


def start_of(slot: int) -> datetime:
    return EPOCH + slot * SLOT


def slot_sql(column: Any, dialect: str) -> ColumnElement[int]:
    """The slot of a UTC time column, floored (times before 1970 too)."""
    if dialect == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / SLOT_SECONDS), BigInteger)
    seconds = cast(func.strftime("%s", column), BigInteger)
    return (seconds - ((seconds % SLOT_SECONDS) + SLOT_SECONDS) % SLOT_SECONDS) / SLOT_SECONDS


def _not_cancelled() -> ColumnElement[bool]:
    st = Status.__table__
    return O.c.status.not_in(select(st.c.code).where(st.c.group_code == "cancel"))


def _insert(session: Session) -> Any:
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(
        RevenueRollup.__table__)


def lock(session: Session) -> RevenueRollup:
    """The rollup row, locked until the transaction ends (made when missing)."""
    session.execute(_insert(session).values(id=1, through_slot=None).on_conflict_do_nothing(index_elements=["id"]))
    row = session.get(RevenueRollup, 1, with_for_update=True, populate_existing=True)
    assert row is not None
    return row


def through(session: Session) -> int | None:
    """W: slots before it are stored; None when nothing is stored yet."""
    return session.scalar(select(RevenueRollup.through_slot).where(RevenueRollup.id == 1))


def _store(session: Session, where: ColumnElement[bool]) -> None:
    """Insert the buckets of the orders matching `where` (their slots' rows must be gone)."""
    slot = slot_sql(O.c.created_at, session.get_bind().dialect.name).label("slot")
    rows = (select(O.c.site_id, slot, O.c.currency, func.count(), func.sum(O.c.total))
            .where(where, _not_cancelled()).group_by(O.c.site_id, slot, O.c.currency))
    session.execute(insert(B).from_select(["site_id", "slot", "currency", "orders", "total"], rows))


def advance(session: Session, *, now: datetime, limit: int = CATCH_UP_SLOTS) -> int:
    """Store the slots from W up to the current one (at most `limit`; the current slot stays live); returns how many
    slots W moved."""
    state = lock(session)
    target = slot_of(now)
    start = state.through_slot
    if start is None:
        first = session.scalar(select(func.min(O.c.created_at)))
        start = min(slot_of(first), target) if first is not None else target
    end = min(target, start + limit)
    if end <= start and state.through_slot is not None:
        return 0
    session.execute(delete(B).where(B.c.slot >= start, B.c.slot < end))
    if end > start:
        _store(session, and_(O.c.created_at >= start_of(start), O.c.created_at < start_of(end)))
    state.through_slot, state.updated_at = end, now
    return end - start


def apply_orders(session: Session, order_ids: Sequence[int]) -> int:
    """Recompute the stored slots of these orders (those created before W); returns how many slots."""
    if not order_ids:
        return 0
    w = lock(session).through_slot
    if w is None:
        return 0
    slots: set[tuple[int, int]] = set()
    ids = sorted(set(order_ids))
    for i in range(0, len(ids), 900):
        q = select(O.c.site_id, O.c.created_at).where(O.c.id.in_(ids[i:i + 900]), O.c.created_at < start_of(w))
        slots.update((site_id, slot_of(at)) for site_id, at in session.execute(q))
    pairs = sorted(slots)
    for i in range(0, len(pairs), CHUNK):
        chunk = pairs[i:i + CHUNK]
        session.execute(delete(B).where(tuple_(B.c.site_id, B.c.slot).in_(chunk)))
        session.execute(_STORE_SLOT, [{"site": site_id, "slot": slot, "lo": start_of(slot), "hi": start_of(slot + 1)}
                                      for site_id, slot in chunk])
    return len(pairs)


# One slot's buckets from its orders, run once per slot (executemany): each reads its 15 minutes of orders through
# the `created_at` index (not the site's: without statistics SQLite would read all of the site's orders). One
# statement with an OR of the chunk's ranges was planned by SQLite as a scan of every order (it guesses that a range
# keeps 1/64 of a table, so 200 ranges keep more than all): 1.3 s per 200 slots at 100,000 orders, 43 % of the
# worker's time in the bench's firing of delayed runs; 0.02 s this way.
_STORE_SLOT = insert(B).from_select(["site_id", "slot", "currency", "orders", "total"], select(
    bindparam("site", type_=Integer), bindparam("slot", type_=BigInteger), O.c.currency, func.count(),
    func.sum(O.c.total)).where(
        unindexed(O.c.site_id) == bindparam("site"), O.c.created_at >= bindparam("lo", type_=UTCDateTime()),
        O.c.created_at < bindparam("hi", type_=UTCDateTime()), _not_cancelled()).group_by(O.c.currency))


def rebuild(session: Session, *, now: datetime) -> int:
    """Forget every stored slot and store them again from the orders (after orders were written without events)."""
    lock(session).through_slot = None
    session.execute(delete(B))
    session.flush()
    done = 0
    while (n := advance(session, now=now, limit=10**9)) > 0:
        done += n
    return done


def totals_by_period(session: Session, *, bounds: Sequence[datetime],
                     site_ids: Sequence[int] | None = None) -> list[tuple[int, str, int, Decimal]]:
    """What `orders.queries.totals_by_period` answers, from the stored slots before W and the orders from W on.
    Bounds off a slot boundary (or nothing stored yet) are answered from the orders alone."""
    if len(bounds) < 2:
        return []
    w = through(session)
    if w is None or any((b - EPOCH) % SLOT for b in bounds):
        return queries.totals_by_period(session, bounds=bounds, site_ids=site_ids)
    live_from = start_of(w)
    out: dict[tuple[int, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    slots = [slot_of(b) for b in bounds]
    if slots[0] < w:
        period = case(*((B.c.slot < s, i) for i, s in enumerate(slots[1:])))
        q = (select(period, B.c.currency, func.sum(B.c.orders), func.sum(B.c.total))
             .where(B.c.slot >= slots[0], B.c.slot < min(w, slots[-1])).group_by(period, B.c.currency))
        if site_ids is not None:
            q = q.where(B.c.site_id.in_(site_ids))
        for p, cur, n, total in session.execute(q):
            row = out[(int(p), cur)]
            row[0] += int(n)
            row[1] += Decimal(total)
    if live_from < bounds[-1]:
        clipped = [max(b, live_from) for b in bounds]
        for p, cur, n, total in queries.totals_by_period(session, bounds=clipped, site_ids=site_ids):
            row = out[(p, cur)]
            row[0] += n
            row[1] += total
    return [(p, cur, n, Decimal(total).quantize(CENT)) for (p, cur), (n, total) in sorted(out.items()) if n]
