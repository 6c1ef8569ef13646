"""The funnel and money report on a hand-computed fixture: 6 customers enter, a 50/50 split sends 4 an email
(0.03 RUB each) and holds 2 out; 2 open (pixels through the tracking endpoint), 1 clicks; orders: one within the
7-day window after its email (1,000 RUB, attributed), one after it (500 RUB, not), one cancelled (700 RUB, not),
and one by a holdout customer (300 RUB: no touch, no revenue, but it counts for the holdout's conversion)."""

from __future__ import annotations

import math
import re

from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.journeys import engine
from retento.journeys.schemas import Split
from tests import factories as f
from tests.journeys import helpers as j
from tests.messaging import helpers as h

SPLIT = {"id": "ab", "type": "split", "arms": [{"name": "A", "share": 50, "next": "mail"}], "holdout": 50}


def test_funnel_and_money_on_a_hand_computed_fixture(mapp, client, smtp_server):
    h.setup_site(mapp)
    h.template(mapp, "promo", "email")
    cascade = h.cascade(mapp, [("email", "promo", 24)])
    jid = j.save(mapp, {"name": "promo", "site": "shop", "entry": {"kind": "event", "event": "custom",
                                                                   "event_name": "go"},
                        "steps": [SPLIT, {"id": "mail", "type": "send", "cascade_id": cascade}]})
    people = [h.customer(mapp, external_id=str(i), channels=("email",)) for i in range(24)]
    split = Split.model_validate(SPLIT)
    arm_a = [c for c in people if engine.split_arm(split, journey_id=jid, customer_id=c) == "A"][:4]
    hold = [c for c in people if engine.split_arm(split, journey_id=jid, customer_id=c) is None][:2]
    with transaction(mapp.sessions) as s:
        for c in arm_a + hold:
            customers.emit_custom_event(s, customer=customers.get(s, c), name="go", payload={}, ctx=f.API,
                                        now=mapp.clock.now(), idempotency_key=f"go-{c}")
    h.drain(mapp)
    assert len(smtp_server.messages) == 4
    html = {m["to"][0]: smtp_server.parsed(i).get_body(("html",)).get_content()
            for i, m in enumerate(smtp_server.messages)}
    a1, a2, a3, _ = arm_a
    for c in (a1, a2):
        pixel = re.search(r'src="http://testserver(/api/v1/messaging/o/[^"]+\.gif)"', html[f"anna{people.index(c)}"
                                                                                        "@example.com"]).group(1)
        client.get(pixel)
    click = re.search(r'href="http://testserver(/api/v1/messaging/c/[^"]+)"',
                      html[f"anna{people.index(a1)}@example.com"]).group(1).replace("&amp;", "&")
    client.get(click, follow_redirects=False)
    mapp.clock.advance(days=1)
    f.order(mapp, customer={"id": a1}, items=[{"name": "TV", "price": "1000.00", "quantity": 1}])
    f.order(mapp, customer={"id": hold[0]}, items=[{"name": "Pen", "price": "300.00", "quantity": 1}])
    mapp.clock.advance(days=1)
    f.order(mapp, customer={"id": a3}, status="no-product", items=[{"name": "Sofa", "price": "700.00", "quantity": 1}])
    mapp.clock.advance(days=8)
    f.order(mapp, customer={"id": a2}, items=[{"name": "Lamp", "price": "500.00", "quantity": 1}])
    h.drain(mapp)

    r = client.get(f"/api/v1/journeys/{jid}/report")
    assert r.status_code == 200, r.text
    rep = r.json()
    assert (rep["entered"], rep["converted"], rep["orders"]) == (6, 1, 1)
    assert rep["conversion_rate"] == 1 / 6
    assert rep["revenue"] == {"RUB": "1000.00"} and rep["cost"] == {"RUB": "0.1200"}
    assert rep["cost_per_conversion"] == {"RUB": "0.12"}
    assert rep["exits"] == {"holdout": 2} and rep["states"] == {"exited": 2, "finished": 4}
    ab, mail = rep["steps"]
    assert (ab["reached"], ab["outcomes"]) == (6, {"arm:A": 4, "holdout": 2})
    assert {k: mail[k] for k in ("reached", "sent", "opened", "clicked", "converted")} == {
        "reached": 4, "sent": 4, "opened": 2, "clicked": 1, "converted": 1}
    assert (mail["open_rate"], mail["click_rate"]) == (0.5, 0.25)
    (split_report,) = rep["splits"]
    a, holdout = split_report["arms"]["A"], split_report["arms"]["holdout"]
    assert (a["customers"], a["converted"], holdout["customers"], holdout["converted"]) == (4, 1, 2, 1)
    se = math.sqrt(0.25 * 0.75 / 4 + 0.5 * 0.5 / 2)
    assert a["uplift"] == -0.25
    assert a["ci95"] == [-0.25 - 1.959964 * se, -0.25 + 1.959964 * se]
    assert rep["benchmarks"]["welcome"]["open_rate"] == 0.6391
    narrow = client.get(f"/api/v1/journeys/{jid}/report", params={"window_days": 30}).json()
    assert narrow["orders"] == 2 and narrow["revenue"] == {"RUB": "1500.00"}  # the later order is in a 30-day window
