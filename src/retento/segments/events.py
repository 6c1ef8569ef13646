"""Segment events, and the wiring: an event subscriber queues affected customers, worker jobs re-evaluate them."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from retento.bus import Event, EventType
from retento.customers import events as customer_events
from retento.db import transaction
from retento.messaging import events as messaging_events
from retento.orders import events as order_events
from retento.triggers import events as trigger_events

if TYPE_CHECKING:
    from retento.app import App

SEGMENT_ENTERED = "segment_entered"  # customer_id; payload: segment_id, segment_code, segment_name
SEGMENT_LEFT = "segment_left"

ALL = (SEGMENT_ENTERED, SEGMENT_LEFT)
TYPES = (EventType(SEGMENT_ENTERED, "customer", "a customer enters a segment"),
         EventType(SEGMENT_LEFT, "customer", "a customer leaves a segment"))
RELEVANT = (*order_events.ALL, *customer_events.ALL)
SUBSCRIBER = "segments"
LAUNCHES = (trigger_events.TRIGGER_ACTIVATED, messaging_events.CAMPAIGN_STARTED)  # onto the cohort timeline
KIND = {trigger_events.TRIGGER_ACTIVATED: "trigger", messaging_events.CAMPAIGN_STARTED: "campaign"}


def affected(event: Event) -> list[int]:
    """The customer an event is about, and an order's previous customer when the order moved."""
    ids = [event.customer_id]
    if event.type == order_events.ORDER_CHANGED:
        ids += [c["old"] for c in event.payload.get("changes", ()) if c.get("field") == "customer_id"]
    return [i for i in ids if i is not None]


def on_events(session: Session, events: list[Event]) -> None:
    """Queue every affected customer of a batch of events in one statement."""
    from retento.segments.service import mark_dirty

    mark_dirty(session, [c for e in events for c in affected(e)], now=events[-1].occurred_at)


def on_event(session: Session, event: Event) -> None:
    on_events(session, [event])


def on_launch(session: Session, event: Event) -> None:
    """Record a launch (a trigger switched on, a campaign started) as a marketing initiative of each site it
    acts on: a campaign's site; a trigger's sites, or every site when it names none."""
    from retento.segments.analytics import record_initiative
    from retento.segments.schemas import InitiativeIn
    from retento.sites.service import list_sites

    p = event.payload
    sites = list_sites(session)
    if event.type == messaging_events.CAMPAIGN_STARTED:
        codes = [s.code for s in sites if s.id == event.site_id]
    else:
        known = [s.code for s in sites]
        codes = [c for c in p.get("sites") or known if c in known]
    for site in codes:
        record_initiative(session, source="automatic", now=event.occurred_at, data=InitiativeIn(
            site=site, kind=KIND[event.type], name=p["name"][:255], started_at=event.occurred_at,
            idempotency_key=f"{event.type}:{event.id}:{site}"[:200]))


def install(app: App) -> None:
    from retento.segments import analytics, service

    app.bus.subscribe(SUBSCRIBER, on_event, types=RELEVANT, batch_handler=on_events)
    app.bus.subscribe("segments.initiatives", on_launch, types=LAUNCHES)

    def dirty() -> int:
        total = 0
        while True:
            with transaction(app.sessions) as s:
                done = service.process_dirty(s, now=app.clock.now(), limit=app.settings.segment_batch_size)
            total += done
            if done == 0:
                return total

    def refresh() -> int:
        with transaction(app.sessions) as s:
            n = service.refresh_due(s, now=app.clock.now(),
                                    every=timedelta(minutes=app.settings.segment_refresh_minutes))
        with transaction(app.sessions) as s:
            n += analytics.refresh_rfm_due(s, now=app.clock.now(),
                                           every=timedelta(hours=app.settings.rfm_refresh_hours))
        return n

    def catch_up() -> int:
        """Rollups and dynamic segments current with every event so far, worker or not: `retento import` and
        `retento rfm` call it (App.bring_up_to_date)."""
        return app.bus.dispatch(names=[SUBSCRIBER]) + dirty()

    app.worker.add_job("segments.dirty", dirty)
    app.worker.add_job("segments.refresh", refresh)
    app.derived.add("segments", catch_up)
