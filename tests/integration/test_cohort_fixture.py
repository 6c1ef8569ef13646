"""Lifecycle cohorts on a hand-computed history: 20 customers over 8 months (January to 20 August 2026), the
threshold being the median gap between purchase days (no override). Every figure below was worked out by hand
from the purchase days; docs/segments.md walks through the same rules.

Gaps between consecutive purchase days (21): 1 10 15 21 21 22 23 28 28 29 [30] 30 30 46 54 56 74 77 92 110 228,
so the median, the threshold T, is 30 days: a customer is sleeping at a month's end 30 days or more after their
last purchase (N on 31 July, one month after 1 July; J on 30 June), still new or active at 29 (L on 30 June).
"""

from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from retento.api import create_app
from retento.apikeys import service as apikeys
from retento.cli import app as cli
from retento.core.db.transactions import transaction
from retento.segments import analytics
from retento.segments.schemas import InitiativeIn
from tests import factories as f

HISTORY = {  # customer -> purchase days (a day twice: two orders that day)
    "A": ["01-05", "01-20", "02-10"],
    "B": ["01-10"],
    "C": ["01-15", "03-10"],
    "D": ["02-03", "02-03", "02-25"],
    "E": ["02-14"],
    "F": ["03-02", "03-30", "04-29", "05-29"],
    "G": ["03-20", "06-05"],
    "H": ["04-01", "04-30"],
    "I": ["04-10"],
    "J": ["05-01", "05-31"],
    "K": ["05-20", "07-15", "07-16"],
    "L": ["06-01"],
    "M": ["06-10", "06-20", "08-05"],
    "N": ["07-01"],
    "O": ["07-20", "08-10"],
    "P": ["08-01"],
    "Q": ["01-25", "05-15", "08-15"],
    "R": ["02-20", "03-15", "04-12", "06-25"],
    "S": ["03-05", "03-05"],
    "U": ["01-02", "08-18"],
}
CANCELLED = {"U": "03-01", "V": "04-01"}  # not purchases: U's adds no order to March, V is no customer of the report

# (new, active, sleeping, orders) at the end of each month; August ends on the 20th (today) and is provisional
COUNTS = {
    "2026-01": (4, 1, 0, 6),    # A active (two days by the 20th); B C Q U new
    "2026-02": (2, 2, 4, 6),    # D active at once; E R new; B C Q U sleeping (U: 57 days)
    "2026-03": (2, 3, 6, 7),    # C R F active; G S new
    "2026-04": (1, 3, 9, 5),
    "2026-05": (1, 3, 11, 5),
    "2026-06": (1, 3, 13, 5),   # L new at 29 days; J sleeping at 30
    "2026-07": (1, 1, 17, 4),   # N sleeping in its first month (30 days on 31 July)
    "2026-08": (1, 4, 15, 5),
}
# new -> active, new -> sleeping, sleeping -> active, active -> sleeping
MIGRATIONS = {
    "2026-01": (0, 0, 0, 0),
    "2026-02": (0, 4, 0, 0),    # B C Q U
    "2026-03": (1, 1, 1, 2),    # R; E; C; A D
    "2026-04": (0, 2, 0, 1),    # G S; C
    "2026-05": (0, 1, 1, 2),    # I; Q; R H
    "2026-06": (0, 1, 2, 3),    # K; R G; Q F J
    "2026-07": (0, 1, 1, 3),    # L; K; R G M
    "2026-08": (1, 0, 3, 1),    # O; Q U M; K
}
# the four figures: conversion new -> active, orders per active customer, orders of customers sleeping at the end of
# the previous month (and how many of them became active), churn out of active
FIGURES = {
    "2026-01": (None, None, 0, 0, None),
    "2026-02": (0.0, 1.0, 0, 0, 0.0),            # A's one order
    "2026-03": (0.5, 0.0, 1, 1, 1.0),            # E R -> R; A D order nothing, both sleep; C's order
    "2026-04": (0.0, 0.6667, 0, 0, 0.3333),      # C R F: R F one order each; C sleeps
    "2026-05": (0.0, 0.3333, 1, 1, 0.6667),      # R F H: F one order; R H sleep; Q came back with one order
    "2026-06": (0.0, 0.0, 2, 2, 1.0),            # Q F J all sleep; G R came back, one order each
    "2026-07": (0.0, 0.0, 2, 1, 1.0),            # R G M all sleep; K came back with two orders
    "2026-08": (1.0, 0.0, 3, 3, 1.0),            # O converts; K sleeps; Q U M came back, one order each
}
COHORTS = [  # month of first purchase: customers, became active at some month end, conversion, provisional (< T old)
    ("2026-01", 5, 4, 0.8, False),      # A B C Q U: all but B
    ("2026-02", 3, 2, 0.6667, False),   # D E R
    ("2026-03", 3, 2, 0.6667, False),   # F G S
    ("2026-04", 2, 1, 0.5, False),      # H I
    ("2026-05", 2, 2, 1.0, False),      # J K
    ("2026-06", 2, 1, 0.5, False),      # L M
    ("2026-07", 2, 1, 0.5, True),       # N O: 20 days old
    ("2026-08", 1, 0, 0.0, True),       # P
]


