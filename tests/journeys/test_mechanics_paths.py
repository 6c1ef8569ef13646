"""The ready-made mechanics' happy paths not covered in test_mechanics: the welcome chain by entry point (a callback
request is not welcomed) with each interest's branch, in Russian and English; reactivation of a customer who falls
asleep in the lifecycle cohorts (an email; no order in 14 days: 200 points and a second email); the birthday email
with the multiplier the loyalty daily run reports; the review request left when the order is cancelled. Every
mechanic ships each of its templates in both languages. Frozen clock, explicit worker ticks."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from retento.core.db.transactions import transaction
from retento.journeys import mechanics
from retento.loyalty import runs as loyalty_runs, service as loyalty_service
from retento.loyalty.rules import birthday_window
from retento.segments import analytics
from tests import factories as f
from tests.journeys import helpers as j
from tests.loyalty import helpers as loyalty
from tests.messaging import helpers as h


def _install(client, *names: str) -> None:
    for name in names:
        r = client.post(f"/api/v1/journeys/mechanics/{name}", json={"site": "shop"})
        assert r.status_code == 201, r.text


def _mail(smtp_server, to: str) -> list[tuple[str, str]]:
    """(subject, plain body) of the emails sent to `to`, in order."""
    out = []
    for i, m in enumerate(smtp_server.messages):
        if m["to"][0] == to:
            msg = smtp_server.parsed(i)
            out.append((msg["Subject"], msg.get_body(("plain",)).get_content().strip()))
    return out


def test_every_mechanic_ships_each_template_in_russian_and_english():
    for name in mechanics.names():
        m = mechanics.load(name)
        assert m["title"] and m["title_ru"] and m["description"] and m["description_ru"], name
        for t in m["templates"]:
            assert t["en"]["body"] and t["ru"]["body"], (name, t["name"])
            assert (t["en"].get("subject"), t["en"]["body"]) != (t["ru"].get("subject"), t["ru"]["body"]), t["name"]


def test_welcome_by_entry_point_with_each_interest_in_both_languages(mapp, client, smtp_server):
    h.setup_site(mapp, policy={"cap_count": None})
    _install(client, "welcome")
    people = {
        "o": dict(entry_point="registration", interests=["order-automation"], locale="ru"),
        "m": dict(entry_point="lead_magnet", interests=["messengers"], locale="en"),
        "n": dict(entry_point="chat", interests=[], locale="ru"),  # no interest: the else branch (CRM marketing)
        "s": dict(entry_point="subscription", interests=["crm-marketing"], locale="ru"),
        "c": dict(entry_point="callback", interests=["crm-marketing"], locale="ru"),  # not a welcome entry point
    }
    for x, kw in people.items():
        h.customer(mapp, external_id=x, channels=("email",), **kw)
    h.drain(mapp)
    mapp.clock.advance(days=3)
    h.drain(mapp)
    subjects = {x: [s for s, _ in _mail(smtp_server, f"anna{x}@example.com")] for x in people}
    welcome = mechanics.load("welcome")["templates"]
    ru = {t["name"]: t["ru"]["subject"].replace("{{ customer.first_name }}", "Анна") for t in welcome
          if t["channel"] == "email"}
    en = {t["name"]: t["en"]["subject"].replace("{{ customer.first_name }}", "Анна") for t in welcome
          if t["channel"] == "email"}
    assert subjects["o"] == [ru["welcome"], ru["welcome-orders"]]
    assert subjects["m"] == [en["welcome"], en["welcome-messengers"]]
    assert subjects["n"] == [ru["welcome"], ru["welcome-crm"]]
    assert subjects["s"] == [ru["welcome"], ru["welcome-crm"]]
    assert subjects["c"] == []


def test_reactivation_of_a_customer_who_falls_asleep(mapp, client, smtp_server):
    h.setup_site(mapp, policy={"cap_count": None})
    loyalty.program(mapp)
    _install(client, "reactivation")
    with transaction(mapp.sessions) as s:  # sleeping: no order for 60 days
        analytics.set_threshold(s, site="shop", days=60, now=mapp.clock.now())
    sleeper, account = loyalty.member(mapp, first_name="Анна", email="annaz@example.com", external_id="z",
                                      consents={"email": {"granted": True, "source": "checkout"}})
    awake = h.customer(mapp, external_id="a", channels=("email",))
    f.order(mapp, customer={"id": sleeper})
    f.order(mapp, customer={"id": awake})
    h.drain(mapp)
    for _ in range(8):  # the awake customer orders every week; the sleeper stops
        mapp.clock.advance(days=7)
        f.order(mapp, customer={"id": awake})
        h.drain(mapp)
    assert j.runs(mapp) == []  # 56 days: not asleep yet
    mapp.clock.advance(days=5)
    h.drain(mapp)
    (run,) = j.runs(mapp)
    assert run.customer_id == sleeper and run.step == "order"
    assert [s for s, _ in _mail(smtp_server, "annaz@example.com")] == ["Мы скучаем, Анна"]
    mapp.clock.advance(days=14, minutes=1)
    h.drain(mapp)
    assert [s for s, _ in _mail(smtp_server, "annaz@example.com")] == ["Мы скучаем, Анна",
                                                                        "200 бонусов за возвращение"]
    assert loyalty.account(mapp, account).balance == Decimal("200")
    assert j.path(mapp, run.id) == [("hello", "started"), ("order", "timeout"), ("bonus", "credited"),
                                    ("bonus-mail", "started")]
    assert _mail(smtp_server, "annaa@example.com") == []


@pytest.mark.parametrize("locale", ["ru", "en"])
def test_birthday_email_carries_the_multiplier_of_the_loyalty_daily_run(mapp, client, smtp_server, locale):
    h.setup_site(mapp, policy={"cap_count": None})
    loyalty.program(mapp, birthday_multiplier=Decimal(2), birthday_days=3)
    _install(client, "birthday")
    birthday = (mapp.clock.now() + timedelta(days=3)).date()
    loyalty.member(mapp, first_name="Анна", email="annab@example.com", birthday=birthday.isoformat(), locale=locale,
                   consents={"email": {"granted": True, "source": "checkout"}})
    with transaction(mapp.sessions) as s:
        assert loyalty_runs.birthdays(s, program=loyalty_service.get_program(s, "shop"), now=mapp.clock.now()) == 1
    h.drain(mapp)
    until = birthday_window(birthday, mapp.clock.now().date(), 3)[1].isoformat()  # the multiplier's last day
    ((subject, body),) = _mail(smtp_server, "annab@example.com")
    if locale == "ru":
        assert subject == "С днём рождения, Анна!" and body == f"Бонусы начисляются x2 до {until}."
    else:
        assert subject == "Happy birthday, Анна!" and body == f"Points count x2 until {until}."


def test_review_request_leaves_when_the_order_is_cancelled(mapp, client, smtp_server):
    h.setup_site(mapp, policy={"cap_count": None})
    _install(client, "review-request")
    kept, cancelled = (h.customer(mapp, external_id=x, channels=("email",)) for x in ("k", "x"))
    orders = {cid: f.order(mapp, customer={"id": cid}, number=f"R-{cid}") for cid in (kept, cancelled)}
    for order in orders.values():
        f.edit_order(mapp, order, status="received")
    h.drain(mapp)
    mapp.clock.advance(days=2)
    f.edit_order(mapp, orders[cancelled], status="cancel-other")
    mapp.clock.advance(days=1, minutes=1)
    h.drain(mapp)
    runs = {r.customer_id: r for r in j.runs(mapp)}
    assert (runs[cancelled].state, runs[cancelled].exit_reason) == ("exited", "condition:0")
    assert runs[kept].state == "finished"
    assert _mail(smtp_server, "annax@example.com") == []
    assert [s for s, _ in _mail(smtp_server, "annak@example.com")] == [f"Как вам заказ R-{kept}?"]
