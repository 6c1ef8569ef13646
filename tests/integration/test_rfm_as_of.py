"""RFM and LTV as of a date, on the public CDNOW transactions that ship with `lifetimes`: frequency, recency, T and
monetary value equal `summary_data_from_transaction_data(..., observation_period_end=DATE)`, the BG/NBD fit equals
lifetimes fitted on that summary, and nothing is stored."""

import csv
import io
import json
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import lifetimes
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from lifetimes import BetaGeoFitter
from lifetimes.utils import summary_data_from_transaction_data
from sqlalchemy import func, select
from typer.testing import CliRunner

from retento.api import create_app
from retento.apikeys import service as apikeys
from retento.cli import app as cli
from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.orders import service as orders
from retento.segments import analytics
from retento.segments.models import RfmScore
from tests import factories as f

AS_OF = date(1997, 9, 30)  # half-way through the 18 months of CDNOW (a cohort of first buyers of 1997 Q1)
CUSTOMERS = 250


def _cdnow() -> pd.DataFrame:
    """The first customers of lifetimes' CDNOW sample: id, day, amount (several purchases a day in places)."""
    path = Path(lifetimes.__file__).parent / "datasets" / "CDNOW_sample.txt"
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    df = pd.DataFrame({"customer": [r[0] for r in rows], "date": [f"{r[2][:4]}-{r[2][4:6]}-{r[2][6:]}" for r in rows],
                       "amount": [r[4] for r in rows]})
    return df[df.customer.isin(df.customer.unique()[:CUSTOMERS])]


@pytest.fixture
def client(app):
    with transaction(app.sessions) as s:
        _, raw = apikeys.create(s, name="t", scopes="segments:read", sites=None, now=app.clock.now())
    with TestClient(create_app(app), base_url="http://testserver/api/v1", headers={"X-API-Key": raw}) as c:
        yield c


@pytest.fixture
def cdnow(app):
    """The transactions as orders of site `shop` (noon UTC), customers by external id."""
    df = _cdnow()
    f.site(app)
    with transaction(app.sessions) as s:
        made = customers.create_many(s, items=[customers.parse_create(s, {"site": "shop", "external_id": c})
                                               for c in df.customer.unique()], ctx=f.API, now=app.clock.now())
        ids = {c.external_id: c.id for c in made}
    raw = [{"site": "shop", "customer": {"id": ids[c]}, "created_at": f"{d}T12:00:00+00:00", "status": "complete",
            "items": [{"name": "CD", "price": a, "quantity": 1}]} for c, d, a in df.itertuples(index=False)]
    with transaction(app.sessions) as s:
        orders.create_many(s, items=[orders.parse_create(r) for r in raw], ctx=f.API, now=app.clock.now())
    app.worker.tick()
    df = df.assign(customer=df.customer.map(ids), amount=df.amount.astype(float))
    return summary_data_from_transaction_data(df, "customer", "date", monetary_value_col="amount",
                                              observation_period_end=AS_OF.isoformat(), freq="D")


def test_as_of_equals_lifetimes_summary_and_fit(app, cdnow):
    with transaction(app.sessions) as s:
        analytics.rfm_report(s, site_id=1, now=app.clock.now())  # the stored scores: as of today
        stored = s.execute(select(func.sum(RfmScore.age), func.sum(RfmScore.frequency))).one()
        out = analytics.rfm_report(s, site_id=1, now=app.clock.now(), as_of=AS_OF, ltv=True, customers=True)
    rows = {r["customer_id"]: r for r in out["customers"]}
    assert set(rows) == set(cdnow.index)
    assert sum(r["frequency"] for r in rows.values()) < stored[1]  # the later purchases are left out
    for cid, ref in cdnow.iterrows():
        row = rows[cid]
        assert (row["frequency"], row["recency"], row["age"]) == (ref.frequency, ref.recency, ref["T"]), cid
        assert abs(float(row["monetary"]) - ref.monetary_value) <= 0.005 + 1e-9, cid
    bgf = BetaGeoFitter(penalizer_coef=0.001).fit(cdnow.frequency, cdnow.recency, cdnow["T"])
    assert out["ltv"]["params"]["bgnbd"] == pytest.approx(dict(bgf.params_), rel=1e-5)
    expected = bgf.conditional_expected_number_of_purchases_up_to_time(
        out["prediction_days"], cdnow.frequency, cdnow.recency, cdnow["T"])
    assert [rows[c]["expected_purchases"] for c in cdnow.index] == pytest.approx(list(expected), rel=1e-5)
    assert out["as_of"] == AS_OF and sum(c["customers"] for c in out["cells"]) == len(rows)
    for c in out["cells"]:  # per-customer means and cell totals say the same thing
        assert abs(c["ltv_mean"] * c["customers"] - c["ltv_total"]) <= Decimal("0.005") * c["customers"]
        assert c["expected_purchases_mean"] == pytest.approx(c["expected_purchases_total"] / c["customers"], abs=0.01)
    with transaction(app.sessions) as s:  # the as-of run stored nothing
        assert s.execute(select(func.sum(RfmScore.age), func.sum(RfmScore.frequency))).one() == stored
        assert s.scalar(select(func.count()).select_from(RfmScore).where(RfmScore.ltv.is_not(None))) == 0


