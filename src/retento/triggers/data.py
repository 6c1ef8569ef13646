"""What the engine reads and writes around an evaluation: the variables of a condition, data read for a whole
batch at once, and run-log rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from retento.core.bus import Event
from retento.customers import service as customers
from retento.orders import service as orders
from retento.triggers import dispatch
from retento.triggers.compiled import Compiled


class EventRow(NamedTuple):
    """An event as the engine reads it on a bus batch: the bus's row (`sqlalchemy.Row`, or an `Event`) copied into
    a tuple once. A Row's attribute costs about half a microsecond, a tuple's a few dozen nanoseconds, and the engine
    reads an event's fields dozens of times (`as_event_rows`)."""

    id: int
    type: str
    name: str | None
    occurred_at: datetime
    site_id: int | None
    customer_id: int | None
    order_id: int | None
    payload: Any
    source: str
    actor_type: str
    actor_id: str | None
    depth: int


_POSITIONS: dict[tuple[str, ...], Any] = {}  # a row's fields -> the getter of EventRow's fields from it


def as_event_rows(events: list[Any]) -> list[EventRow]:
    """The events as EventRows: by position from rows that carry every field (one C-level getter per row shape),
    else by attribute."""
    out, shape, getter = [], None, None
    for ev in events:
        parent = getattr(ev, "_parent", None)  # a Row's result metadata: rows of one result share their fields
        if parent is None or parent is not shape:
            fields = getattr(ev, "_fields", None)
            getter = _POSITIONS.get(fields) if fields is not None else None
            if getter is None and fields is not None and set(EventRow._fields) <= set(fields):
                getter = _POSITIONS[fields] = itemgetter(*(fields.index(f) for f in EventRow._fields))
            shape = parent if getter is not None else None
        out.append(EventRow._make(getter(ev)) if getter is not None else
                   EventRow._make(getattr(ev, f) for f in EventRow._fields))
    return out


def event_view(ev: Event) -> dict[str, Any]:
    return {"id": ev.id, "type": ev.type, "name": ev.name, "occurred_at": ev.occurred_at, "source": ev.source,
            "actor_type": ev.actor_type, "actor_id": ev.actor_id, "depth": ev.depth, "data": ev.payload}


def changes_of(ev: Event) -> list[dict[str, Any]]:
    """The change set: field, old, new, source, actor."""
    actor = f"{ev.actor_type}:{ev.actor_id}" if ev.actor_id else ev.actor_type
    payload, source = ev.payload, ev.source
    if ev.type == "order_status_changed":
        return [{"field": "status", "old": payload.get("old"), "new": payload.get("new"), "source": source,
                 "actor": actor}]
    return [{"field": c.get("field"), "old": c.get("old"), "new": c.get("new"), "source": source, "actor": actor}
            for c in payload.get("changes") or []]


@dataclass
class Selection:
    candidates: list[Compiled]  # their condition runs (the others' guard is false for the event)
    entity_groups: list[dispatch.Group[Compiled]]  # guards on the order / customer, split once it is read
    needs: frozenset[str]  # what the entity-guarded triggers read: the guard's order / customer, their variables
    fields: dict[str, frozenset[str] | None]  # the order and customer fields they read (None: the whole snapshot)
    changes: list[dict[str, Any]] | None = None  # the event's change set, if it was needed to select
    choice: Any = None  # the engine's cached outcome of the event guards (`engine._Choice`), if there is one


@dataclass
class Preloaded:
    """Orders, customers and pending timers of a batch of events, read in a few queries. When runs act, the
    snapshots of the orders and customers they change are read again."""

    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    pending: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)  # pending timers of changed
    # entities (`timers.pending_rows_of_entities`)
    events: dict[int, Event] = field(default_factory=dict)  # triggering events of due timers
    changes: dict[str, dict[int, list[tuple[int, set[str]]]]] = field(default_factory=dict)  # see change_events
    selection: dict[int, Selection] = field(default_factory=dict)  # event id -> triggers to run / rejected
    buffered: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)  # timers not stored yet
    acting: list[Any] = field(default_factory=list)  # immediate runs waiting to act (acting.Act)
    dirty: set[tuple[str, int | None]] = field(default_factory=set)  # their orders and customers
    # events of a batch: the order / customer fields their triggers read (None: all), and the position of the last
    # event that reads each order / customer
    fields: dict[str, set[str] | None] = field(default_factory=lambda: {"order": None, "customer": None})
    last_use: dict[tuple[str, int], int] = field(default_factory=dict)


