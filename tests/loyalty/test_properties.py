"""Property tests over random sequences of credits, charges (free and paying for orders), completed orders,
cancels, partial returns, expiry runs and replays, on a real database (SQLite): after every step the balance is
the sum of the live lots and never negative, every operation's amount is what it moved (points are neither made
nor lost), a charge takes the soonest-burning lots first, an expiry run leaves nothing in burnt lots, and a replayed
idempotency key changes nothing."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.loyalty import ledger, runs, service
from retento.loyalty.models import Lot, Move
from tests import factories as f
from tests.loyalty.helpers import account, charge, credit, member, operations, order, program, set_status

amounts = st.integers(1, 40000).map(lambda c: Decimal(c) / 100)
steps = st.lists(st.one_of(
    st.tuples(st.just("credit"), amounts, st.integers(1, 60)),
    st.tuples(st.just("charge"), amounts),
    st.tuples(st.just("order"), st.integers(1, 2000), st.integers(1, 3)),
    st.tuples(st.just("pay"), st.integers(0, 5), amounts),
    st.tuples(st.just("cancel"), st.integers(0, 5)),
    st.tuples(st.just("return"), st.integers(0, 5)),
    st.tuples(st.just("advance"), st.integers(0, 40)),
    st.tuples(st.just("replay"),),
), min_size=1, max_size=14)
sites = itertools.count()


def check(app, account_id: int) -> None:
    now = app.clock.now()
    out = account(app, account_id)
    states = [ledger.LotState(lot.id, lot.left, lot.active_from, lot.expires_at, lot.order_id) for lot in out.lots]
    assert out.balance == ledger.balance(states, now) >= 0
    assert all(0 <= lot.left <= lot.amount for lot in out.lots)
    assert sum((o.amount for o in operations(app, account_id)), Decimal(0)) == sum((lot.left for lot in out.lots),
                                                                                   Decimal(0))


def oldest_first(app, account_id: int, operation_id: int) -> None:
    """No live lot burning before the latest-burning lot this charge took from has anything left."""
    with transaction(app.sessions) as s:
        touched = set(s.scalars(select(Move.lot_id).where(Move.operation_id == operation_id)))
        states = {lot.id: lot for lot in service.lot_states(s, account_id)}
        assert s.scalar(select(Lot.id).where(Lot.id.in_(touched or {0}), Lot.account_id != account_id)) is None
    now = app.clock.now()
    if touched:
        last = max(ledger.burn_order(states[i]) for i in touched)
        assert not [lot for lot in states.values()
                    if lot.live(now) and ledger.burn_order(lot) < last and lot.left > 0 and lot.id not in touched]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=steps)
def test_ledger_invariants_hold_over_random_sequences(app, steps):
    code = f"s{next(sites)}"
    f.site(app, code)
    program(app, code, percent=Decimal(7), activation_days=2, expiry_days=30, max_redeem_share=Decimal("0.5"))
    customer_id, account_id = member(app, code)
    orders: list[tuple[int, int, int]] = []  # (order id, price, quantity)
    last: tuple | None = None
    for n, step in enumerate(steps):
        kind = step[0]
        before = account(app, account_id, lots=False).balance
        if kind == "credit":
            last = ("credit", str(step[1]), f"c{n}", {"expires_in_days": step[2]})
            credit(app, account_id, str(step[1]), f"c{n}", expires_in_days=step[2])
        elif kind in ("charge", "pay"):
            amount = step[1] if kind == "charge" else step[2]
            extra = {}
            if kind == "pay" and orders:
                extra = {"order_id": orders[step[1] % len(orders)][0]}
            try:
                op = charge(app, account_id, str(amount), f"x{n}", **extra)
            except DomainError as exc:
                assert exc.errors[0].field in ("amount", "order_id")
                if not extra:
                    assert amount > before
            else:
                assert amount <= before
                oldest_first(app, account_id, op.id)
                last = ("charge", str(amount), f"x{n}", extra)
        elif kind == "order":
            oid = order(app, customer_id, ("x", str(step[1]), step[2]), site=code)
            set_status(app, oid, "complete")
            orders.append((oid, step[1], step[2]))
        elif kind == "cancel" and orders:
            set_status(app, orders[step[1] % len(orders)][0], "no-product")
        elif kind == "return" and orders:
            oid, price, qty = orders[step[1] % len(orders)]
            if qty > 1:
                f.edit_order(app, oid, items=[{"name": "Item 0", "price": str(price), "quantity": qty - 1,
                                               "category": "x"}])
                app.bus.dispatch()
                orders[step[1] % len(orders)] = (oid, price, qty - 1)
        elif kind == "advance":
            app.clock.advance(days=step[1])
            with transaction(app.sessions) as s:
                runs.expire(s, program=service.get_program(s, code), now=app.clock.now())
            now = app.clock.now()
            assert not [lot for lot in account(app, account_id).lots if lot.expires_at <= now and lot.left > 0]
        elif kind == "replay" and last is not None:
            count = len(operations(app, account_id))
            fn = credit if last[0] == "credit" else charge
            fn(app, account_id, last[1], last[2], **last[3])
            assert len(operations(app, account_id)) == count
            assert account(app, account_id, lots=False).balance == before
        check(app, account_id)
