"""Migration 0017 fills the category facts and rollups from the orders and the daily sizes from the membership
history, on both databases."""

from __future__ import annotations

from alembic import command
from sqlalchemy import select

from retento.core.db.transactions import transaction
from retento.migrate import alembic_config
from retento.segments import rollups, service
from retento.segments.models import CustomerCategoryRollup, OrderCategoryFact
from retento.segments.schemas import SegmentCreate
from tests import factories as f


def test_upgrade_fills_category_rollups_and_sizes(app):
    f.site(app)
    a, b = f.customer(app), f.customer(app)
    f.order(app, customer={"id": a}, items=[{"name": "x", "price": "10.00", "quantity": 2, "category": "Shoes"},
                                             {"name": "y", "price": "3.00", "quantity": 1, "category": "Bags"}])
    f.order(app, customer={"id": a}, status="cancel-other",
            items=[{"name": "x", "price": "99.00", "quantity": 1, "category": "Shoes"}])
    with transaction(app.sessions) as s:
        seg = service.create(s, data=SegmentCreate(site="shop", code="buyers", name="Buyers", rules={
            "orders": {"metric": "count", "op": "gte", "value": 1}}), now=app.clock.now())
    app.worker.tick()
    app.clock.advance(days=2)
    f.order(app, customer={"id": b}, items=[{"name": "x", "price": "4.00", "quantity": 1, "category": "Shoes"}])
    app.worker.tick()
    with app.engine.connect() as conn:
        cfg = alembic_config(app.engine.url.render_as_string(hide_password=False))
        cfg.attributes["connection"] = conn
        try:
            command.downgrade(cfg, "0016_console_users")
            conn.commit()
            command.upgrade(cfg, "head")
            conn.commit()
        finally:
            command.upgrade(cfg, "head")
            conn.commit()
    with transaction(app.sessions) as s:
        facts = {(r.order_id, r.category): (r.customer_id, float(r.amount)) for r in s.scalars(select(OrderCategoryFact))}
        assert facts == {(1, "Shoes"): (a, 20.0), (1, "Bags"): (a, 3.0), (3, "Shoes"): (b, 4.0)}
        assert {(r.customer_id, r.category, r.orders_count, float(r.amount))
                for r in s.scalars(select(CustomerCategoryRollup))} == {(a, "Shoes", 1, 20.0), (a, "Bags", 1, 3.0),
                                                                        (b, "Shoes", 1, 4.0)}
        assert len(list(s.execute(rollups.facts_select()))) == 3
        assert service.sizes(s, segment=service.get(s, seg.id), today=app.clock.now().date()) == [
            {"date": "2026-03-02", "size": 1}, {"date": "2026-03-03", "size": 1}, {"date": "2026-03-04", "size": 2}]