def load_variables(session: Session, ev: Event, needs: frozenset[str] | set[str], *, order_id: int | None,
                   customer_id: int | None, preloaded: Preloaded | None = None,
                   changes: list[dict[str, Any]] | None = None, with_event: bool = True) -> dict[str, Any]:
    """Fresh order / customer data (only what is needed) plus the event (unless `with_event` is False) and its
    change set."""
    out: dict[str, Any] = {"event": event_view(ev) if with_event else None,
                           "changes": changes if changes is not None else changes_of(ev), "order": None,
                           "customer": None}
    if "order" in needs and order_id is not None:
        snap = preloaded.orders.get(order_id) if preloaded else None
        if snap is None:
            snap = orders.snapshots(session, [order_id]).get(order_id)
            snap = with_group(session, snap) if snap is not None else None
        out["order"] = snap
    if "customer" in needs and customer_id is not None:
        snap = preloaded.customers.get(customer_id) if preloaded else None
        if snap is None:
            snap = customers.snapshots(session, [customer_id]).get(customer_id)
        out["customer"] = snap
    return out


def order_snapshots(session: Session, ids: set[int], fields: set[str] | None,
                    items_for: set[int]) -> dict[int, dict[str, Any]]:
    """`orders.snapshots` of these orders with `fields` and the status group, items read only for `items_for`
    (the orders whose events' conditions read them; the others' conditions never look)."""
    if fields is not None and "items" in fields and not ids <= items_for:
        snaps = orders.snapshots(session, ids, fields=fields - {"items"})
        for oid, snap in orders.snapshots(session, items_for & ids, fields={"items"}).items():
            if oid in snaps:
                snaps[oid]["items"] = snap["items"]
    else:
        snaps = orders.snapshots(session, ids, fields=fields)
    groups = session.info.get("trigger_status_groups")
    if groups is None:
        groups = session.info["trigger_status_groups"] = orders.status_groups(session)
    for snap in snaps.values():
        snap["status_group"] = groups.get(snap.get("status"))
    return snaps


def with_group(session: Session, snap: dict[str, Any]) -> dict[str, Any]:
    groups = session.info.get("trigger_status_groups")
    if groups is None:
        groups = session.info["trigger_status_groups"] = orders.status_groups(session)
    snap["status_group"] = groups.get(snap.get("status"))
    return snap


def run_row(trigger_id: int, now: datetime, phase: str, ev: Event | None, timer_id: int | None, outcome: str,
         reason: str | None, actions: list[dict[str, Any]] | None = None, *, customer_id: int | None = None,
         order_id: int | None = None) -> dict[str, Any]:
    return {"trigger_id": trigger_id, "at": now, "phase": phase, "event_id": ev.id if ev else None,
            "timer_id": timer_id, "customer_id": ev.customer_id if ev else customer_id,
            "order_id": ev.order_id if ev else order_id, "outcome": outcome, "reason": reason,
            "actions": actions or [], "misses": None, "scheduled": None}


def event_row(now: datetime, ev: Event) -> dict[str, Any]:
    """The run-log row an event shares among the triggers that scheduled a delayed run on it (`scheduled`:
    [trigger id, due time]). `misses` ([trigger id, version, false part]) is only read: older versions stored the
    triggers whose condition was false there."""
    return {"trigger_id": None, "at": now, "phase": "event", "event_id": ev.id, "timer_id": None,
            "customer_id": ev.customer_id, "order_id": ev.order_id, "outcome": "evaluated", "reason": None,
            "actions": [], "misses": None, "scheduled": []}
