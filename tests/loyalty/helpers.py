"""Loyalty test data through the public services."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from retento.bootstrap import App
from retento.core.bus import Event
from retento.core.changes import ChangeContext, Source
from retento.core.db.transactions import transaction
from retento.loyalty import service
from retento.loyalty.schemas import JoinIn, ProgramIn, ProgramSettings
from tests import factories as f

CTX = ChangeContext.system(Source.API)


def program(app: App, site: str = "shop", **settings: Any) -> None:
    with transaction(app.sessions) as s:
        service.set_program(s, site=site, data=ProgramIn(name="Club", currency="RUB",
                                                         settings=ProgramSettings(**settings)), now=app.clock.now())


def member(app: App, site: str = "shop", **customer: Any) -> tuple[int, int]:
    """(customer id, account id) of a new member."""
    customer_id = f.customer(app, site=site, **customer)
    with transaction(app.sessions) as s:
        account, _ = service.join(s, data=JoinIn(site=site, customer_id=customer_id), ctx=CTX, now=app.clock.now())
        return customer_id, account.id


def account(app: App, account_id: int, lots: bool = True) -> Any:
    with transaction(app.sessions) as s:
        return service.account_out(s, service.get_account(s, account_id), now=app.clock.now(), with_lots=lots)


def credit(app: App, account_id: int, amount: str, key: str, **kw: Any) -> Any:
    with transaction(app.sessions) as s:
        return service.credit(s, account_id=account_id, amount=Decimal(amount), reason="test", idempotency_key=key,
                              ctx=CTX, now=app.clock.now(), **kw)


def charge(app: App, account_id: int, amount: str, key: str, **kw: Any) -> Any:
    with transaction(app.sessions) as s:
        return service.charge(s, account_id=account_id, amount=Decimal(amount), reason="test", idempotency_key=key,
                              ctx=CTX, now=app.clock.now(), **kw)


def operations(app: App, account_id: int) -> list[Any]:
    with transaction(app.sessions) as s:
        ops = service.list_operations(s, account_id=account_id, limit=1000)
        s.expunge_all()
        return ops


def events(app: App, type_: str) -> list[dict[str, Any]]:
    with transaction(app.sessions) as s:
        return [{"customer_id": e.customer_id, **e.payload}
                for e in s.scalars(select(Event).where(Event.type == type_).order_by(Event.id))]


def order(app: App, customer_id: int, *items: tuple[str, str, int], status: str = "new", **kw: Any) -> int:
    """An order of (category, price, quantity) lines."""
    lines = [{"name": f"Item {n}", "price": price, "quantity": qty, "category": cat}
             for n, (cat, price, qty) in enumerate(items)]
    return f.order(app, customer={"id": customer_id}, items=lines, status=status, **kw)


def set_status(app: App, order_id: int, status: str) -> None:
    f.edit_order(app, order_id, status=status)
    app.bus.dispatch()
