"""Event types the orders domain emits."""

from retento.core.bus import EventType

ORDER_CREATED = "order_created"  # payload: order snapshot
ORDER_CHANGED = "order_changed"  # payload: changes [{field, old, new}]
ORDER_STATUS_CHANGED = "order_status_changed"  # payload: old, new, old_group, new_group

ALL = (ORDER_CREATED, ORDER_CHANGED, ORDER_STATUS_CHANGED)
TYPES = (
    EventType(ORDER_CREATED, "order", "an order is created"),
    EventType(ORDER_CHANGED, "order", "fields of an order change"),
    EventType(ORDER_STATUS_CHANGED, "order", "the status of an order changes"),
)
