"""An operator's retry of a failed journey run never makes two active runs of one journey for one customer: when
the customer is in that journey again (entered anew, or a merged duplicate's run), the failed run is left alone and
the answer says so; the others of the same request are retried."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from retento.api import create_app
from retento.core.db.transactions import transaction
from retento.customers import merging, service as customers
from retento.journeys import steps as effects
from tests import factories as f
from tests.api.conftest import make_key
from tests.journeys import helpers as j
from tests.journeys.test_entries_exits import _tagging
from tests.messaging import helpers as h

CART = {"kind": "event", "event": "custom", "event_name": "cart_abandoned"}


def _abandon(app, customer_id: int) -> None:
    with transaction(app.sessions) as s:
        customers.emit_custom_event(s, customer=customers.get(s, customer_id), name="cart_abandoned", payload={},
                                    ctx=f.API, now=app.clock.now())


def _fail_runs(app, monkeypatch) -> None:
    """Every add_tag step raises (a defect, not a refusal) until the runs are dead: five attempts with back-off."""
    def broken(*_a, **_k):
        raise RuntimeError("tagging is broken")

    with monkeypatch.context() as m:
        m.setitem(effects.MANY, "add_tag", broken)
        for _ in range(8):
            h.drain(app)
            app.clock.advance(hours=2)


@pytest.fixture
def api(app):
    _, raw = make_key(app, scopes="work:manage")
    with TestClient(create_app(app), headers={"X-API-Key": raw}) as c:
        yield c


def test_a_failed_run_is_not_retried_while_the_customer_is_in_the_journey_again(app, api, monkeypatch):
    f.site(app)
    j.save(app, _tagging("cart", CART, reentry={"policy": "always"}))
    anna, boris = f.customer(app, first_name="Anna"), f.customer(app, first_name="Boris")
    _abandon(app, anna)
    _abandon(app, boris)
    _fail_runs(app, monkeypatch)
    failed = {r.customer_id: r.id for r in j.runs(app) if r.state == "failed"}
    assert set(failed) == {anna, boris}
    _abandon(app, anna)  # Anna is back in the journey: a new run
    h.drain(app)
    assert [r.state for r in j.runs(app, customer_id=anna)] == ["failed", "active"]

    r = api.post("/api/v1/work/journey_runs/retry", json={"ids": [failed[anna], failed[boris]]})
    assert r.status_code == 200 and r.json() == {"ids": [failed[boris]]}
    assert [r.state for r in j.runs(app, customer_id=anna)] == ["failed", "active"]
    assert [r.state for r in j.runs(app, customer_id=boris)] == ["active"]
    h.drain(app)
    assert j.tags(app, boris) == ["cart-1"]  # the retried run goes on


def test_a_merged_duplicates_failed_run_is_not_retried_beside_the_kept_customers_run(app, api, monkeypatch):
    f.site(app)
    j.save(app, _tagging("cart", CART))
    dup = f.customer(app, first_name="Dup")
    _abandon(app, dup)
    _fail_runs(app, monkeypatch)
    (dead,) = j.runs(app, customer_id=dup)
    keep = f.customer(app, first_name="Kept")
    _abandon(app, keep)
    h.drain(app)
    with transaction(app.sessions) as s:
        merging.merge(s, site="shop", keep_id=keep, merge_ids=[dup], ctx=f.API, now=app.clock.now())
    assert sorted(r.state for r in j.runs(app, customer_id=keep)) == ["active", "failed"]

    r = api.post("/api/v1/work/journey_runs/retry", json={"ids": [dead.id]})
    assert r.status_code == 200 and r.json() == {"ids": []}
    assert sorted(r.state for r in j.runs(app, customer_id=keep)) == ["active", "failed"]
