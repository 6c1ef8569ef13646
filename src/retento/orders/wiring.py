"""Orders in a running application: the revenue slots the dashboard reads are kept from order events, and the
worker moves the live part's start up to the current slot (orders.revenue)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from retento.core import work
from retento.core.bus import Event
from retento.core.db.transactions import transaction
from retento.orders import events as ev, revenue

if TYPE_CHECKING:
    from retento.app import App

SUBSCRIBER = "orders.revenue"


def on_events(session: Session, events: list[Event]) -> None:
    revenue.apply_orders(session, [e.order_id for e in events if e.order_id])


def on_event(session: Session, event: Event) -> None:
    on_events(session, [event])


def install(app: App) -> None:
    # "latest": what was written before the subscriber's cursor existed is read by `advance` (it runs after the
    # cursor is made, below); nothing is stored before the first advance
    app.bus.subscribe(SUBSCRIBER, on_event, types=ev.ALL, batch_handler=on_events, start="latest")

    def step() -> int:
        with transaction(app.sessions) as s:
            return revenue.advance(s, now=app.clock.now())

    def catch_up() -> int:
        """Every order event applied, then the stored slots up to the current one."""
        return app.bus.dispatch(names=[SUBSCRIBER]) + work.drain(step, batch=revenue.CATCH_UP_SLOTS)

    def turn() -> int:
        """The worker's fair turn: a batch of events, then one statement of slots."""
        return app.bus.dispatch(names=[SUBSCRIBER], max_batches=1) + step()

    app.worker.add_job("orders.revenue", catch_up, fair=turn)
    app.derived.add("revenue", catch_up)
