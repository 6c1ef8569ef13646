"""Pure decisions of the inbox, taking `now` and data: a dialog's state after a message, the WhatsApp session
window, who takes a new dialog, response times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

STATES = ("open", "waiting", "closed")  # open: the customer waits for us; waiting: we wait for the customer
ASSIGNMENT = ("manual", "round_robin", "by_load")
WHATSAPP_WINDOW = timedelta(hours=24)


def state_after(state: str, *, inbound: bool) -> str:
    """A customer's message opens the dialog; an answer leaves it waiting for the customer. A closed dialog
    stays closed when the shop's side writes (a follow-up after closing does not reopen it)."""
    if inbound:
        return "open"
    return state if state == "closed" else "waiting"


def opens_cycle(state: str, has_cycle: bool, *, inbound: bool) -> bool:
    """A new response cycle begins with a customer's message to a dialog that has none running."""
    return inbound and (state == "closed" or not has_cycle)


def window_open(channel: str, last_inbound_at: datetime | None, now: datetime) -> bool:
    """Free-form replies: WhatsApp only within 24 hours of the customer's last message (then a template);
    other channels always."""
    if channel != "whatsapp":
        return True
    return last_inbound_at is not None and now - last_inbound_at < WHATSAPP_WINDOW


@dataclass(frozen=True)
class Pick:
    operator_id: int | None
    cursor: int | None  # the round robin's new place


def pick_operator(mode: str, operators: Sequence[int], *, last: int | None, loads: dict[int, int]) -> Pick:
    """Who takes a new dialog. round_robin: the next operator after the last one given a dialog (in id order);
    by_load: the one with fewest open and waiting dialogs (ties: lowest id); manual: nobody."""
    ops = sorted(set(operators))
    if mode == "manual" or not ops:
        return Pick(None, last)
    if mode == "round_robin":
        after = [o for o in ops if last is None or o > last]
        chosen = after[0] if after else ops[0]
        return Pick(chosen, chosen)
    chosen = min(ops, key=lambda o: (loads.get(o, 0), o))
    return Pick(chosen, last)


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None
