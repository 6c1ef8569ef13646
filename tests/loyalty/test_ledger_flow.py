"""The loyalty core on SQLite and PostgreSQL: joining, welcome bonus, credit and charge with idempotency keys,
accrual on completion (pending, then usable), cancel and return, expiry, levels, events, the trigger action."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from retento.core.db.transactions import transaction
from retento.core.errors import Conflict, DomainError
from retento.loyalty import events as ev, runs, service
from retento.loyalty.schemas import JoinIn
from tests import factories as f
from tests.loyalty.helpers import (
    CTX,
    account,
    charge,
    credit,
    events,
    member,
    operations,
    order,
    program,
    set_status,
)


@pytest.fixture
def shop(app):
    f.site(app, "shop")
    return app


def test_join_credits_the_welcome_bonus_once_and_emits_events(shop):
    program(shop, welcome_bonus=Decimal(100), expiry_days=30)
    customer_id, account_id = member(shop, phone="+79161234567")
    with transaction(shop.sessions) as s:  # by phone, again: the same account, nothing credited twice
        again, created = service.join(s, data=JoinIn(site="shop", phone="8 916 123-45-67"), ctx=CTX,
                                      now=shop.clock.now())
    assert (again.id, created) == (account_id, False)
    out = account(shop, account_id)
    assert out.balance == Decimal("100.00") and out.pending == 0 and out.currency == "RUB"
    assert [o.kind for o in operations(shop, account_id)] == ["welcome"]
    assert events(shop, ev.JOINED)[0]["customer_id"] == customer_id
    assert events(shop, ev.WELCOME_BONUS)[0]["amount"] == "100.00"


def test_credit_and_charge_are_idempotent_and_never_overdraw(shop):
    program(shop, balance_thresholds=[Decimal(150)])
    _, account_id = member(shop)
    first = credit(shop, account_id, "200", "k1")
    assert credit(shop, account_id, "200", "k1").id == first.id  # a replay: the first operation
    with pytest.raises(Conflict):
        credit(shop, account_id, "300", "k1")
    c = charge(shop, account_id, "50.5", "c1")
    assert charge(shop, account_id, "50.5", "c1").id == c.id
    with pytest.raises(DomainError) as exc:
        charge(shop, account_id, "150", "c2")
    assert exc.value.errors[0].field == "amount"
    assert account(shop, account_id).balance == Decimal("149.50")
    assert [e["threshold"] for e in events(shop, ev.BALANCE_PASSED)] == ["150.00"]


def test_charge_takes_the_oldest_lots_first_and_expiry_burns_the_rest(shop):
    program(shop, expiry_days=30, warn_days=[7])
    _, account_id = member(shop)
    credit(shop, account_id, "100", "a", expires_in_days=10)
    shop.clock.advance(days=1)
    credit(shop, account_id, "100", "b", expires_in_days=5)   # burns first, though credited later
    credit(shop, account_id, "100", "c")
    charge(shop, account_id, "120", "x")
    lots = {lot.expires_at - lot.active_from: lot.left for lot in account(shop, account_id).lots}
    assert lots == {timedelta(days=5): 0, timedelta(days=10): 80, timedelta(days=30): 100}
    with transaction(shop.sessions) as s:  # the second lot was credited within 7 days of burning: spent already
        assert runs.warn(s, program=service.get_program(s, "shop"), now=shop.clock.now()) == 0
    shop.clock.advance(days=3)  # the first lot burns in 7 days from now
    credit(shop, account_id, "5", "d", expires_in_days=2)  # credited within the horizon
    with transaction(shop.sessions) as s:
        assert runs.warn(s, program=service.get_program(s, "shop"), now=shop.clock.now()) == 1
    assert [(e["amount"], e["days"]) for e in events(shop, ev.WILL_BURN)] == [("85.00", 7)]
    shop.clock.advance(days=7)
    assert runs.run_all(shop.sessions, now=shop.clock.now()) >= 1
    assert runs.run_all(shop.sessions, now=shop.clock.now()) == 0  # nothing more to burn
    out = account(shop, account_id)
    assert out.balance == Decimal(100)
    assert [(o.kind, o.amount) for o in operations(shop, account_id)][-1] == ("expiry", Decimal("-85.00"))


def test_a_completed_order_earns_pending_points_and_a_cancel_takes_them_back(shop):
    program(shop, percent=Decimal(5), activation_days=14, categories={"tea": {"percent": Decimal(10)},
                                                                      "gift": {"fixed_per_unit": Decimal(7)}})
    customer_id, account_id = member(shop)
    order_id = order(shop, customer_id, ("tea", "1000", 1), ("coffee", "1000", 2), ("gift", "10", 3))
    set_status(shop, order_id, "complete")
    out = account(shop, account_id)
    assert (out.balance, out.pending, out.purchases) == (0, Decimal("221.00"), Decimal("3030.00"))  # 100+100+21
    shop.clock.advance(days=14)
    assert account(shop, account_id).balance == Decimal("221.00")
    charge(shop, account_id, "21", "spend")
    set_status(shop, order_id, "no-product")  # cancelled: what is left of the accrual and 21 more come back
    out = account(shop, account_id)
    assert (out.balance, out.pending, out.purchases) == (0, 0, 0)
    reversal = operations(shop, account_id)[-1]
    assert (reversal.kind, reversal.amount) == ("reversal", Decimal("-200.00"))
    assert reversal.details == {"not_recovered": "21.00"}
    set_status(shop, order_id, "no-product")  # nothing more happens
    assert len(operations(shop, account_id)) == 3


def test_points_paying_for_an_order_come_back_in_proportion_to_a_return(shop):
    program(shop, percent=Decimal(10), activation_days=0, max_redeem_share=Decimal("0.5"),
            min_order_sum=Decimal(100))
    customer_id, account_id = member(shop)
    credit(shop, account_id, "500", "gift")
    order_id = order(shop, customer_id, ("shoes", "200", 4))
    with pytest.raises(DomainError) as exc:
        charge(shop, account_id, "401", "pay", order_id=order_id)
    assert exc.value.errors[0].field == "amount"
    charge(shop, account_id, "400", "pay", order_id=order_id)
    set_status(shop, order_id, "complete")  # paid 800 - 400 points: earns 40
    assert account(shop, account_id).balance == Decimal("140.00")
    f.edit_order(shop, order_id, items=[{"name": "Item 0", "price": "200", "quantity": 2, "category": "shoes"}])
    shop.app_bus = shop.bus.dispatch()
    out = account(shop, account_id)
    # half returned: half of the 400 points come back; accrual now 10% of (400 - 200) = 20
    assert out.balance == Decimal("320.00")
    assert [o.kind for o in operations(shop, account_id)][-2:] == ["refund", "reversal"]


def test_small_orders_cannot_be_paid_with_points(shop):
    program(shop, min_order_sum=Decimal(1000))
    customer_id, account_id = member(shop)
    credit(shop, account_id, "50", "gift")
    order_id = order(shop, customer_id, ("x", "999", 1))
    with pytest.raises(DomainError) as exc:
        charge(shop, account_id, "10", "pay", order_id=order_id)
    assert exc.value.errors[0].field == "order_id"
    big = order(shop, customer_id, ("x", "5000", 1))
    set_status(shop, big, "no-product")
    with pytest.raises(DomainError) as exc:  # a cancelled order is paid for by nothing
        charge(shop, account_id, "10", "pay", order_id=big)
    assert exc.value.errors[0].reason == f"order {big} is cancelled"


def test_levels_move_up_with_purchases_and_down_when_they_age_out(shop):
    program(shop, activation_days=0, level_period_days=30, levels=[
        {"code": "base", "name": "Base", "threshold": 0, "percent": 1},
        {"code": "gold", "name": "Gold", "threshold": 1000, "percent": 10}])
    customer_id, account_id = member(shop)
    assert account(shop, account_id).level == "base"
    set_status(shop, order(shop, customer_id, ("x", "1000", 1)), "complete")
    assert account(shop, account_id).level == "gold"
    set_status(shop, order(shop, customer_id, ("x", "1000", 1)), "complete")
    assert account(shop, account_id).balance == Decimal("110.00")  # 1% of the first, 10% at gold
    shop.clock.advance(days=31)
    runs.run_all(shop.sessions, now=shop.clock.now())
    assert account(shop, account_id).level == "base"
    assert [(e["old"], e["new"], e["direction"]) for e in events(shop, ev.LEVEL_CHANGED)] == [
        (None, "base", "up"), ("base", "gold", "up"), ("gold", "base", "down")][1:]


def test_birthday_and_limited_time_multipliers(shop):
    now = shop.clock.now()
    program(shop, percent=Decimal(10), activation_days=0, birthday_multiplier=Decimal(2), birthday_days=3,
            multipliers=[{"name": "Black Friday", "starts_at": now, "ends_at": now + timedelta(days=1),
                          "multiplier": Decimal("1.5")}])
    customer_id, account_id = member(shop, birthday=(now + timedelta(days=2)).date().isoformat())
    set_status(shop, order(shop, customer_id, ("x", "100", 1)), "complete")
    assert account(shop, account_id).balance == Decimal("30.00")
    accrual = operations(shop, account_id)[-1]
    assert accrual.kind == "accrual" and accrual.details["multipliers"] == ["birthday", "Black Friday"]
    member(shop, birthday=(now + timedelta(days=3)).date().isoformat())  # the multiplier starts today
    member(shop, birthday=(now + timedelta(days=5)).date().isoformat())  # in two days
    with transaction(shop.sessions) as s:
        assert runs.birthdays(s, program=service.get_program(s, "shop"), now=now) == 1
        assert runs.birthdays(s, program=service.get_program(s, "shop"), now=now + timedelta(hours=1)) == 0
        assert runs.birthdays(s, program=service.get_program(s, "shop"), now=now + timedelta(days=3)) == 1
    assert [(e["from"], e["until"]) for e in events(shop, ev.BIRTHDAY)] == [
        (now.date().isoformat(), (now + timedelta(days=6)).date().isoformat()),
        ((now + timedelta(days=2)).date().isoformat(), (now + timedelta(days=8)).date().isoformat())]


def test_blocked_accounts_cannot_spend(shop):
    program(shop)
    _, account_id = member(shop)
    credit(shop, account_id, "10", "k")
    with transaction(shop.sessions) as s:
        service.set_status(s, account=service.get_account(s, account_id), status="blocked", now=shop.clock.now())
    with pytest.raises(Conflict):
        charge(shop, account_id, "5", "c")


def test_the_trigger_action_credits_once_per_firing(shop):
    from retento.triggers.actions import ActionContext

    program(shop)
    customer_id, account_id = member(shop)
    spec = shop.parts.actions["loyalty_points"]
    params = spec.schema.model_validate({"operation": "credit", "amount": "25", "reason": "review"})
    for _ in range(2):
        with transaction(shop.sessions) as s:
            a = ActionContext(session=s, now=shop.clock.now(), ctx=CTX, trigger_id=1, trigger_name="t", key="t1:e9",
                              event={}, customer_id=customer_id)
            spec.handler(a, params)
    assert account(shop, account_id).balance == Decimal(25)
