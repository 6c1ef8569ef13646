"""Ready-made mechanics: each installs with one call (templates in RU and EN, cascades, journey), installing again
changes nothing, and each one's happy path sends its email through the local SMTP server."""

from __future__ import annotations

from retento.core import bus
from retento.core.changes import ChangeContext
from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.journeys import mechanics
from retento.loyalty import events as loyalty_events
from tests import factories as f
from tests.journeys import helpers as j
from tests.messaging import helpers as h


def _texts(smtp_server) -> list[tuple[str, str, str]]:
    out = []
    for i, m in enumerate(smtp_server.messages):
        msg = smtp_server.parsed(i)
        out.append((m["to"][0], msg["Subject"], msg.get_body(("plain",)).get_content()))
    return out


def _event(app, cid: int, name: str, data: dict, key: str) -> None:
    with transaction(app.sessions) as s:
        customers.emit_custom_event(s, customer=customers.get(s, cid), name=name, payload=data, ctx=f.API,
                                    now=app.clock.now(), idempotency_key=key)


def test_every_mechanic_installs_in_one_call_and_again_changes_nothing(mapp, client):
    h.setup_site(mapp)
    listed = client.get("/api/v1/journeys/mechanics").json()
    assert [m["name"] for m in listed] == mechanics.names() == [
        "abandoned-cart", "birthday", "reactivation", "review-request", "upsell", "visit-without-purchase", "welcome"]
    assert all(m["title"] and m["title_ru"] for m in listed)
    for name in mechanics.names():
        r = client.post(f"/api/v1/journeys/mechanics/{name}", json={"site": "shop"})
        assert r.status_code == 201 and r.json()["outcome"] == "created", r.text
        assert client.post(f"/api/v1/journeys/mechanics/{name}", json={"site": "shop"}).json()["outcome"] == "unchanged"
    templates = client.get("/api/v1/messaging/templates", params={"site": "shop"}).json()
    assert {t["language"] for t in templates} == {"en", "ru"}
    assert client.post("/api/v1/journeys/mechanics/nope", json={"site": "shop"}).status_code == 400


def test_happy_paths(mapp, client, smtp_server):
    h.setup_site(mapp, policy={"cap_count": None})
    for name in mechanics.names():
        assert client.post(f"/api/v1/journeys/mechanics/{name}", json={"site": "shop"}).status_code == 201
    h.customer(mapp, external_id="w", entry_point="registration", interests=["crm-marketing"],
               channels=("email",), locale="en")
    cart = h.customer(mapp, external_id="c", channels=("email",))
    visit = h.customer(mapp, external_id="v", channels=("email",))
    buyer = h.customer(mapp, external_id="b", channels=("email",))
    h.drain(mapp)
    _event(mapp, cart, "cart_abandoned", {"items": [{"name": "Чайник", "price": "1990.00", "quantity": 1}],
                                          "total": "1990.00"}, "cart-1")
    _event(mapp, visit, "site_visit", {"products": ["Тостер"]}, "visit-1")
    order = f.order(mapp, customer={"id": buyer}, number="A-100",
                    items=[{"name": "Кофемолка", "price": "3000.00", "quantity": 1}])
    with transaction(mapp.sessions) as s:  # the loyalty daily run records this when a member's birthday comes
        bus.record(s, [bus.event_row(loyalty_events.BIRTHDAY, ctx=ChangeContext.system(), now=mapp.clock.now(),
                                     site_id=1, customer_id=visit,
                                     payload={"account_id": 1, "multiplier": "2", "until": "2026-03-09"})])
    h.drain(mapp)
    mapp.clock.advance(hours=2, minutes=1)
    f.edit_order(mapp, order, status="received")
    h.drain(mapp)
    sent = _texts(smtp_server)
    subjects = {(to, subject) for to, subject, _ in sent}
    assert ("annaw@example.com", "Welcome, Анна!") in subjects  # English for an English-speaking customer
    assert ("annav@example.com", "С днём рождения, Анна!") in subjects
    cart_mail = next(body for to, subject, body in sent if subject == "Вы оставили товары в корзине")
    assert "Чайник x 1: 1990.00" in cart_mail and "Итого: 1990.00" in cart_mail
    assert any(subject == "Ещё выбираете?" and "Тостер" in body for _, subject, body in sent)
    f.order(mapp, customer={"id": cart})  # the cart's customer orders: no reminder
    mapp.clock.advance(days=3, hours=1)
    h.drain(mapp)
    sent = _texts(smtp_server)
    subjects = [subject for _, subject, _ in sent]
    assert "Корзина ждёт вас" not in subjects
    assert "CRM marketing that pays" in subjects  # the interest branch
    assert "Как вам заказ A-100?" in subjects  # 3 days after "received"
    mapp.clock.advance(days=4)
    h.drain(mapp)
    upsell = [body for _, subject, body in _texts(smtp_server) if subject == "К вашему заказу A-100"]
    assert upsell and "Кофемолка" in upsell[0]


def test_review_request_leaves_when_the_order_is_returned(mapp, client, smtp_server):
    h.setup_site(mapp, policy={"cap_count": None})
    client.post("/api/v1/journeys/mechanics/review-request", json={"site": "shop"})
    cid = h.customer(mapp, external_id="r", channels=("email",))
    order = f.order(mapp, customer={"id": cid})
    f.edit_order(mapp, order, status="received")
    h.drain(mapp)
    mapp.clock.advance(days=1)
    f.edit_order(mapp, order, status="returned")
    mapp.clock.advance(days=2, minutes=1)
    h.drain(mapp)
    (run,) = j.runs(mapp)
    assert (run.state, run.exit_reason) == ("exited", "condition:0")
    assert smtp_server.messages == []
    assert j.path(mapp, run.id) == [("three-days", "waited")]  # checked before the send step: no email
