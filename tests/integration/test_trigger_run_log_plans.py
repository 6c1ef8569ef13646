"""How SQLite reads the run log for the Triggers pages' counts of the last 24 hours: the range of the covering
`ix_trigger_runs_at`, not a walk of the whole log along the trigger index (SQLite has no statistics; grouping by
trigger first made its planner pick `ix_trigger_runs_trigger` for the order: 32 ms instead of 4 at 300,000
entries of which 10,000 are recent)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from retento.core.db.transactions import transaction
from retento.triggers import service as triggers


def test_recent_counts_read_the_last_day_from_the_time_index(app):
    if app.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's planner; PostgreSQL plans from its statistics")
    seen: list[str] = []

    def keep(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG001
        if "GROUP BY" in statement and "trigger_runs" in statement:
            seen.append(statement)

    engine = app.sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", keep)
    try:
        with transaction(app.sessions) as s:
            triggers.recent_counts(s, since=app.clock.now() - timedelta(hours=24))
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert len(seen) == 1
    with engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + seen[0],
                                                                     ("2026-01-01 00:00:00.000000",)))
    assert "COVERING INDEX ix_trigger_runs_at" in plan, plan


def test_an_entitys_pending_runs_are_read_through_the_run_key(app):
    """The lookups of an entity's pending delayed runs (a change event cancels them) seek the run key, which leads
    with the entity, not the due-time index's range of every pending run (`state = 'pending'` would steer SQLite's
    planner there)."""
    if app.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's planner; PostgreSQL plans from its statistics")
    from retento.triggers import timers

    with transaction(app.sessions) as s:
        compiled = s.execute(timers._PENDING_OF, {"entity": "order", "ids": [1, 2], "triggers": [3]}).context
        sql, params = compiled.statement, compiled.parameters[0]
        plan = " ".join(str(row[-1]) for row in s.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
    assert "sqlite_autoindex_trigger_timers_1 (entity=? AND entity_id=? AND trigger_id=?)" in plan, plan
