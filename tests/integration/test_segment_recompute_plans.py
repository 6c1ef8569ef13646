"""A full recompute compares the segment's query with its members by sets, whatever the statistics believe: on
PostgreSQL its two comparisons are planned without nested loops (statistics taken before the segment had members
made the planner re-read every member for each customer: 68 s for 68,000 members), and the setting is put back.
On both databases the members come out the same."""

from datetime import datetime, timezone

from sqlalchemy import event, select, text

from retento.core.db.transactions import transaction
from retento.segments import service
from retento.segments.models import SegmentMember
from retento.segments.schemas import SegmentCreate
from tests import factories as f

RULES = {"all": [{"orders": {"metric": "average", "op": "gt", "value": 50}},
                 {"orders": {"metric": "last_order_days_ago", "op": "gt", "value": 10}}]}


def _explained(app, plans):
    """Before each INSERT ... SELECT into segment_changes, its plan (EXPLAIN, in the same transaction)."""
    def before(conn, cursor, statement, parameters, context, executemany):
        if not executemany and statement.startswith("INSERT INTO segment_changes") and " SELECT " in statement:
            with cursor.connection.cursor() as c:
                c.execute("EXPLAIN " + statement, parameters)
                plans.append("\n".join(r[0] for r in c.fetchall()))
    return before


def test_full_recompute_is_planned_as_sets_on_stale_statistics(app):
    f.site(app)
    ids = [f.customer(app, email=f"c{i}@example.com") for i in range(60)]
    for i, c in enumerate(ids):
        f.order(app, customer={"id": c}, status="complete", created_at="2026-01-10T10:00:00+00:00",
                items=[{"name": "Thing", "price": f"{20 + 2 * i}.00", "quantity": 1}])
    app.bring_up_to_date()
    pg = app.engine.dialect.name == "postgresql"
    if pg:  # the statistics of an empty members table, as after a reset with autovacuum off
        with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE segment_members, segment_changes"))
    now = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
    with transaction(app.sessions) as s:
        segment = service.create(s, data=SegmentCreate(site="shop", code="aov", name="AOV", rules=RULES), now=now)
        expected = {c for i, c in enumerate(ids) if 20 + 2 * i > 50}
        assert segment.size == len(expected)
    plans: list[str] = []
    listener = _explained(app, plans)
    if pg:
        event.listen(app.engine, "before_cursor_execute", listener)
    try:
        with transaction(app.sessions) as s:
            segment = service.find(s, site_id=segment.site_id, ref="aov")
            assert service.recompute(s, segment=segment, now=now) == (0, 0)
            members = set(s.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment.id)))
            if pg:
                assert s.scalar(text("SHOW enable_nestloop")) == "on"  # put back for the rest of the transaction
    finally:
        if pg:
            event.remove(app.engine, "before_cursor_execute", listener)
    assert members == expected
    if pg:
        assert len(plans) == 2, plans
        assert not [p for p in plans if "Nested Loop" in p], plans
