"""The events journeys follow (the `journeys` bus subscriber): entries, exits, and what waiting steps wait for."""

from __future__ import annotations

from retento.customers import events as customer_events
from retento.messaging import events as messaging_events
from retento.orders import events as order_events
from retento.segments import events as segment_events

SUBSCRIBER = "journeys"
# Entries may name any event about a customer or an order (`entry.kind: event`); exits and waits use these.
FOLLOWED = (customer_events.CUSTOMER_CREATED, customer_events.EMAIL_CONFIRMED, customer_events.UNSUBSCRIBED,
            customer_events.CUSTOM, order_events.ORDER_CREATED, segment_events.SEGMENT_ENTERED,
            segment_events.SEGMENT_LEFT, messaging_events.MESSAGE_READ, messaging_events.MESSAGE_CLICKED)
