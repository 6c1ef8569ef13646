"""Segment event types, and which events affect which customers (`wiring` subscribes to them)."""

from __future__ import annotations

from retento.core.bus import Event, EventType
from retento.customers import events as customer_events
from retento.messaging import events as messaging_events
from retento.orders import events as order_events
from retento.triggers import events as trigger_events

SEGMENT_ENTERED = "segment_entered"  # customer_id; payload: segment_id, segment_code, segment_name
SEGMENT_LEFT = "segment_left"

ALL = (SEGMENT_ENTERED, SEGMENT_LEFT)
TYPES = (EventType(SEGMENT_ENTERED, "customer", "a customer enters a segment"),
         EventType(SEGMENT_LEFT, "customer", "a customer leaves a segment"))
ORDER_TYPES = frozenset(order_events.ALL)  # their orders go to the category rollups
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

