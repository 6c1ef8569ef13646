"""The engine copies a bus batch's rows into EventRows once: the same fields whatever the row's shape."""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import create_engine, text

from retento.triggers.data import EventRow, as_event_rows

VALUES = {"id": 7, "type": "order_changed", "name": None, "occurred_at": "2026-03-02 09:00:00", "site_id": 1,
          "customer_id": 3, "order_id": 4, "payload": '{"changes": []}', "source": "api", "actor_type": "system",
          "actor_id": None, "depth": 0}


def test_rows_of_any_column_order_and_objects_give_the_same_event_rows():
    engine = create_engine("sqlite://")
    names = list(VALUES)
    with engine.connect() as conn:
        def row(order):
            cols = ", ".join(f":{n} AS {n}" for n in order)
            return conn.execute(text(f"SELECT {cols}, 'k' AS idempotency_key"), VALUES).one()

        rows = [row(names), row(list(reversed(names)))]
    objects = [SimpleNamespace(**VALUES, idempotency_key="k")]
    got = as_event_rows(rows + objects)
    assert got == [EventRow(**VALUES)] * 3
    assert got[0].order_id == 4 and got[1].payload == VALUES["payload"]
