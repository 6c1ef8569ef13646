"""The worker's expiry run in parts (`runs.expire_in_parts`), on SQLite and PostgreSQL: the accounts in parts of
a few ids, on PostgreSQL two parts at once; the same operations as one run over every account; a run killed
between its parts is finished, with its own end and key, by the next call, and nothing burns twice."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from retento.core.changes import ChangeContext
from retento.core.db.transactions import transaction
from retento.loyalty import runs, service
from retento.loyalty.models import Operation, Run
from tests import factories as f
from tests.loyalty.helpers import account, charge, credit, member, operations, program


@pytest.fixture
def shop(app):
    f.site(app, "shop")
    program(app, expiry_days=30)
    return app


def _members(app: Any, n: int) -> list[int]:
    """`n` members with a lot of 10 + i points burning in 5 days and one of 100 burning in 60; the first has
    spent 4 points of its first lot."""
    ids = []
    for i in range(n):
        _, account_id = member(app)
        credit(app, account_id, str(10 + i), f"soon{i}", expires_in_days=5)
        credit(app, account_id, "100", f"late{i}", expires_in_days=60)
        ids.append(account_id)
    charge(app, ids[0], "4", "spent")
    return ids


def _expiries(app: Any) -> dict[int, list[Decimal]]:
    with transaction(app.sessions) as s:
        out: dict[int, list[Decimal]] = {}
        for account_id, amount in s.execute(select(Operation.account_id, Operation.amount)
                                            .where(Operation.kind == "expiry").order_by(Operation.id)):
            out.setdefault(account_id, []).append(Decimal(amount))
        return out


def _program(app: Any) -> int:
    with transaction(app.sessions) as s:
        return service.get_program(s, "shop").id


class Killed(Exception):
    pass


class DiesAfter:
    """A session factory whose process dies (raises) when it opens its transaction number `n + 1`."""

    def __init__(self, real: Any, n: int) -> None:
        self.real, self.kw, self.left = real, real.kw, n

    def __call__(self) -> Any:
        if self.left == 0:
            raise Killed
        self.left -= 1
        return self.real()


def test_parts_burn_what_one_run_would_and_the_lots_say_what_burnt(shop):
    ids = _members(shop, 7)
    shop.clock.advance(days=6)
    burnt = runs.expire_in_parts(shop.sessions, program_id=_program(shop), now=shop.clock.now(), part=2,
                                 connections=2)
    assert burnt == 7
    assert _expiries(shop) == {a: [Decimal(-(10 + i) + (4 if i == 0 else 0))] for i, a in enumerate(ids)}
    first = account(shop, ids[0])
    assert first.balance == Decimal(100)
    assert sorted((lot.left, lot.burnt) for lot in first.lots) == [(0, Decimal(6)), (100, 0)]
    assert sum(o.amount for o in operations(shop, ids[0])) == sum(lot.left for lot in first.lots)
    assert runs.expire_in_parts(shop.sessions, program_id=_program(shop), now=shop.clock.now(), part=2) == 0
    shop.clock.advance(days=60)
    assert runs.expire_in_parts(shop.sessions, program_id=_program(shop), now=shop.clock.now(), part=3, connections=2) == 7
    assert all(amounts[-1] == Decimal(-100) for amounts in _expiries(shop).values())


def test_a_run_killed_between_its_parts_is_finished_by_the_next_call_and_nothing_burns_twice(shop):
    ids = _members(shop, 7)
    shop.clock.advance(days=6)
    killed_at = shop.clock.now()
    with pytest.raises(Killed):  # opened the run, burnt two parts (4 accounts), died before the third
        runs.expire_in_parts(DiesAfter(shop.sessions, 3), program_id=_program(shop), now=killed_at, part=2)
    assert len(_expiries(shop)) == 4
    assert account(shop, ids[0]).balance == Decimal(100)  # a burnt lot is not usable, recorded or not
    shop.clock.advance(days=1)
    assert runs.expire_in_parts(shop.sessions, program_id=_program(shop), now=shop.clock.now(), part=2) == 3
    assert {a: len(x) for a, x in _expiries(shop).items()} == {a: 1 for a in ids}
    with transaction(shop.sessions) as s:
        recorded = [(r.kind, r.up_to, r.count) for r in s.scalars(select(Run).order_by(Run.id))
                    if r.kind.startswith("expiry")]
    assert recorded == [("expiry_open", killed_at, 0), ("expiry", killed_at, 3)]
    assert runs.expire_in_parts(shop.sessions, program_id=_program(shop), now=shop.clock.now(), part=2) == 0


def test_a_change_that_read_the_clock_before_a_lot_burnt_and_got_the_lock_after_the_run_does_not_touch_it(shop):
    """A burnt lot keeps what was left of it (no move of its own): a charge whose `now` is from before the lot's
    burn time, that got the account only after the run's part committed, takes from the lots not burnt."""
    ids = _members(shop, 1)
    shop.clock.advance(days=6)
    assert runs.expire_in_parts(shop.sessions, program_id=_program(shop), now=shop.clock.now()) == 1
    late = shop.clock.now() - timedelta(days=2)  # read before the first lot's burn time
    with transaction(shop.sessions) as s:
        service.charge(s, account_id=ids[0], amount=Decimal(8), reason="late", idempotency_key="late",
                       ctx=ChangeContext.system(), now=late)
    out = account(shop, ids[0])
    assert sorted((lot.left, lot.burnt) for lot in out.lots) == [(0, Decimal(6)), (Decimal(92), 0)]
    assert sum(o.amount for o in operations(shop, ids[0])) == sum(lot.left for lot in out.lots) == Decimal(92)