@pytest.fixture
def shop(app):
    app.clock.set(datetime(2026, 8, 20, 15, tzinfo=timezone.utc))
    f.site(app)
    for name in sorted({*HISTORY, *CANCELLED}):
        cid = f.customer(app, external_id=name)
        for day in HISTORY.get(name, []):
            f.order(app, customer={"id": cid}, created_at=f"2026-{day}T10:00:00+00:00", status="complete")
        if name in CANCELLED:
            f.order(app, customer={"id": cid}, created_at=f"2026-{CANCELLED[name]}T10:00:00+00:00",
                    status="cancel-other")
    app.worker.tick()  # the rollups and the gap histogram (the threshold's median) follow the orders
    with transaction(app.sessions) as s:
        analytics.record_initiative(s, data=InitiativeIn(
            site="shop", kind="campaign", name="Summer sale", started_at="2026-06-03T09:00:00+00:00"),
            source="api", now=app.clock.now())
    with transaction(app.sessions) as s:
        _, raw = apikeys.create(s, name="t", scopes="segments:read", sites=None, now=app.clock.now())
    with TestClient(create_app(app), base_url="http://testserver/api/v1", headers={"X-API-Key": raw}) as client:
        yield client


def _rows(report):
    return {m["month"]: m for m in report["months"]}


def test_states_migrations_four_figures_and_cohorts(app, shop):
    r = shop.get("/cohorts", params={"site": "shop"})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["threshold"] == {"threshold_days": 30.0, "override": None, "computed_median_days": 30.0}
    months = _rows(report)
    assert list(months) == list(COUNTS)
    assert {k: (m["new"], m["active"], m["sleeping"], m["orders"]) for k, m in months.items()} == COUNTS
    assert {k: (m["new_to_active"], m["new_to_sleeping"], m["sleeping_to_active"], m["active_to_sleeping"])
            for k, m in months.items()} == MIGRATIONS
    assert {k: (m["conversion_new_active"], m["orders_per_active"], m["reactivated_orders"], m["reactivated"],
                m["churn_active"]) for k, m in months.items()} == FIGURES
    assert [k for k, m in months.items() if m["provisional"]] == ["2026-08"]
    assert {k: [i["name"] for i in m["initiatives"]] for k, m in months.items() if m["initiatives"]} == {
        "2026-06": ["Summer sale"]}
    assert {(x["from"], x["to"]): x["customers"] for x in months["2026-07"]["migrations"]} == {
        ("sleeping", "sleeping"): 12, ("active", "sleeping"): 3, ("sleeping", "active"): 1,
        ("new", "sleeping"): 1, ("none", "sleeping"): 1, ("none", "new"): 1}
    assert [(c["month"], c["customers"], c["became_active"], c["conversion"], c["provisional"])
            for c in report["cohorts"]] == COHORTS
    with transaction(app.sessions) as s:  # the SQL median the RFM runs store agrees
        assert analytics.median_gap(s, site_id=1) == 30.0


