"""The dashboard's revenue from stored 15-minute slots plus the live orders equals the sum over every order, for
month bounds in any time zone, after orders are created, edited, cancelled and imported with past dates."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from retento.console.pages.dashboard import month_bounds
from retento.core.db.transactions import transaction
from retento.orders import queries, revenue
from retento.orders.models import RevenueBucket
from tests import factories as f

ZONES = ("UTC", "Europe/Moscow", "Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham", "Pacific/Kiritimati")


def both(app, site_ids=None):
    """(stored + live, every order) for each zone's last 12 months."""
    out = []
    with transaction(app.sessions) as s:
        for zone in ZONES:
            bounds = month_bounds(app.clock.now(), zone)
            new = revenue.totals_by_period(s, bounds=bounds, site_ids=site_ids)
            old = [(p, cur, n, t.quantize(revenue.CENT))
                   for p, cur, n, t in queries.totals_by_period(s, bounds=bounds, site_ids=site_ids)]
            out.append((zone, new, old))
    return out


def assert_same(app, site_ids=None):
    for zone, new, old in both(app, site_ids):
        assert new == old, zone
        assert old, zone


def stored_slots(app) -> int:
    with transaction(app.sessions) as s:
        return s.scalar(select(func.count()).select_from(RevenueBucket))


def test_stored_slots_and_live_orders_equal_every_order(app):
    f.site(app, "shop")
    f.site(app, "euro", currency="EUR", currencies=["EUR", "USD"])
    rnd = random.Random(7)
    now = app.clock.now()
    ids = []
    for i in range(160):
        at = now - timedelta(days=rnd.uniform(0, 400))
        if i % 8 == 0:  # near a month's start in some zone (UTC 20:00 .. 04:00)
            at = at.replace(day=1, hour=rnd.choice([0, 2, 3, 20, 21, 23]), minute=rnd.choice([0, 14, 15, 44, 45]))
        site = "euro" if i % 3 == 0 else "shop"
        raw = {"site": site, "created_at": at.isoformat(),
               "items": [{"name": "Thing", "price": f"{rnd.randint(100, 99999) / 100:.2f}", "quantity": 1}]}
        if site == "euro" and i % 2:
            raw["currency"] = "USD"
        if i % 11 == 0:
            raw["status"] = "cancel-other"
        ids.append(f.order(app, **raw))

    assert_same(app)  # nothing stored yet: the orders alone
    app.worker.tick()
    assert stored_slots(app) > 0
    assert_same(app)
    with transaction(app.sessions) as s:
        shop = s.scalar(select(RevenueBucket.site_id).order_by(RevenueBucket.site_id).limit(1))
    assert_same(app, site_ids=[shop])

    # old orders cancelled, edited, re-opened; a past order imported: stored slots recomputed from the events
    f.edit_order(app, ids[1], status="cancel-other")
    f.edit_order(app, ids[2], items=[{"name": "More", "price": "1234.56", "quantity": 2}])
    f.edit_order(app, ids[11], status="new")
    f.order(app, site="shop", created_at=(now - timedelta(days=200)).isoformat(),
            items=[{"name": "Old", "price": "77.70", "quantity": 1}])
    app.worker.tick()
    assert_same(app)

    # later: orders of the last two hours are read live until the worker stores their slots
    app.clock.advance(timedelta(hours=2))
    for minutes in (1, 50, 100, 119):
        f.order(app, site="shop", created_at=(app.clock.now() - timedelta(minutes=minutes)).isoformat())
    assert_same(app)
    app.worker.tick()
    assert_same(app)
    with transaction(app.sessions) as s:
        assert revenue.through(s) == revenue.slot_of(app.clock.now())


def test_rebuild_and_bounds_off_a_slot(app):
    f.site(app, "shop")
    now = app.clock.now()
    for days in (1, 40, 100, 300):
        f.order(app, created_at=(now - timedelta(days=days, minutes=7)).isoformat())
    app.worker.tick()
    with transaction(app.sessions) as s:
        assert revenue.rebuild(s, now=app.clock.now()) > 0
    assert_same(app)
    odd = [datetime.fromisoformat("2025-06-01T00:07:00+00:00"), now + timedelta(minutes=3)]
    with transaction(app.sessions) as s:
        assert revenue.totals_by_period(s, bounds=odd) == [
            (p, c, n, t.quantize(revenue.CENT)) for p, c, n, t in queries.totals_by_period(s, bounds=odd)]


def test_a_changed_orders_slot_is_read_by_the_time_index(app):
    """Recomputing the slots of changed orders reads each slot's 15 minutes through `created_at`'s index; an OR of
    the ranges in one statement was planned by SQLite as a scan of every order, per fired batch of delayed runs."""
    if app.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's planner; PostgreSQL plans from its statistics")
    compiled = revenue._STORE_SLOT.compile(app.engine)
    params = compiled.construct_params({"site": 1, "slot": 1, "lo": "2026-01-01", "hi": "2026-01-02"})
    with transaction(app.sessions) as s:
        args = tuple(params[k] for k in compiled.positiontup)
        plan = " ".join(str(row[-1]) for row in s.connection().exec_driver_sql(
            "EXPLAIN QUERY PLAN " + str(compiled), args))
    assert "SEARCH orders USING INDEX ix_orders_created_at (created_at>? AND created_at<?)" in plan, plan
