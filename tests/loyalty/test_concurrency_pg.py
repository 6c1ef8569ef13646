"""16 concurrent charges on one account, each in its own thread and transaction, on real PostgreSQL: the account's
row lock queues them, so there is no overdraft and no lost update."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from retento.bootstrap import bootstrap
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.loyalty import service
from tests import factories as f
from tests.conftest import _truncate_pg
from tests.loyalty.helpers import CTX, account, credit, member, operations, program


@pytest.fixture
def app(pg_url, clock):
    _truncate_pg(pg_url)
    a = bootstrap(Settings(database_url=pg_url), clock=clock)
    yield a
    a.close()


@pytest.mark.postgres
def test_sixteen_concurrent_charges_never_overdraw(app):
    f.site(app, "shop")
    program(app)
    _, account_id = member(app)
    credit(app, account_id, "100", "a")
    credit(app, account_id, "55", "b")  # two lots: charges cross from one to the other
    start = threading.Barrier(16)
    done: list[str] = []
    refused: list[str] = []

    def charge(n: int) -> None:
        start.wait()
        try:
            with transaction(app.sessions) as s:
                service.charge(s, account_id=account_id, amount=Decimal(10), reason="race",
                               idempotency_key=f"race-{n}", ctx=CTX, now=app.clock.now())
            done.append(f"race-{n}")
        except DomainError as exc:
            assert exc.errors[0].field == "amount"
            refused.append(f"race-{n}")

    threads = [threading.Thread(target=charge, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(done) == 15 and len(refused) == 1  # 155 points pay for fifteen charges of 10
    out = account(app, account_id)
    assert out.balance == Decimal(5)
    assert all(lot.left >= 0 for lot in out.lots)
    charges = [o for o in operations(app, account_id) if o.kind == "charge"]
    assert sorted(o.idempotency_key for o in charges) == sorted(done)
    assert sum(o.amount for o in charges) == Decimal(-150)
