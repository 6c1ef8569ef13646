"""Migration 0036 keeps each customer's gap counts in one row (where 0028 kept a row per customer and gap length):
both are filled from the orders, down and up again, and the incremental path then moves the site's histogram
from the new rows, on both databases."""

from __future__ import annotations

from sqlalchemy import text

from retento.core.db.transactions import transaction
from retento.segments import rollups
from tests import factories as f


def _order(app, customer: int, *, status: str = "complete") -> None:
    f.order(app, customer={"id": customer}, status=status, items=[{"name": "x", "price": "5.00", "quantity": 1}])


def test_gap_rows_survive_down_and_up(app):
    f.site(app)
    a, b, c = f.customer(app), f.customer(app), f.customer(app)
    _order(app, a)
    for days in (0, 3, 3, 4):  # a buys on days 0 (twice), 3, 6 and 10: gaps 3, 3, 4
        app.clock.advance(days=days)
        _order(app, a)
    _order(app, b)
    _order(app, c, status="cancel-other")  # not a purchase: no gaps
    app.worker.tick()
    try:
        f.migrate_to(app, "0035_trigger_timers_entity_key")
        with app.engine.connect() as conn:
            assert sorted(conn.execute(text("SELECT customer_id, gap, n FROM customer_gaps")).all()) == [
                (a, 3, 2), (a, 4, 1)]
        f.migrate_to(app, "head")
    finally:
        f.migrate_to(app, "head")
    with app.engine.connect() as conn:
        rows = conn.execute(text("SELECT customer_id, gaps FROM customer_gaps")).all()
    assert [(r[0], rollups.gap_counts(r[1])) for r in rows] == [(a, {3: 2, 4: 1})]
    app.clock.advance(days=7)
    _order(app, a)  # one more gap of 7 days, read back from the migrated row
    app.worker.tick()
    with transaction(app.sessions) as s:
        site_id = s.execute(text("SELECT site_id FROM customer_gaps")).scalar()
        assert sorted(rollups.gap_histogram(s, site_id=site_id)) == [(3, 2), (4, 1), (7, 1)]
        rollups.refresh(s, site_id=site_id)  # the full rebuild: the histogram summed from the rebuilt rows
        assert sorted(rollups.gap_histogram(s, site_id=site_id)) == [(3, 2), (4, 1), (7, 1)]
