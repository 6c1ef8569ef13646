"""Segments in a running application: an event subscriber queues affected customers, worker jobs re-evaluate them,
launches (a trigger switched on, a campaign started) are recorded as initiatives."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from retento.core import work
from retento.core.bus import Event
from retento.core.db.transactions import transaction
from retento.messaging import events as messaging_events
from retento.segments import analytics, events as ev, rollups, service
from retento.segments.schemas import InitiativeIn
from retento.sites import service as sites_service

if TYPE_CHECKING:
    from retento.app import App


def on_events(session: Session, events: list[Event]) -> None:
    """Apply the batch's orders to the category rollups (one-order deltas) and queue every affected customer."""
    rollups.apply_orders(session, [e.order_id for e in events if e.type in ev.ORDER_TYPES and e.order_id])
    service.mark_dirty(session, [c for e in events for c in ev.affected(e)], now=events[-1].occurred_at)


def on_event(session: Session, event: Event) -> None:
    on_events(session, [event])


def on_launch(session: Session, event: Event) -> None:
    """Record a launch (a trigger switched on, a campaign started) as a marketing initiative of each site it
    acts on: a campaign's site; a trigger's sites, or every site when it names none."""
    p = event.payload
    sites = sites_service.list_sites(session)
    if event.type == messaging_events.CAMPAIGN_STARTED:
        codes = [s.code for s in sites if s.id == event.site_id]
    else:
        known = [s.code for s in sites]
        codes = [c for c in p.get("sites") or known if c in known]
    for site in codes:
        analytics.record_initiative(session, source="automatic", now=event.occurred_at, data=InitiativeIn(
            site=site, kind=ev.KIND[event.type], name=p["name"][:255], started_at=event.occurred_at,
            idempotency_key=f"{event.type}:{event.id}:{site}"[:200]))


def install(app: App) -> None:
    app.bus.subscribe(ev.SUBSCRIBER, on_event, types=ev.RELEVANT, batch_handler=on_events)
    app.bus.subscribe("segments.initiatives", on_launch, types=ev.LAUNCHES)

    def dirty_batch() -> int:
        with transaction(app.sessions) as s:
            return service.process_dirty(s, now=app.clock.now(), limit=app.settings.segment_batch_size)

    def dirty() -> int:
        return work.drain(dirty_batch, batch=app.settings.segment_batch_size)

    def refresh() -> int:
        with transaction(app.sessions) as s:
            n = service.refresh_due(s, now=app.clock.now(),
                                    every=timedelta(minutes=app.settings.segment_refresh_minutes))
        with transaction(app.sessions) as s:
            n += analytics.refresh_rfm_due(s, now=app.clock.now(),
                                           every=timedelta(hours=app.settings.rfm_refresh_hours))
        with transaction(app.sessions) as s:
            n += analytics.refresh_cohorts_due(s, now=app.clock.now(),
                                               every=timedelta(minutes=app.settings.cohort_refresh_minutes))
        return n

    def catch_up() -> int:
        """Rollups and dynamic segments current with every event so far, worker or not: `retento import` and
        `retento rfm` call it (App.bring_up_to_date)."""
        return app.bus.dispatch(names=[ev.SUBSCRIBER]) + dirty()

    app.work.add(service.DIRTY.name, service.DIRTY)
    app.worker.add_job("segments.dirty", dirty)
    app.worker.add_job("segments.refresh", refresh)
    app.derived.add("segments", catch_up)
