"""Event types the customers domain emits."""

from retento.core.bus import EventType

CUSTOMER_CREATED = "customer_created"
CUSTOMER_CHANGED = "customer_changed"  # payload: changes [{field, old, new}]
EMAIL_CONFIRMED = "email_confirmed"
SUBSCRIBED = "subscribed"  # payload: channel, source
UNSUBSCRIBED = "unsubscribed"  # payload: channel, source
CUSTOM = "custom"  # `name` holds the shop's own event name, payload is free-form
CUSTOMER_MERGED = "customer_merged"  # the kept customer; payload: merged_ids, merged_external_ids, moved {kind: n}

ALL = (CUSTOMER_CREATED, CUSTOMER_CHANGED, EMAIL_CONFIRMED, SUBSCRIBED, UNSUBSCRIBED, CUSTOM, CUSTOMER_MERGED)
TYPES = (
    EventType(CUSTOMER_CREATED, "customer", "a customer is created"),
    EventType(CUSTOMER_CHANGED, "customer", "fields of a customer change"),
    EventType(EMAIL_CONFIRMED, "customer", "the email-confirmed flag turns on"),
    EventType(SUBSCRIBED, "customer", "a channel consent is granted"),
    EventType(UNSUBSCRIBED, "customer", "a channel consent is withdrawn"),
    EventType(CUSTOM, "customer", "the shop's own event (`name`)"),
    EventType(CUSTOMER_MERGED, "customer", "duplicate customers are merged into this one"),
)
