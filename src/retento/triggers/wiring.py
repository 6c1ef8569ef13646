"""The trigger engine in a running application: `install(app)` subscribes it to the bus and adds its worker job;
`engine_of(app)` is the engine it installed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import event

from retento.core import work
from retento.triggers import timers
from retento.triggers.engine import Engine

if TYPE_CHECKING:
    from retento.app import App

PARTITIONS = 4  # of the trigger subscriber on PostgreSQL: workers that evaluate events at once


def install(app: App) -> None:
    s = app.settings
    engine = Engine(app.sessions, app.clock, max_depth=s.trigger_max_depth, batch=s.trigger_timer_batch)
    # one event at a time (the bus's fallback) also goes through on_batch: it restores the buffer on failure.
    # PostgreSQL: partitioned by the run's entity (the order, else the customer), so up to PARTITIONS workers
    # evaluate at once while each order's and customer's events keep their order; SQLite has one writer.
    partitions = PARTITIONS if app.engine.dialect.name == "postgresql" else 1
    app.bus.subscribe("triggers", lambda session, ev: engine.on_batch(session, [ev]), batch_handler=engine.on_batch,
                      partitions=partitions, partition_by=("order_id", "customer_id") if partitions > 1 else (),
                      interest=engine.interest)
    event.listen(app.sessions, "before_commit", engine.flush)
    event.listen(app.sessions, "after_transaction_end", _forget_buffer)
    app.work.add(timers.QUEUE.name, timers.QUEUE)
    app.worker.add_job("trigger_timers", engine.fire_due, fair=engine.fire_slice,
                       due_in=lambda: work.due_in(app.sessions, timers.QUEUE, now=app.clock.now()))
    app.triggers = engine  # type: ignore[attr-defined]


def _forget_buffer(session, transaction) -> None:
    """The outermost transaction ended: after a commit the buffer is already stored; after a rollback it goes
    with the rest of the transaction (a savepoint's rollback keeps it: other events' rows are in it)."""
    if transaction.parent is None:
        session.info.pop("trigger_buffer", None)


def engine_of(app: App) -> Engine:
    return app.triggers  # type: ignore[attr-defined]
