"""Event types the customers domain emits."""

CUSTOMER_CREATED = "customer_created"
CUSTOMER_CHANGED = "customer_changed"  # payload: changes [{field, old, new}]
EMAIL_CONFIRMED = "email_confirmed"
SUBSCRIBED = "subscribed"  # payload: channel, source
UNSUBSCRIBED = "unsubscribed"  # payload: channel, source
CUSTOM = "custom"  # `name` holds the shop's own event name, payload is free-form

ALL = (CUSTOMER_CREATED, CUSTOMER_CHANGED, EMAIL_CONFIRMED, SUBSCRIBED, UNSUBSCRIBED, CUSTOM)
