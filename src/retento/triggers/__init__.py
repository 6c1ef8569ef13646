"""Triggers ("robots"): event -> condition -> actions, now or after a delay. Wired by `install(app)`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retento.app import App
    from retento.triggers.engine import Engine


def install(app: App) -> None:
    from sqlalchemy import event

    from retento.triggers.engine import Engine

    s = app.settings
    engine = Engine(app.sessions, app.clock, max_depth=s.trigger_max_depth, batch=s.trigger_timer_batch)
    # one event at a time (the bus's fallback) also goes through on_batch: it restores the buffer on failure
    app.bus.subscribe("triggers", lambda session, ev: engine.on_batch(session, [ev]), batch_handler=engine.on_batch)
    event.listen(app.sessions, "before_commit", engine.flush)
    event.listen(app.sessions, "after_transaction_end", _forget_buffer)
    app.worker.add_job("trigger_timers", engine.fire_due, fair=engine.fire_slice)
    app.triggers = engine  # type: ignore[attr-defined]


def _forget_buffer(session, transaction) -> None:
    """The outermost transaction ended: after a commit the buffer is already stored; after a rollback it goes
    with the rest of the transaction (a savepoint's rollback keeps it: other events' rows are in it)."""
    if transaction.parent is None:
        session.info.pop("trigger_buffer", None)


def engine_of(app: App) -> Engine:
    return app.triggers  # type: ignore[attr-defined]