def test_as_of_through_the_api_and_the_cli(app, client, cdnow, tmp_path, monkeypatch):
    r = client.get("/rfm", params={"site": "shop", "as_of": AS_OF.isoformat()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["as_of"] == "1997-09-30" and sum(c["customers"] for c in body["cells"]) == len(cdnow)
    assert {"days_since_last_purchase_mean", "repeat_purchases_mean", "repeat_purchase_value_mean",
            "expected_purchases_mean", "expected_purchases_total", "ltv_mean", "ltv_total"} <= set(body["cells"][0])
    r = client.get("/rfm", params={"site": "shop", "as_of": "2999-01-01"})
    assert r.status_code == 400 and "as_of" in r.text and "after today" in r.text
    r = client.get("/rfm", params={"site": "shop", "as_of": "1997-13-01"})
    assert r.status_code == 422 and "as_of" in r.text
    r = client.get("/rfm", params={"site": "shop", "ltv": "true"})
    assert r.status_code == 400 and "ltv" in r.text
    assert client.get("/cohorts", params={"site": "shop", "as_of": "1997-09-30"}).json()["months"][-1]["month"] \
        == "1997-09"

    monkeypatch.setenv("RETENTO_DATABASE_URL", str(app.engine.url.render_as_string(hide_password=False)))
    from retento.core.config import get_settings

    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(cli, ["rfm", "shop", "--as-of", "1997-09-30", "--customers", "--format", "csv"])
        assert r.exit_code == 0, r.output
        got = {int(row["customer_id"]): row for row in csv.DictReader(io.StringIO(r.stdout))}
        assert {c: (int(g["frequency"]), int(g["recency"]), int(g["age"])) for c, g in got.items()} == {
            c: (int(ref.frequency), int(ref.recency), int(ref["T"])) for c, ref in cdnow.iterrows()}
        r = CliRunner().invoke(cli, ["rfm", "shop", "--as-of", "1997-09-30", "--ltv", "--lang", "ru"],
                               env={"COLUMNS": "1000"})
        assert r.exit_code == 0, r.output
        assert "RFM, сайт shop, на 1997-09-30" in r.stdout and "LTV за 12 мес., всего в ячейке" in r.stdout
        assert "ожидаемых покупок за 90 дн., на клиента" in r.stdout and "параметры модели" in r.stdout
        r = CliRunner().invoke(cli, ["rfm", "shop", "--as-of", "1997-09-30", "--format", "json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["cells"] == body["cells"]
        r = CliRunner().invoke(cli, ["rfm", "shop", "--as-of", "30.09.1997"])
        assert r.exit_code == 2 and "--as-of" in r.output
        r = CliRunner().invoke(cli, ["rfm", "shop", "--as-of", "1997-09-30", "--segments"])
        assert r.exit_code == 2 and "--segments" in r.output
    finally:
        get_settings.cache_clear()


def test_the_worked_example_of_the_docs(app):
    """docs/segments.md, "Values": one customer observed as of 30 April 2026, scored with fixed windows."""
    app.clock.set(datetime(2026, 6, 1, 9, tzinfo=timezone.utc))
    f.site(app)
    cid = f.customer(app)
    for day, amount, status in (("01-10", "1000.00", "complete"), ("01-10", "500.00", "complete"),
                                ("02-01", "2000.00", "complete"), ("03-15", "1001.00", "complete"),
                                ("03-20", "9999.00", "cancel-other"), ("05-05", "50.00", "complete")):
        f.order(app, customer={"id": cid}, created_at=f"2026-{day}T18:30:00+00:00", status=status,
                items=[{"name": "x", "price": amount, "quantity": 1}])
    app.worker.tick()
    with transaction(app.sessions) as s:
        analytics.set_rfm_config(s, site="shop", now=app.clock.now(), raw={
            "recency_days": [30, 60, 120, 240], "frequency": [0, 1, 3, 6], "monetary": ["1000", "3000", "7000", "15000"]})
        out = analytics.rfm_report(s, site_id=1, now=app.clock.now(), as_of=date(2026, 4, 30), customers=True)
    (row,) = out["customers"]
    assert {k: row[k] for k in ("frequency", "recency", "age", "monetary", "r", "f", "m", "cell")} == {
        "frequency": 2, "recency": 64, "age": 110, "monetary": Decimal("1500.50"), "r": 4, "f": 3, "m": 2,
        "cell": "potential"}
    assert out["cells"][0]["days_since_last_purchase_mean"] == 46.0
