"""The program's P&L against a hand-computed shop on both databases."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from retento.core.db.transactions import transaction
from retento.core.errors import Conflict
from retento.loyalty import pnl, runs, service
from retento.loyalty.schemas import JoinIn
from retento.messaging import service as messaging
from retento.messaging.models import Message
from retento.messaging.schemas import CascadeIn, PolicyIn, PriceIn, TemplateIn
from retento.triggers import service as triggers
from tests import factories as f
from tests.loyalty.helpers import CTX, charge, order, program, set_status

DAY0 = datetime(2026, 1, 1, 9, tzinfo=timezone.utc)


def at(app, day: int) -> None:
    app.clock.set(DAY0 + timedelta(days=day))


def join(app, customer_id: int) -> int:
    with transaction(app.sessions) as s:
        return service.join(s, data=JoinIn(site="shop", customer_id=customer_id), ctx=CTX, now=app.clock.now())[0].id


def test_pnl_matches_the_hand_computed_shop(app):
    at(app, 0)
    f.site(app)
    a, b = f.customer(app), f.customer(app)
    set_status(app, order(app, a, ("x", "1000", 1)), "complete")  # before the program: 1 order of 1000
    at(app, 30)  # launch: 10%, usable at once, lots burn 60 days after, welcome 50
    program(app, percent=Decimal(10), activation_days=0, expiry_days=60, welcome_bonus=Decimal(50),
            max_redeem_share=Decimal("0.5"))
    acc_a, _ = join(app, a), join(app, b)
    at(app, 40)
    set_status(app, order(app, a, ("x", "2000", 1)), "complete")  # +200
    b1 = order(app, b, ("x", "1000", 1))
    set_status(app, b1, "complete")  # +100
    at(app, 45)
    a3 = order(app, a, ("x", "400", 1))
    charge(app, acc_a, "100", "pay", order_id=a3)  # welcome 50 + 50 of the 200
    set_status(app, a3, "complete")  # 10% of 400 - 100 = +30
    at(app, 50)
    set_status(app, b1, "no-product")  # -100
    at(app, 95)
    with transaction(app.sessions) as s:
        runs.expire(s, program=service.get_program(s, "shop"), now=app.clock.now())  # b's welcome: -50
    at(app, 96)
    with transaction(app.sessions) as s:
        out = pnl.report(s, site="shop", start=DAY0 + timedelta(days=30), end=DAY0 + timedelta(days=96),
                         now=app.clock.now())
    assert (out.issued, out.reversed, out.redeemed, out.expired) == (430, 100, 100, 50)
    assert (out.liability_start, out.liability_end) == (0, 180)
    assert out.revenue == 2400 and out.discount_share == Decimal("0.0417") and out.members == 2
    # a: 1 order of 1000 in the 30 days of history before joining, 2 orders of 2400 in the 66 days after; b: none
    pm = out.per_member
    assert pm.members == 2
    assert (pm.before.orders, pm.before.revenue) == (0.5, Decimal("500.00"))
    assert (pm.after.orders, pm.after.revenue) == (0.4545, Decimal("545.45"))
    assert out.cohorts.launch == date(2026, 1, 31)
    assert (out.cohorts.months_before, out.cohorts.months_after) == (0, 4)
    with transaction(app.sessions) as s:  # the launch is on the cohort timeline
        months = pnl.analytics.cohort_report(s, site="shop", now=app.clock.now())["months"]
        assert [i["kind"] for m in months for i in m["initiatives"]] == ["loyalty"]


def test_pnl_figures_are_pure():
    sums = {"welcome": Decimal(10), "accrual": Decimal(90), "charge": Decimal(-30), "refund": Decimal(5),
            "expiry": Decimal(-10), "reversal": Decimal(-20)}
    out = pnl.summarise(sums, liability_start=Decimal(7), revenue=Decimal(500))
    assert out["issued"] == 100 and out["redeemed"] == 25 and out["reversed"] == 20 and out["expired"] == 10
    assert out["liability_end"] == 7 + 100 - 20 - 25 - 10 and out["discount_share"] == Decimal("0.05")
    assert pnl.before_after([]) == {"members": 0, "before": None, "after": None}


def test_pnl_with_a_holdout_group(app):
    at(app, 0)
    f.site(app)
    program(app, percent=Decimal(10), activation_days=0, holdout_share=Decimal("0.5"))
    totals, status = {}, {}
    for n in range(1, 9):
        customer_id = f.customer(app)
        account_id = join(app, customer_id)
        with transaction(app.sessions) as s:
            status[customer_id] = service.get_account(s, account_id).status
        totals[customer_id] = Decimal(100 * n)
        set_status(app, order(app, customer_id, ("x", str(100 * n), 1)), "complete")
    held = [c for c, st in status.items() if st == "holdout"]
    members = [c for c, st in status.items() if st == "active"]
    assert held and members and len(held) + len(members) == 8
    with transaction(app.sessions) as s:  # held out: nothing earned, nothing to spend, cannot be unblocked
        account = service.account_of(s, site_id=service.get_program(s, "shop").site_id, customer_id=held[0])
        assert service.account_out(s, account, now=app.clock.now()).pending == 0
    with pytest.raises(Conflict):
        charge(app, account.id, "1", "x")
    at(app, 1)
    with transaction(app.sessions) as s:
        out = pnl.report(s, site="shop", start=None, end=None, now=app.clock.now())
    assert out.members == len(members)
    assert out.issued == sum(totals[c] for c in members) / 10
    h = out.holdout
    assert (h.members.customers, h.holdout.customers) == (len(members), len(held))
    assert (h.members.orders, h.holdout.orders) == (1.0, 1.0)
    assert h.holdout.revenue == (sum(totals[c] for c in held) / len(held)).quantize(Decimal("0.01"))
    assert h.members.revenue == (sum(totals[c] for c in members) / len(members)).quantize(Decimal("0.01"))


def test_pnl_counts_what_messages_of_loyalty_triggers_cost(app):
    f.site(app)
    with transaction(app.sessions) as s:
        now = app.clock.now()
        messaging.set_price(s, site="shop", channel="email", data=PriceIn(price="0.03", currency="RUB"), now=now)
        messaging.set_policy(s, site="shop", data=PolicyIn(quiet_start=None, quiet_end=None), now=now)
        messaging.save_template(s, data=TemplateIn(site="shop", name="welcome", channel="email", subject="Hi",
                                                   body="You have points"), now=now)
        cascade = messaging.create_cascade(s, data=CascadeIn(site="shop", name="Welcome", steps=[
            {"channel": "email", "template": "welcome"}]), now=now)
        for name, event in (("loyal", "loyalty_joined"), ("other", "customer_created")):
            triggers.create_trigger(s, raw={"name": name, "events": [event], "actions": [
                {"type": "start_cascade", "cascade_id": cascade.id}]}, now=now)
    program(app)
    c = f.customer(app, email="a@example.com", consents={"email": {"granted": True, "source": "checkout"}})
    join(app, c)
    for _ in range(20):
        if app.worker.tick() == 0:
            break
    with transaction(app.sessions) as s:
        out = pnl.report(s, site="shop", start=None, end=app.clock.now() + timedelta(seconds=1), now=app.clock.now())
        assert s.scalar(select(func.count()).select_from(Message)) == 2  # one of each trigger
    assert out.communication_cost == {"RUB": Decimal("0.0300")}  # the customer_created trigger's message not counted
