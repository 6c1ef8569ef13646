"""A subscriber split into partitions: every event once, each key's events in order, workers on different
partitions at once (PostgreSQL), and a change of partitioning that loses nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from retento.core import bus as bus_module
from retento.core.bus import Bus, SubscriberCursor
from retento.core.db.transactions import transaction
from tests import factories as f


def _events(app, n_customers: int, per_customer: int) -> None:
    """Custom events of `n_customers` customers, interleaved; no order: the customer is the partition key."""
    cids = [f.customer(app, email=f"c{i}@example.com") for i in range(n_customers)]
    rows = [bus_module.event_row("custom", name="tick", now=app.clock.now(), site_id=1, customer_id=cid,
                                 payload={"n": k}, ctx=f.API)
            for k in range(per_customer) for cid in cids]
    with transaction(app.sessions) as s:
        bus_module.record(s, rows)


def _seen_by(got: list[tuple[int, int, int]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for _, cid, n in got:
        out.setdefault(cid, []).append(n)
    return out


def _subscribe(app, got, name="parts", partitions=3, bus: Bus | None = None) -> Bus:
    b = bus or app.bus
    b.subscribe(name, lambda s, e: got.append((e.id, e.customer_id, e.payload["n"])), types=["custom"],
                partitions=partitions, partition_by=("order_id", "customer_id") if partitions > 1 else ())
    return b


def test_partitions_deliver_each_event_once_and_each_key_in_order(app):
    f.site(app)
    got: list[tuple[int, int, int]] = []
    _subscribe(app, got)
    _events(app, n_customers=7, per_customer=5)
    app.bus._batch = 4  # several batches per partition
    app.bus.dispatch(names=["parts"])
    assert sorted(e for e, *_ in got) == sorted({e for e, *_ in got}) and len(got) == 35
    assert all(ns == [0, 1, 2, 3, 4] for ns in _seen_by(got).values())
    with transaction(app.sessions) as s:
        names = sorted(s.scalars(select(SubscriberCursor.subscriber).where(SubscriberCursor.subscriber.like("parts%"))))
    assert names == ["parts#0", "parts#1", "parts#2"]
    app.bus.dispatch(names=["parts"])
    assert len(got) == 35  # nothing twice


def test_a_new_partitioning_starts_where_the_old_cursor_was(app, clock):
    f.site(app)
    got: list[tuple[int, int, int]] = []
    _subscribe(app, got, partitions=1)
    _events(app, n_customers=3, per_customer=2)
    app.bus.dispatch(names=["parts"])
    assert len(got) == 6
    _events(app, n_customers=2, per_customer=2)
    again: list[tuple[int, int, int]] = []
    # as another process would: its own bus, with the same settings
    other = _subscribe(app, again, partitions=2, bus=Bus(app.sessions, clock, batch=app.settings.event_batch_size,
                                                             max_attempts=app.settings.event_max_attempts))
    other.dispatch(names=["parts"])
    assert sorted(n for *_, n in again) == [0, 0, 1, 1] and {e for e, *_ in again}.isdisjoint({e for e, *_ in got})
    with transaction(app.sessions) as s:
        names = sorted(s.scalars(select(SubscriberCursor.subscriber).where(SubscriberCursor.subscriber.like("parts%"))))
    assert names == ["parts#0", "parts#1"]


def test_a_worker_takes_a_partition_no_other_worker_holds(app):
    """While one transaction holds a partition's cursor (a worker mid-batch), another worker's dispatch handles
    the other partitions and leaves that one alone."""
    if app.engine.dialect.name != "postgresql":
        pytest.skip("concurrent workers: PostgreSQL (SQLite runs one worker)")
    f.site(app)
    got: list[tuple[int, int, int]] = []
    _subscribe(app, got, partitions=2)
    _events(app, n_customers=4, per_customer=3)
    app.bus._ensure_cursor(app.bus._subs["parts"])
    holder = app.sessions()
    try:
        held = holder.scalars(select(SubscriberCursor).where(SubscriberCursor.subscriber == "parts#0")
                              .with_for_update()).one()
        app.bus.dispatch(names=["parts"])  # does not wait for the held partition
        assert got and {cid % 2 for _, cid, _ in got} == {1}
        assert held.position == 0
    finally:
        holder.rollback()
        holder.close()
    app.bus.dispatch(names=["parts"])
    assert len(got) == 12 and all(ns == [0, 1, 2] for ns in _seen_by(got).values())
