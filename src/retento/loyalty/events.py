"""Loyalty event types (about the member customer) and the order events the program follows."""

from __future__ import annotations

from retento.core.bus import EventType
from retento.orders import events as order_events

JOINED = "loyalty_joined"  # payload: account_id, site
WELCOME_BONUS = "loyalty_welcome_bonus_credited"  # payload: account_id, amount
LEVEL_CHANGED = "loyalty_level_changed"  # payload: account_id, old, new, direction (up / down)
WILL_BURN = "loyalty_points_will_burn"  # payload: account_id, amount, burn_at, days
BALANCE_PASSED = "loyalty_balance_passed"  # payload: account_id, threshold, balance
BIRTHDAY = "loyalty_birthday_multiplier_active"  # payload: account_id, multiplier, from, until

ALL = (JOINED, WELCOME_BONUS, LEVEL_CHANGED, WILL_BURN, BALANCE_PASSED, BIRTHDAY)
TYPES = (
    EventType(JOINED, "customer", "a customer joins the loyalty program"),
    EventType(WELCOME_BONUS, "customer", "the welcome bonus is credited"),
    EventType(LEVEL_CHANGED, "customer", "a member moves to another level"),
    EventType(WILL_BURN, "customer", "a member's points will burn in N days"),
    EventType(BALANCE_PASSED, "customer", "a member's balance rises past a threshold"),
    EventType(BIRTHDAY, "customer", "a member's birthday multiplier starts to hold"),
)
ORDER_EVENTS = (order_events.ORDER_STATUS_CHANGED, order_events.ORDER_CHANGED)
SUBSCRIBER = "loyalty.orders"
