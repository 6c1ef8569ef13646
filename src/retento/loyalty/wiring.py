"""Loyalty in a running application: follows order events (accrual on completion, reversal and refund on cancel
or return), runs expiry, burn warnings and the level review as a worker job, and gives triggers the
`loyalty_points` action."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from retento.core.bus import Event
from retento.core.changes import ActorType, ChangeContext, Source
from retento.core.db import bulk
from retento.core.errors import DomainError
from retento.loyalty import accrual, events as ev, runs, service
from retento.loyalty.models import Account, Program
from retento.loyalty.schemas import Points
from retento.triggers.actions import ActionContext, action

if TYPE_CHECKING:
    from retento.app import App


# what both handlers read of an order event with the batch (not its payload: no JSON read and converted; not its
# change context either: the accrual in SQL copies it, and `_contexts` reads it for the events that need it: four
# columns of 500 events cost ~0.3 ms a batch on SQLite)
EVENT_COLUMNS = ("id", "occurred_at", "site_id", "customer_id", "order_id")
_E = Event.__table__
_CONTEXTS = select(_E.c.id, _E.c.source, _E.c.actor_type, _E.c.actor_id, _E.c.depth).where(
    _E.c.id.in_(bindparam("ids", expanding=True)))


def _contexts(session: Session, ids: list[int]) -> dict[int, ChangeContext]:
    """The change context of each event of `ids` (whoever made the change the event records)."""
    return {i: ChangeContext(Source(source), ActorType(actor_type), actor_id, depth)
            for i, source, actor_type, actor_id, depth in session.execute(_CONTEXTS, {"ids": ids})} if ids else {}


def on_order_event(session: Session, event: Event) -> None:
    """Bring the member's points in line with the order; the event id keys each change (a redelivery of the
    event changes nothing)."""
    _on_order_event(session, event, None)


def _on_order_event(session: Session, event: Event, ctx: ChangeContext | None) -> None:
    """`on_order_event` with the event's change context when the caller has read it (`ctx`)."""
    if event.order_id is None or event.customer_id is None or event.site_id is None:
        return
    if service.account_of(session, site_id=event.site_id, customer_id=event.customer_id) is None:
        return  # not a member: one indexed lookup, no order read
    ctx = ctx or _contexts(session, [event.id])[event.id]
    service.sync_order(session, order_id=event.order_id, ctx=ctx, now=event.occurred_at, key=f"event:{event.id}")


def on_order_events(session: Session, events: list[Event]) -> None:
    """A batch of order events: the members' completed orders without points yet earn them in a few statements,
    computed in SQL where the program's rule allows (`accrual.accrue`), else in Python (`runs.accrue`); the
    members' levels are reviewed once for both; every other member's event goes through `on_order_event`, in
    order. On PostgreSQL the members' accounts are locked first, in id order."""
    wanted = [(k, e) for k, e in zip(accrual.keys(events), events, strict=True)
              if k.order_id is not None and k.customer_id is not None and k.site_id is not None]
    if not wanted:
        return
    postgres = session.get_bind().dialect.name == "postgresql"
    members = _members(session, [k for k, _ in wanted], lock=True) if postgres else None
    # a member with two events in the batch is brought in line one by one (`runs.accrue` leaves both)
    seen = Counter(map(itemgetter(1, 2), map(itemgetter(0), wanted)))
    programs = accrual.programs_of(session, {k.site_id for k, _ in wanted})
    done = accrual.accrue(session, [k for k, _ in wanted if seen[k[1], k[2]] == 1
                                    and (members is None or (k[1], k[2]) in members)], programs)
    taken = {a.event_id for a in done}
    others = [e for k, e in wanted if k.id not in taken]
    if others and members is None:
        members = _members(session, [k for k, _ in wanted if k.id not in taken], lock=False)
    contexts = _contexts(session, [e.id for e in others])
    dues = [runs.Due(e.order_id, members[(e.site_id, e.customer_id)], f"event:{e.id}", contexts[e.id],
                     e.occurred_at, e.id)
            for e in others if members is not None and (e.site_id, e.customer_id) in members]
    left, made = runs.accrue(session, dues)

    def ctx_of(a: accrual.Accrued) -> ChangeContext:
        if a.origin is not None:
            return a.origin.ctx
        if a.event_id not in contexts:  # the first member whose level moves: the contexts of every SQL accrual
            contexts.update(_contexts(session, [d.event_id for d in done]))
        return contexts[a.event_id]

    accrual.review(session, sorted([*done, *made], key=itemgetter(0)) if made else done, ctx_of, programs)
    keys = {d.key for d in left}
    for e in others:
        if f"event:{e.id}" in keys:
            _on_order_event(session, e, contexts[e.id])


def _members(session: Session, events: list[accrual.Key], *, lock: bool) -> dict[tuple[int, int], int]:
    """(site, customer) -> account of the events' members; `lock`: their accounts locked, in id order."""
    q = (select(Account.id, Program.site_id, Account.customer_id).join(Program, Program.id == Account.program_id)
         .where(bulk.one_of(session, Account.customer_id, [e.customer_id for e in events])))
    if lock:
        q = q.order_by(Account.id).with_for_update(of=Account)
    return {(site_id, customer_id): account_id for account_id, site_id, customer_id in session.execute(q).all()}


class LoyaltyPoints(BaseModel):
    """Credit or charge points on the customer's loyalty account (once per trigger firing)."""

    model_config = ConfigDict(extra="forbid")
    operation: str = Field(pattern=r"^(credit|charge)$")
    amount: Points
    reason: str = Field(min_length=1, max_length=500)
    expires_in_days: int | None = Field(None, ge=1, le=3650, description="credit only")


def _points(a: ActionContext, p: LoyaltyPoints) -> dict[str, Any]:
    customer = a.need_customer()
    account = service.account_of(a.session, site_id=customer.site_id, customer_id=customer.id)
    if account is None:
        raise DomainError.one("customer", "the customer is not a loyalty member")
    common: dict[str, Any] = {"account_id": account.id, "amount": Decimal(p.amount), "reason": p.reason,
                              "idempotency_key": f"trigger:{a.key}:{p.operation}", "ctx": a.ctx, "now": a.now}
    if p.operation == "credit":
        op = service.credit(a.session, expires_in_days=p.expires_in_days, **common)
    else:
        op = service.charge(a.session, **common)
    return {"operation_id": op.id, "amount": str(op.amount)}


LOYALTY_POINTS = action("loyalty_points", LoyaltyPoints, _points, changes=lambda p: ())  # see bootstrap.assemble


def install(app: App) -> None:
    app.bus.subscribe(ev.SUBSCRIBER, on_order_event, types=ev.ORDER_EVENTS, batch_handler=on_order_events,
                      columns=EVENT_COLUMNS)

    def periodic() -> int:
        return runs.run_all(app.sessions, now=app.clock.now(), every=runs.EVERY,
                            part=app.settings.loyalty_expiry_part,
                            connections=app.settings.loyalty_expiry_connections)

    app.worker.add_job("loyalty.runs", periodic)

