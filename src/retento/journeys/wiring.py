"""Journeys in a running application: the bus subscriber (entries, exits, wakes) and the worker job that advances
due runs; `runner_of(app)` is the runner it installed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retento.core import work
from retento.journeys import events
from retento.journeys.compiled import Versions
from retento.journeys.entries import Entries
from retento.journeys.runner import QUEUE, Runner

if TYPE_CHECKING:
    from retento.app import App


def install(app: App) -> None:
    versions = Versions()
    entries = Entries(app.clock, versions)
    runner = Runner(app.sessions, app.clock, batch=app.settings.trigger_timer_batch, versions=versions)
    app.bus.subscribe(events.SUBSCRIBER, lambda session, ev: entries.on_batch(session, [ev]),
                      batch_handler=entries.on_batch, interest=entries.interest)
    app.work.add(QUEUE.name, QUEUE)
    app.worker.add_job("journeys", runner.advance_due, fair=runner.advance_slice,
                       due_in=lambda: work.due_in(app.sessions, QUEUE, now=app.clock.now()))
    app.journeys = runner  # type: ignore[attr-defined]


def runner_of(app: App) -> Runner:
    return app.journeys  # type: ignore[attr-defined]
