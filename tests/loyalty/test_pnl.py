"""The program's P&L against a hand-computed shop on both databases."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from retento.core.db.transactions import transaction
from retento.loyalty import pnl, runs, service
from retento.loyalty.schemas import JoinIn
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
