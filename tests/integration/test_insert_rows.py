"""The fast bulk insert stores exactly what a SQLAlchemy Core insert stores, on both databases."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import insert

from retento.core.bus import Event
from retento.core.db.bulk import insert_rows, reserve_ids
from retento.core.db.transactions import transaction
from retento.core.jsonable import serialised
from retento.history.models import HistoryEntry
from retento.orders.models import Order
from tests import factories as f

MSK = timezone(timedelta(hours=3))


def stored(app, table, ids):
    cols = ", ".join(c.name for c in table.columns if c.name != "id")
    with app.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.exec_driver_sql(
                f"SELECT {cols} FROM {table.name} WHERE id IN ({', '.join(map(str, ids))}) ORDER BY id"
            )
        ]


def test_insert_rows_matches_core_insert(app):
    f.site(app)
    at = datetime(2026, 3, 2, 12, 30, 15, 250000, tzinfo=MSK)
    payload = {"total": Decimal("10.50"), "at": at, "tags": {"b"}, "nested": serialised({"x": [1, None]})}
    rows = {
        HistoryEntry.__table__: dict(
            created_at=at,
            entity="order",
            entity_id=1,
            site_id=1,
            created=True,
            deleted=False,
            source="api",
            actor_type="api_key",
            actor_id="k",
            field="status",
            old_value=None,
            new_value=serialised(payload),
        ),
        Event.__table__: dict(
            type="custom",
            name="n",
            occurred_at=at,
            site_id=1,
            customer_id=None,
            order_id=None,
            payload=serialised(payload),
            source="api",
            actor_type="api_key",
            actor_id=None,
            depth=0,
            idempotency_key=None,
        ),
        Order.__table__: dict(
            site_id=1,
            external_id="e",
            number="n",
            customer_id=None,
            status="new",
            status_updated_at=at,
            currency="RUB",
            items_total=Decimal("10.5"),
            discount_total=Decimal(0),
            delivery_cost=Decimal("0.333"),
            total=Decimal("10.83"),
            paid_amount=Decimal(0),
            payment_type=None,
            payment_status=None,
            delivery_type=None,
            delivery_date=at.date(),
            delivery_address={"city": "Казань"},
            manager_id=None,
            customer_comment=None,
            manager_comment=None,
            custom_fields={},
            created_at=at,
            updated_at=at,
        ),
    }
    for table, row in rows.items():
        with transaction(app.sessions) as s:
            core_id = s.execute(insert(table).returning(table.c.id), [row]).scalar_one()
            if table is Order.__table__:
                (fast_id,) = reserve_ids(s, table, 1)
                insert_rows(s, table, [{**row, "id": fast_id, "external_id": "e2", "number": "n2"}])
            else:
                insert_rows(s, table, [row])
                fast_id = core_id + 1
        core, fast = stored(app, table, [core_id, fast_id])
        if table is Order.__table__:  # external_id and number are unique per site
            assert fast[1:3] == ("e2", "n2")
            core, fast = core[:1] + core[3:], fast[:1] + fast[3:]
        assert fast == core


def test_orders_created_after_reserved_ids_get_larger_ids(app):
    f.site(app)
    first = f.order(app, number="A-1")
    with transaction(app.sessions) as s:
        ids = reserve_ids(s, Order.__table__, 3)
        for n, oid in enumerate(ids):
            row = {c.name: None for c in Order.__table__.columns}
            row.update(
                id=oid,
                site_id=1,
                number=f"R-{n}",
                status="new",
                currency="RUB",
                items_total=0,
                discount_total=0,
                delivery_cost=0,
                total=0,
                paid_amount=0,
                custom_fields={},
                status_updated_at=app.clock.now(),
                created_at=app.clock.now(),
                updated_at=app.clock.now(),
            )
            insert_rows(s, Order.__table__, [row])
    assert ids == sorted(ids) and len(set(ids)) == 3 and ids[0] > first
    assert f.order(app, number="A-2") > ids[-1]


def test_insert_rows_batches_match_core_insert(app):
    """Many rows take the column-wise conversions (all Decimals, one shared object, JSON in C); a column
    mixing value types falls back to the per-value processor. Either way the database gets what Core sends."""
    f.site(app)
    at = datetime(2026, 3, 2, 12, 30, 15, 250000, tzinfo=MSK)
    base = dict(
        site_id=1, customer_id=None, status="new", status_updated_at=at, currency="RUB",
        items_total=Decimal("10.5"), discount_total=Decimal(0), delivery_cost=Decimal("0.333"),
        total=Decimal("10.83"), paid_amount=Decimal(0), payment_type=None, payment_status=None,
        delivery_type=None, delivery_date=None, delivery_address={"city": "Казань", "at": at}, manager_id=None,
        customer_comment=None, manager_comment=None, custom_fields={"gift": True, "n": 1.5}, tags=["a", "b"],
        created_at=at, updated_at=at,
    )
    batches = {
        "column-wise": [dict(base, total=Decimal(n) / 3, created_at=at + timedelta(seconds=n))
                        for n in range(3)],
        "mixed": [dict(base, items_total=7, delivery_address=None), dict(base, items_total="1.005", tags=[]),
                  base],
    }
    table = Order.__table__
    for label, rows in batches.items():
        with transaction(app.sessions) as s:
            core = [dict(r, external_id=f"{label}-c{n}", number=f"{label}-c{n}") for n, r in enumerate(rows)]
            s.execute(insert(table), core)
            ids = reserve_ids(s, table, len(rows))
            insert_rows(s, table, [dict(r, id=i, external_id=f"{label}-f{n}", number=f"{label}-f{n}")
                                   for n, (i, r) in enumerate(zip(ids, rows, strict=True))])
        got = stored(app, table, [*range(ids[0] - len(rows), ids[0]), *ids])
        without_keys = [r[:1] + r[3:] for r in got]  # external_id and number differ by design
        assert without_keys[len(rows):] == without_keys[: len(rows)], label


def test_update_rows_matches_core_update(app):
    """Both ways of writing the same values to two equal orders store the same (PostgreSQL: one statement over
    jsonb_to_recordset; JSON None stays JSON null, not SQL NULL)."""
    from sqlalchemy import update

    from retento.core.db.bulk import update_rows

    f.site(app)
    a, b = f.order(app, number="A"), f.order(app, number="B")
    at = datetime(2026, 3, 2, 12, 30, 15, 250000, tzinfo=MSK)
    values = {"status": "complete", "status_updated_at": at, "total": Decimal("12.30"), "paid_amount": Decimal("0"),
              "delivery_date": at.date(), "delivery_address": None, "manager_comment": 'it\'s "ok" — да',
              "custom_fields": {"n": Decimal("1.5"), "s": None, "at": at}, "tags": ["b", "a"], "payment_type": None}
    t = Order.__table__
    with transaction(app.sessions) as s:
        s.execute(update(t).where(t.c.id == a).values(values))
        update_rows(s, t, [{"id": b, **values}])
        update_rows(s, t, [])
    cols = [c.name for c in t.columns if c.name not in ("id", "number")]
    with app.engine.connect() as conn:
        got = [tuple(r) for r in conn.exec_driver_sql(
            f"SELECT {', '.join(cols)}, delivery_address IS NULL FROM orders WHERE id IN ({a}, {b}) ORDER BY id")]
    assert got[0] == got[1]
    assert got[0][-1] is False or got[0][-1] == 0  # JSON null, as Core writes None to a JSON column
