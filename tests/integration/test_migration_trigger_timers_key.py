"""Migration 0035 stores the delayed runs' key entity first (and drops the separate entity index): the runs stay as
they were, the key still refuses a second run of a trigger for the same entity and event, down and up again, on
both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, inspect, select
from sqlalchemy.exc import IntegrityError

from retento.triggers.models import Timer, Trigger
from tests import factories as f


def _indexes(app) -> set[str]:
    found = inspect(app.engine)
    return ({i["name"] for i in found.get_indexes("trigger_timers")}
            | {c["name"] for c in found.get_unique_constraints("trigger_timers")})


def test_the_runs_survive_and_their_key_holds(app):
    now = app.clock.now()
    with app.engine.begin() as conn:
        trigger_id = conn.execute(insert(Trigger).values(name="t", active=True, definition={}, version=1,
                                                         created_at=now, updated_at=now).returning(Trigger.id)).scalar()
    run = dict(trigger_id=trigger_id, entity="order", customer_id=None, order_id=7, state="pending", reason=None,
               due_at=now + timedelta(hours=1), created_at=now, finished_at=None)
    rows = [{**run, "entity_id": 7, "event_id": 1}, {**run, "entity_id": 7, "event_id": 2},
            {**run, "entity": "customer", "entity_id": 9, "event_id": 1, "state": "done"}]
    try:
        f.migrate_to(app, "0034_orders_customer_covering")
        assert "ix_trigger_timers_entity" in _indexes(app)
        with app.engine.begin() as conn:
            conn.execute(insert(Timer), rows)
        f.migrate_to(app, "head")
    finally:
        f.migrate_to(app, "head")
    assert {"uq_trigger_timers_entity_entity_id_trigger_id_event_id", "ix_trigger_timers_trigger",
            "ix_trigger_timers_due"} <= _indexes(app)
    assert "ix_trigger_timers_entity" not in _indexes(app)
    cols = (Timer.trigger_id, Timer.entity, Timer.entity_id, Timer.event_id, Timer.state)
    with app.engine.connect() as conn:
        assert sorted(conn.execute(select(*cols)).all()) == sorted(
            (r["trigger_id"], r["entity"], r["entity_id"], r["event_id"], r["state"]) for r in rows)
    with pytest.raises(IntegrityError), app.engine.begin() as conn:
        conn.execute(insert(Timer), [rows[0]])
