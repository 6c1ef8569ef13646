"""RFM equals an independent computation (lifetimes' own summary + plain Python scores) to the cent and the day;
LTV equals lifetimes fitted on the same summary; cohort states, migrations and the four figures on a hand-made
history."""

import random
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter
from lifetimes.utils import summary_data_from_transaction_data
from sqlalchemy import select

from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.orders import service as orders
from retento.segments import analytics
from retento.segments.models import RfmScore
from retento.segments.schemas import DEFAULT_CELLS, InitiativeIn
from tests import factories as f


def _shop(app, n_customers, seed):
    """Random purchase histories: several orders on one day, cancelled orders, cents in every amount."""
    f.site(app)
    rnd = random.Random(seed)
    with transaction(app.sessions) as s:
        ids = [c.id for c in customers.create_many(
            s, items=[customers.parse_create(s, {"site": "shop"}) for _ in range(n_customers)], ctx=f.API,
            now=app.clock.now())]
    raw, kept = [], []
    for cid in ids:
        first = app.clock.now() - timedelta(days=rnd.randint(0, 700), hours=rnd.randint(0, 23))
        days = [first] + [first + timedelta(days=rnd.randint(0, 600), hours=rnd.randint(0, 20))
                          for _ in range(rnd.choice([0, 0, 1, 2, 3, 6]))]
        for when in days:
            if when > app.clock.now():
                continue
            for _ in range(rnd.choice([1, 1, 1, 2])):
                amount = Decimal(rnd.randint(100, 99999)) / 100
                status = rnd.choice(["complete", "complete", "new", "cancel-other"])
                raw.append({"site": "shop", "customer": {"id": cid}, "created_at": when.isoformat(),
                            "status": status, "items": [{"name": "x", "price": str(amount), "quantity": 1}]})
                if status != "cancel-other":
                    kept.append((cid, when, amount))
    with transaction(app.sessions) as s:
        orders.create_many(s, items=[orders.parse_create(r) for r in raw], ctx=f.API, now=app.clock.now())
    app.worker.tick()
    return kept


