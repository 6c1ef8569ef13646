"""The cohort report the database computes (segments.cohort_query: set-based, from each customer's purchase months)
equals the month-by-month walk of cohorts.lifecycle over the same purchase days, for any history, threshold and
observation day, on both databases."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from retento.core.db.transactions import transaction
from retento.segments import cohort_query, cohorts
from tests import factories as f

START = date(2026, 1, 1)
RUNS = itertools.count()
order = st.tuples(st.integers(0, 200), st.booleans())  # (day after START, cancelled)
history = st.lists(st.lists(order, max_size=6), min_size=1, max_size=5)


@pytest.fixture
def base(app):
    f.site(app)


def _months(report: cohorts.Report) -> list[dict]:
    return [dataclasses.asdict(m) for m in report.months]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(customers=history, threshold=st.sampled_from([1.0, 7.5, 14.0, 28.5, 30.0, 75.0]),
       today=st.integers(20, 230), day_over=st.booleans())
def test_database_report_equals_the_walk(app, base, customers, threshold, today, day_over):
    code = f"s{next(RUNS)}"
    site_id = f.site(app, code=code)
    today_day = START + timedelta(days=today)
    purchases = {}
    for n, orders in enumerate(customers):
        cid = f.customer(app, site=code, external_id=f"c{n}")
        for offset, cancelled in orders:
            day = START + timedelta(days=offset)
            f.order(app, site=code, customer={"id": cid}, created_at=f"{day.isoformat()}T10:00:00+00:00",
                    status="cancel-other" if cancelled else "complete")
            if not cancelled and day <= today_day:
                purchases.setdefault(cid, []).append(day)
    walk = cohorts.lifecycle(purchases, threshold=threshold, today=today_day, day_over=day_over)
    with transaction(app.sessions) as s:
        got = cohort_query.report(s, site_id=site_id, today=today_day, threshold=threshold, day_over=day_over)
    assert _months(got) == _months(walk), (purchases, threshold, today_day)
    assert got.cohorts == walk.cohorts


def test_month_numbers():
    assert cohort_query.month_index(date(2026, 1, 31)) == 2026 * 12
    assert cohort_query.month_of_index(2026 * 12 + 11) == date(2026, 12, 1)