def test_from_to_and_as_of(app, shop):
    report = shop.get("/cohorts", params={"site": "shop", "from": "2026-03", "to": "2026-05"}).json()
    assert list(_rows(report)) == ["2026-03", "2026-04", "2026-05"]
    assert {k: (m["new"], m["active"], m["sleeping"], m["orders"]) for k, m in _rows(report).items()} == {
        k: COUNTS[k] for k in ("2026-03", "2026-04", "2026-05")}  # states still follow the whole history
    assert [c["month"] for c in report["cohorts"]] == ["2026-03", "2026-04", "2026-05"]
    r = shop.get("/cohorts", params={"site": "shop", "from": "2026-06", "to": "2026-05"})
    assert r.status_code == 400 and "from" in r.text
    r = shop.get("/cohorts", params={"site": "shop", "to": "2026-13"})
    assert r.status_code == 400 and "to" in r.text

    # As of 31 May only the purchases up to that day count: 12 gaps, 15 21 22 23 28 [28 29] 30 30 30 54 110, so the
    # median is 28.5 days; U, 29 days after 2 January on 31 January, is then sleeping, not new; May is complete.
    report = shop.get("/cohorts", params={"site": "shop", "as_of": "2026-05-31"}).json()
    assert report["as_of"] == "2026-05-31"
    assert report["threshold"] == {"threshold_days": 28.5, "override": None, "computed_median_days": 28.5}
    months = _rows(report)
    assert list(months) == ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05"]
    assert (months["2026-01"]["new"], months["2026-01"]["active"], months["2026-01"]["sleeping"]) == (3, 1, 1)
    assert (months["2026-02"]["new_to_sleeping"], months["2026-02"]["new_base"]) == (3, 3)
    assert {k: (m["new"], m["active"], m["sleeping"], m["orders"]) for k, m in months.items() if k >= "2026-03"} == {
        k: COUNTS[k] for k in ("2026-03", "2026-04", "2026-05")}
    assert not any(m["provisional"] for m in months.values())
    assert shop.get("/cohorts", params={"site": "shop", "as_of": "2026-05-30"}).json()["months"][-1]["provisional"]
    with transaction(app.sessions) as s:  # a report as of a date stores no threshold
        assert analytics.threshold_info(s, site_id=1)["computed_median_days"] == 30.0


def test_cohorts_cli_formats_and_languages(app, shop, monkeypatch):
    monkeypatch.setenv("RETENTO_DATABASE_URL", str(app.engine.url.render_as_string(hide_password=False)))
    from retento.core.config import get_settings

    get_settings.cache_clear()
    runner = CliRunner()  # the command runs on the system clock: --as-of the day of the fixture
    try:
        r = runner.invoke(cli, ["cohorts", "shop", "--as-of", "2026-08-20", "--from", "2026-07", "--format", "csv"])
        assert r.exit_code == 0, r.output
        lines = r.stdout.splitlines()
        assert lines[0].startswith("table,month,provisional,new,active,sleeping,orders,new_to_active,new_to_sleeping,"
                                   "sleeping_to_active,active_to_sleeping,conversion_new_active,orders_per_active,"
                                   "reactivated_orders,churn_active,initiatives")
        assert lines[1:3] == ["months,2026-07,false,1,1,17,4,0,1,1,3,0.0,0.0,2,1.0,,,,",
                              "months,2026-08,true,1,4,15,5,1,0,3,1,1.0,0.0,3,1.0,,,,"]
        assert "threshold 30 days" in r.stderr
        r = runner.invoke(cli, ["cohorts", "shop", "--as-of", "2026-08-20", "--to", "2026-06", "--lang", "ru"],
                          env={"COLUMNS": "250"})
        assert r.exit_code == 0, r.output
        assert "спящие → активные" in r.stdout and "отток из активных" in r.stdout and "Summer sale" in r.stdout
        assert "2026-07" not in r.stdout and "порог 30 дн." in r.stdout
        r = runner.invoke(cli, ["cohorts", "shop", "--to", "June"])
        assert r.exit_code == 2 and "--to" in r.output
    finally:
        get_settings.cache_clear()
