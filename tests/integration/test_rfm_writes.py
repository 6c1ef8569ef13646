"""An RFM recompute writes only the rows whose values, scores or cell changed (set-based, on both databases), and
the stored table always equals a computation from scratch."""

from datetime import timedelta

from sqlalchemy import delete, insert, select, update

from retento.core.db.transactions import transaction
from retento.segments import analytics
from retento.segments.models import RfmScore
from tests import factories as f
from tests.integration.test_rfm_cohorts import _shop

S = RfmScore.__table__
VALUES = ("site_id", "frequency", "recency", "age", "monetary", "r", "f", "m", "cell")


def _rows(s):
    return {r.customer_id: r._asdict() for r in s.execute(select(S)).all()}


def test_recompute_writes_only_what_changed(app):
    _shop(app, 40, seed=7)
    t0 = app.clock.now()
    with transaction(app.sessions) as s:
        analytics.compute_rfm(s, site_id=1, now=t0)
        first = _rows(s)
        s.execute(update(S).values(expected_purchases=0.5))  # as an --ltv run leaves them
    assert first and {r["computed_at"] for r in first.values()} == {t0}

    later = t0 + timedelta(hours=1)  # the same day: nothing changes, nothing is written
    with transaction(app.sessions) as s:
        analytics.compute_rfm(s, site_id=1, now=later)
        again = _rows(s)
    assert again == {cid: {**r, "expected_purchases": 0.5} for cid, r in first.items()}

    spoiled, dropped = sorted(first)[:2]
    stranger = f.customer(app, email="never-bought@example.com")
    with transaction(app.sessions) as s:
        s.execute(update(S).where(S.c.customer_id == spoiled).values(cell="spoiled", r=9))
        s.execute(delete(S).where(S.c.customer_id == dropped))
        s.execute(insert(S).values(customer_id=stranger, site_id=1, frequency=0, recency=0, age=0, monetary=0, r=1,
                                   f=1, m=1, cell="lost", computed_at=t0))
    newcomer = f.customer(app, email="newcomer@example.com")
    f.order(app, customer={"id": newcomer}, status="complete")
    app.worker.tick()
    last = t0 + timedelta(hours=2)
    with transaction(app.sessions) as s:
        analytics.compute_rfm(s, site_id=1, now=last)
        after = _rows(s)
        s.execute(delete(S))
        analytics.compute_rfm(s, site_id=1, now=last)
        scratch = _rows(s)
    assert stranger not in after
    rewritten = {cid for cid, r in after.items() if r["computed_at"] == last}
    assert set(after) - set(first) == {newcomer}
    differ = {cid for cid in after if cid in first and [after[cid][k] for k in VALUES] != [first[cid][k] for k in VALUES]}
    assert rewritten == {spoiled, dropped, newcomer} | differ  # a new buyer moves the quintiles: some scores change
    assert all(after[cid]["computed_at"] == t0 for cid in set(after) - rewritten)
    assert {cid: [r[k] for k in VALUES] for cid, r in after.items()} == {
        cid: [r[k] for k in VALUES] for cid, r in scratch.items()}
    assert all(r["expected_purchases"] is None for r in after.values())  # the old fit's predictions are cleared