def _quantile_cuts(values):
    """Independent: the value at rank ceil(j*n/5) of the sorted data, j = 1..4."""
    ordered = sorted(values)
    n = len(ordered)
    return [ordered[-(-j * n // 5) - 1] for j in range(1, 5)]


def test_rfm_equals_an_independent_computation(app):
    kept = _shop(app, 60, seed=3)
    today = app.clock.now().date()
    df = pd.DataFrame([{"customer": c, "date": w.date().isoformat(), "amount": float(a)} for c, w, a in kept])
    ref = summary_data_from_transaction_data(df, "customer", "date", monetary_value_col="amount",
                                             observation_period_end=today.isoformat(), freq="D")
    by_day: dict[int, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for c, w, a in kept:
        by_day[c][w.date()] += a
    with transaction(app.sessions) as s:
        out = analytics.compute_rfm(s, site_id=1, now=app.clock.now())
        rows = {r.customer_id: r for r in s.scalars(select(RfmScore))}
    assert set(rows) == set(ref.index)
    gaps, freqs, money = {}, {}, {}
    for cid, days in by_day.items():
        ordered = sorted(days)
        repeat = [days[d] for d in ordered[1:]]
        mean = (sum(repeat) / len(repeat)).quantize(Decimal("0.01"), ROUND_HALF_UP) if repeat else Decimal("0.00")
        row = rows[cid]
        assert (row.frequency, row.recency, row.age, row.monetary) == (
            len(ordered) - 1, (ordered[-1] - ordered[0]).days, (today - ordered[0]).days, mean), cid
        assert (row.frequency, row.recency, row.age) == tuple(int(x) for x in ref.loc[cid, ["frequency", "recency",
                                                                                             "T"]])
        assert abs(float(row.monetary) - ref.loc[cid, "monetary_value"]) <= 0.005 + 1e-6  # lifetimes: float mean
        gaps[cid], freqs[cid], money[cid] = (today - ordered[-1]).days, len(ordered) - 1, int(mean * 100)
    cuts = {"r": _quantile_cuts(gaps.values()), "f": _quantile_cuts(freqs.values()),
            "m": _quantile_cuts(money.values())}
    assert out["cuts"] == {"recency": cuts["r"], "frequency": cuts["f"], "monetary": cuts["m"]}
    for cid, row in rows.items():
        r = 5 - sum(gaps[cid] > c for c in cuts["r"])
        fs = 1 + sum(freqs[cid] > c for c in cuts["f"])
        m = 1 + sum(money[cid] > c for c in cuts["m"])
        cell = next(c.name for c in DEFAULT_CELLS if c.r[0] <= r <= c.r[1] and c.f[0] <= fs <= c.f[1])
        assert (row.r, row.f, row.m, row.cell) == (r, fs, m, cell), cid
    assert sum(c["customers"] for c in out["cells"]) == len(rows)


def test_fixed_windows_and_ltv(app):
    kept = _shop(app, 150, seed=5)
    with transaction(app.sessions) as s:
        analytics.set_rfm_config(s, site="shop", now=app.clock.now(), raw={
            "recency_days": [30, 90, 180, 365], "frequency": [0, 1, 2, 4], "monetary": ["100", "200", "400", "800"],
            "prediction_days": 60})
        analytics.compute_rfm(s, site_id=1, now=app.clock.now())
        result = analytics.compute_ltv(s, site_id=1, now=app.clock.now())
        rows = s.execute(select(RfmScore.customer_id, RfmScore.frequency, RfmScore.recency, RfmScore.age,
                                RfmScore.monetary, RfmScore.r, RfmScore.f, RfmScore.m, RfmScore.expected_purchases,
                                RfmScore.ltv).order_by(RfmScore.customer_id)).all()
    for row in rows:
        gap = row.age - row.recency
        assert row.r == 5 - sum(gap > c for c in (30, 90, 180, 365))
        assert row.f == 1 + sum(row.frequency > c for c in (0, 1, 2, 4))
        assert row.m == 1 + sum(row.monetary > Decimal(c) for c in (100, 200, 400, 800))
    # the fit on the shop's own data equals lifetimes fitted directly on the same values
    freq, rec, age = (np.array([getattr(r, k) for r in rows], dtype=float) for k in ("frequency", "recency", "age"))
    bgf = BetaGeoFitter(penalizer_coef=0.001).fit(freq, rec, age)
    expected = bgf.conditional_expected_number_of_purchases_up_to_time(60, freq, rec, age)
    assert np.allclose([r.expected_purchases for r in rows], expected, rtol=1e-6)
    assert result["params"]["bgnbd"] == pytest.approx(dict(bgf.params_), rel=1e-6)
    assert "gamma_gamma" in result["params"], result["params"]
    assert all(r.ltv is not None and r.ltv >= 0 for r in rows), [r for r in rows if r.ltv is None or r.ltv < 0]
    assert len(kept) > 0


def test_ltv_needs_enough_customers(app):
    _shop(app, 5, seed=1)
    from retento.core.errors import DomainError

    with transaction(app.sessions) as s, pytest.raises(DomainError) as exc:
        analytics.compute_rfm(s, site_id=1, now=app.clock.now())
        analytics.compute_ltv(s, site_id=1, now=app.clock.now())
    assert "site" in exc.value.as_dict()


HISTORY = {  # customer -> purchase days (two orders on one day for S); threshold 30 days; today 2026-04-15
    "P": ["2026-01-05", "2026-01-20", "2026-02-10"],
    "Q": ["2026-01-10"],
    "R": ["2026-02-01", "2026-03-25"],
    "S": ["2026-03-30", "2026-03-30"],
    "U": ["2026-01-02", "2026-03-10"],
}


def test_cohort_states_migrations_and_four_figures(app):
    app.clock.set(datetime(2026, 4, 15, 12, tzinfo=timezone.utc))
    f.site(app)
    for name, days in HISTORY.items():
        cid = f.customer(app, external_id=name)
        for d in days:
            f.order(app, customer={"id": cid}, created_at=f"{d}T10:00:00+00:00", status="complete")
    s_id = f.customer(app, external_id="S2")  # only a cancelled order: not a customer of the report
    f.order(app, customer={"id": s_id}, created_at="2026-04-01T10:00:00+00:00", status="cancel-other")
    app.worker.tick()  # the gap histogram (the computed median) follows the orders
    with transaction(app.sessions) as s:
        analytics.record_initiative(s, data=InitiativeIn(site="shop", kind="chain", name="Welcome chain",
                                                         started_at="2026-02-15T00:00:00+00:00",
                                                         idempotency_key="welcome-1"), source="api",
                                    now=app.clock.now())
        again = analytics.record_initiative(s, data=InitiativeIn(site="shop", kind="chain", name="Welcome chain",
                                                                 started_at="2026-02-15T00:00:00+00:00",
                                                                 idempotency_key="welcome-1"), source="api",
                                            now=app.clock.now())
        assert again.id == 1
        analytics.set_threshold(s, site="shop", days=30, now=app.clock.now())
        report = analytics.cohort_report(s, site="shop", now=app.clock.now())
    # gaps between purchase days: P 15, 21; R 52; U 67 -> median 36.5; the override of 30 is in force
    assert report["threshold"] == {"threshold_days": 30.0, "override": 30, "computed_median_days": 36.5}
    with transaction(app.sessions) as s:
        assert analytics.median_gap(s, site_id=1) == 36.5  # the SQL version RFM runs use
    months = {m["month"]: m for m in report["months"]}
    assert list(months) == ["2026-01", "2026-02", "2026-03", "2026-04"]

    def mig(m):
        return {(x["from"], x["to"]): x["customers"] for x in months[m]["migrations"]}

    assert [(m["new"], m["active"], m["sleeping"], m["orders"], m["provisional"]) for m in months.values()] == [
        (2, 1, 0, 4, False), (1, 1, 2, 2, False), (1, 2, 2, 4, False), (1, 1, 3, 0, True)]
    assert mig("2026-01") == {("none", "active"): 1, ("none", "new"): 2}
    assert mig("2026-02") == {("active", "active"): 1, ("new", "sleeping"): 2, ("none", "new"): 1}
    assert mig("2026-03") == {("active", "sleeping"): 1, ("sleeping", "sleeping"): 1, ("new", "active"): 1,
                              ("none", "new"): 1, ("sleeping", "active"): 1}
    assert mig("2026-04") == {("sleeping", "sleeping"): 2, ("active", "active"): 1, ("new", "new"): 1,
                              ("active", "sleeping"): 1}
    figures = [(m["conversion_new_active"], m["orders_per_active"], m["reactivated_orders"], m["churn_active"])
               for m in months.values()]
    assert figures == [(None, None, 0, None), (0.0, 1.0, 0, 0.0), (1.0, 0.0, 1, 1.0), (0.0, 0.0, 0, 0.5)]
    assert months["2026-03"]["reactivated"] == 1
    assert [i["name"] for i in months["2026-02"]["initiatives"]] == ["Welcome chain"]
    assert report["cohorts"] == [
        {"month": "2026-01", "customers": 3, "became_active": 2, "conversion": 0.6667, "provisional": False},
        {"month": "2026-02", "customers": 1, "became_active": 1, "conversion": 1.0, "provisional": False},
        {"month": "2026-03", "customers": 1, "became_active": 0, "conversion": 0.0, "provisional": True},
        {"month": "2026-04", "customers": 0, "became_active": 0, "conversion": None, "provisional": True},
    ]
    # lifecycle rules use the same threshold: at 2026-04-15 R is active, S new, P, Q, U sleeping
    from retento.segments import service

    app.worker.tick()
    with transaction(app.sessions) as s:
        for state, who in (("active", ["R"]), ("new", ["S"]), ("sleeping", ["P", "Q", "U"])):
            got = service.preview(s, site="shop", raw_rules={"lifecycle": {"state": [state]}}, now=app.clock.now())
            assert sorted(c["external_id"] for c in got["sample"]) == who


def test_a_trigger_switched_on_is_recorded_on_the_cohort_timeline(app):
    """Initiatives are recorded automatically: each time a trigger goes live, for the sites it acts on."""
    from retento.triggers import service as triggers

    app.clock.set(datetime(2026, 3, 10, 9, tzinfo=timezone.utc))
    f.site(app)
    f.site(app, code="other")
    f.order(app, customer={"id": f.customer(app)}, created_at="2026-03-01T10:00:00+00:00", status="complete")
    definition = {"name": "Win back", "events": ["order_created"], "sites": ["shop"], "active": False,
                  "actions": [{"type": "add_tag", "target": "customer", "tag": "win-back"}]}
    with transaction(app.sessions) as s:
        trigger = triggers.create_trigger(s, raw=definition, now=app.clock.now())
    app.worker.tick()
    with transaction(app.sessions) as s:
        assert analytics.list_initiatives(s, site_id=1) == []  # created switched off: nothing launched yet
        triggers.set_active(s, trigger=triggers.get_trigger(s, trigger.id), active=True, now=app.clock.now())
    app.worker.tick()
    app.worker.tick()  # delivered once, however often the worker runs
    app.clock.set(datetime(2026, 4, 2, 9, tzinfo=timezone.utc))
    with transaction(app.sessions) as s:
        t = triggers.get_trigger(s, trigger.id)
        triggers.set_active(s, trigger=t, active=False, now=app.clock.now())
        triggers.set_active(s, trigger=t, active=True, now=app.clock.now())
        triggers.update_trigger(s, trigger=t, raw={**t.definition, "name": "Win back 2"}, now=app.clock.now())
    app.worker.tick()
    with transaction(app.sessions) as s:
        shop = analytics.list_initiatives(s, site_id=1)
        assert analytics.list_initiatives(s, site_id=2) == []  # the trigger acts on `shop` only
        report = analytics.cohort_report(s, site="shop", now=app.clock.now())
    assert [(i["kind"], i["name"], i["started_at"], i["source"]) for i in shop] == [
        ("trigger", "Win back", datetime(2026, 3, 10, 9, tzinfo=timezone.utc), "automatic"),
        ("trigger", "Win back", datetime(2026, 4, 2, 9, tzinfo=timezone.utc), "automatic")]
    assert {m["month"]: [i["name"] for i in m["initiatives"]] for m in report["months"]}.get("2026-03") == ["Win back"]


def test_the_stored_cohort_report_is_what_the_console_reads_and_the_worker_refreshes(app):
    """The console reads the report stored per site (one row, not every purchase): computed the first time it is
    asked for, equal to the live report, kept until the worker recomputes it `cohort_refresh_minutes` later;
    initiatives and the month range are applied when it is read."""
    app.clock.set(datetime(2026, 4, 15, 12, tzinfo=timezone.utc))
    f.site(app)
    for name, days in HISTORY.items():
        cid = f.customer(app, external_id=name)
        for d in days:
            f.order(app, customer={"id": cid}, created_at=f"{d}T10:00:00+00:00", status="complete")
    app.worker.tick()
    with transaction(app.sessions) as s:
        stored = analytics.stored_cohort_report(s, site="shop", now=app.clock.now(), inline_buyers=5000)
        live = analytics.cohort_report(s, site="shop", now=app.clock.now())
    assert stored.pop("computed_at") == app.clock.now()
    assert stored == live
    first = datetime(2026, 4, 15, 12, tzinfo=timezone.utc)
    app.clock.set(datetime(2026, 4, 15, 12, 30, tzinfo=timezone.utc))
    f.order(app, customer={"id": f.customer(app, external_id="late")}, created_at="2026-04-15T12:10:00+00:00",
            status="complete")
    with transaction(app.sessions) as s:
        analytics.record_initiative(s, data=InitiativeIn(site="shop", kind="campaign", name="Spring",
                                                         started_at="2026-03-02T00:00:00+00:00"), source="user",
                                    now=app.clock.now())
    app.worker.tick()  # 30 minutes: not due yet
    with transaction(app.sessions) as s:
        kept = analytics.stored_cohort_report(s, site="shop", now=app.clock.now(), inline_buyers=5000,
                                              first=date(2026, 3, 1), last=date(2026, 3, 1))
    assert kept["computed_at"] == first
    assert [m["month"] for m in kept["months"]] == ["2026-03"] and [c["month"] for c in kept["cohorts"]] == ["2026-03"]
    assert [i["name"] for i in kept["months"][0]["initiatives"]] == ["Spring"]  # read live
    assert {m["month"]: m["new"] for m in stored["months"]}["2026-04"] == 1
    app.clock.set(datetime(2026, 4, 15, 13, 0, tzinfo=timezone.utc))  # cohort_refresh_minutes (60) later
    app.worker.tick()
    with transaction(app.sessions) as s:
        fresh = analytics.stored_cohort_report(s, site="shop", now=app.clock.now(), inline_buyers=5000)
        live = analytics.cohort_report(s, site="shop", now=app.clock.now())
    assert fresh.pop("computed_at") == app.clock.now()
    assert fresh == live and {m["month"]: m["new"] for m in fresh["months"]}["2026-04"] == 2


def test_a_large_sites_first_cohort_report_is_left_to_the_worker(app):
    """Nothing stored yet: a site of more buyers than `inline_buyers` gets None (no read of every purchase on the
    request), one of at most that many gets its report computed and stored; the worker's next turn stores the
    large one's."""
    app.clock.set(datetime(2026, 4, 15, 12, tzinfo=timezone.utc))
    f.site(app)
    for name, days in HISTORY.items():
        cid = f.customer(app, external_id=name)
        for d in days:
            f.order(app, customer={"id": cid}, created_at=f"{d}T10:00:00+00:00", status="complete")
    app.derived["segments"]()  # the rollups current, without the worker's refresh of the cohort report
    with transaction(app.sessions) as s:
        assert analytics.stored_cohort_report(s, site="shop", now=app.clock.now(), inline_buyers=len(HISTORY) - 1) \
            is None
    app.worker.tick()
    with transaction(app.sessions) as s:
        stored = analytics.stored_cohort_report(s, site="shop", now=app.clock.now(), inline_buyers=0)
        live = analytics.cohort_report(s, site="shop", now=app.clock.now())
    assert stored is not None and stored.pop("computed_at") == app.clock.now()
    assert stored == live


def test_the_worker_stores_the_cohort_report_and_rfm_of_every_site(app):
    """Several sites with buyers and none stored: one worker turn stores each one's report and RFM scores (on
    SQLite the loop over the sites held a statement open while the computation dropped its temporary table:
    'database table is locked')."""
    app.clock.set(datetime(2026, 4, 15, 12, tzinfo=timezone.utc))
    for code in ("shop", "other", "third"):
        f.site(app, code)
        for n in range(2):
            cid = f.customer(app, site=code, external_id=f"{code}{n}")
            f.order(app, site=code, customer={"id": cid}, created_at=f"2026-0{n + 1}-10T10:00:00+00:00",
                    status="complete")
    app.derived["segments"]()
    with transaction(app.sessions) as s:
        assert analytics.refresh_cohorts_due(s, now=app.clock.now(), every=timedelta(minutes=60)) == 3
        assert analytics.refresh_rfm_due(s, now=app.clock.now(), every=timedelta(hours=24)) == 3
        for code in ("shop", "other", "third"):
            stored = analytics.stored_cohort_report(s, site=code, now=app.clock.now(), inline_buyers=0)
            assert stored is not None and stored["computed_at"] == app.clock.now()
