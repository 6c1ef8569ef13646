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
