"""Durable delayed runs: a timer row per (trigger, entity, triggering event) with `due_at`.

`due_at` is pure. Claiming takes due rows with `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite has one
writer); the engine re-checks, acts and marks the row done in the same transaction, so a worker killed
at any moment leaves the row pending (its transaction rolls back) and another worker fires it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import BigInteger, Text, bindparam, cast, event, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ColumnElement

from retento.core import work
from retento.core.bus import Event
from retento.core.db.bulk import insert_rows
from retento.core.sql import unindexed
from retento.customers import events as customer_events
from retento.orders import events as order_events
from retento.triggers.models import Run, Timer
from retento.triggers.schemas import Delay

FINISHED = "trigger_timers_finished"  # session.info: [(timer id, due_at, finished_at)] this transaction finished
CLAIMED = ("id", "trigger_id", "entity", "entity_id", "customer_id", "order_id", "event_id", "due_at")
CHANGE_TYPES = {order_events.ORDER_CHANGED: "order", customer_events.CUSTOMER_CHANGED: "customer"}


def due_at(delay: Delay, *, at: datetime, tz: str | None) -> datetime:
    """When a run delayed by `delay` from `at` fires. With `delay.at`, at that local time `days` days later."""
    if delay.at is None:
        return at + _minutes(delay.total_minutes)
    zone = _zone(tz)
    local_day = at.astimezone(zone).date() + _days(delay.days)
    return datetime.combine(local_day, _clock_time(delay.at), tzinfo=zone).astimezone(at.tzinfo)


@lru_cache(maxsize=1024)
def _minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


@lru_cache(maxsize=1024)
def _days(n: int) -> timedelta:
    return timedelta(days=n)


@lru_cache(maxsize=1024)
def _zone(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@lru_cache(maxsize=1024)
def _clock_time(at: str) -> time:
    hh, mm = (int(x) for x in at.split(":"))
    return time(hh, mm)


def schedule(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert timer rows (one executemany); a row whose (trigger, entity, event) key exists already is left out
    by the database (`ON CONFLICT DO NOTHING`), with no read before."""
    insert_rows(session, Timer.__table__, rows, skip_existing=True)


def ids_of(session: Session, keys: Iterable[tuple[int, str, int, int]]) -> dict[tuple[int, str, int, int], int]:
    """Timer ids by their (trigger, entity, entity id, event) key, read by entity (indexed)."""
    keys, out = set(keys), {}
    for entity in {k[1] for k in keys}:
        q = select(Timer.id, Timer.trigger_id, Timer.entity, Timer.entity_id, Timer.event_id).where(
            Timer.entity == entity, Timer.entity_id.in_({k[2] for k in keys if k[1] == entity}))
        for r in session.execute(q):
            if tuple(r[1:]) in keys:
                out[tuple(r[1:])] = r[0]
    return out


# Delayed runs as a queue of the durable-work primitive, worked inside the firing transaction (`work.run_locked`):
# no lease. A run whose actions fail is recorded as `failed` (the operators' dead letter); a batch that breaks
# (an error that is no action's refusal) goes again run by run, and a run that breaks alone is retried after a
# minute, doubling, and `failed` after 5 attempts with the error as its reason.
QUEUE = work.Queue.in_transaction(
    "trigger_timers", Timer.__table__, label="delayed trigger runs / отложенные запуски триггеров", error="reason",
    attempts="attempts", dead="failed", max_attempts=5, backoff=work.Backoff(base=60, cap=3600),
    dead_values=lambda now: {"finished_at": now}, retry_values={"finished_at": None, "reason": None},
    drop_values=lambda now: {"state": "cancelled", "reason": "dropped by an operator", "finished_at": now})


def make_due(session: Session, *, timer_id: int, now: datetime) -> list[Row]:
    """Claim one pending timer whatever its due time, moved to `now` (an operator fires it early): the same plain
    row as the worker's claim (`QUEUE`, `work.run_locked`) gives, locked until the transaction ends; [] when it is no longer pending (a worker that
    holds it is waited for)."""
    t = Timer.__table__
    return list(session.execute(update(t).where(t.c.id == timer_id, t.c.state == "pending").values(due_at=now)
                                .returning(*(t.c[c] for c in CLAIMED))))


def finish(timer: Timer, *, state: str, reason: str | None, now: datetime) -> None:
    timer.state, timer.reason, timer.finished_at = state, reason, now


def finish_many(session: Session, claimed: Sequence[Row], finished: Sequence[tuple[int, str, str | None]], *,
                now: datetime) -> None:
    """Mark claimed timers finished: [(timer id, state, reason)], no ORM objects. PostgreSQL: one
    `UPDATE ... FROM unnest(ids, states, reasons)` (one round trip); SQLite: one executemany UPDATE."""
    if not finished:
        return
    record_finished(session, [(t.id, t.due_at) for t in claimed], now=now)
    t = Timer.__table__
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        ids, states, reasons = (list(x) for x in zip(*finished, strict=True))
        v = select(func.unnest(cast(ids, ARRAY(BigInteger))).label("id"),
                   func.unnest(cast(states, ARRAY(Text))).label("state"),
                   func.unnest(cast(reasons, ARRAY(Text))).label("reason")).subquery("v")
        conn.execute(update(t).where(t.c.id == v.c.id, t.c.state == "pending")
                     .values(state=v.c.state, reason=v.c.reason, finished_at=now))
        return
    conn.execute(
        update(t).where(t.c.id == bindparam("timer_id"), t.c.state == "pending")
        .values(state=bindparam("new_state"), reason=bindparam("new_reason"), finished_at=now),
        [{"timer_id": i, "new_state": state, "new_reason": reason} for i, state, reason in finished])


def record_finished(session: Session, timers: Iterable[tuple[int, datetime]], *, now: datetime) -> None:
    """Note (timer id, due_at) pairs this transaction finishes in `session.info[FINISHED]`, for observers that
    stamp them at commit (fire-lag metrics, `retento bench triggers`); dropped when the transaction ends. A timer
    can be noted twice when a savepoint that finished it rolled back and it was finished again."""
    session.info.setdefault(FINISHED, []).extend((i, due, now) for i, due in timers)


@event.listens_for(Session, "after_transaction_end")
def _forget_finished(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(FINISHED, None)


def change_events(session: Session, *, entity: str, entity_ids: Iterable[int],
                  after_event_id: int) -> dict[int, list[tuple[int, set[str]]]]:
    """Change events of many entities after an event: entity id -> [(event id, fields touched)] in id order."""
    types = [t for t, e in CHANGE_TYPES.items() if e == entity]
    column = Event.order_id if entity == "order" else Event.customer_id
    ids, out = sorted(set(entity_ids)), {}
    for start in range(0, len(ids), 900):
        q = (select(Event.id, column, Event.payload).where(column.in_(ids[start:start + 900]),
                                                           Event.id > after_event_id,
                                                           unindexed(Event.type).in_(types))  # see unindexed
             .order_by(Event.id))
        for event_id, entity_id, payload in session.execute(q):
            out.setdefault(entity_id, []).append((event_id, {c.get("field") for c in payload.get("changes", ())}))
    return out


def first_change(changes: Iterable[tuple[int, set[str]]], *, after_event_id: int,
                 fields: Iterable[str] = ()) -> int | None:
    """Pure: the first of `changes` (from `change_events`) after the event that touches `fields` (any, if none)."""
    wanted = set(fields)
    return next((event_id for event_id, touched in changes
                 if event_id > after_event_id and (not wanted or wanted & touched)), None)


def cancel(session: Session, timers: list[Timer], *, reason: str, now: datetime, event_id: int | None = None) -> int:
    """Cancel pending timers and log why; returns how many. Only rows still pending are cancelled (a conditional
    UPDATE), so a run another worker is firing at this moment keeps its outcome instead of being overwritten."""
    ids = [t.id for t in timers if t.state == "pending"]
    won = _cancel_ids(session, ids, reason=reason, now=now)
    for t in timers:
        if t.id in won:
            for key, value in (("state", "cancelled"), ("reason", reason), ("finished_at", now)):
                set_committed_value(t, key, value)
        elif t.id in ids:
            session.expire(t)  # finished meanwhile by someone else: read it again when asked
    _log_cancelled(session, [_PendingRow(t.id, t.trigger_id, t.customer_id, t.order_id, t.event_id, t.due_at)
                             for t in timers if t.id in won], reason=reason, now=now, event_id=event_id)
    return len(won)


def cancel_rows(session: Session, rows: list[dict[str, Any]], *, reason: str, now: datetime,
                event_id: int | None = None) -> int:
    """`cancel` for timers read as plain rows (`pending_rows_of_entities`): the same statements and run-log rows;
    a row cancelled here gets state `cancelled`, one finished meanwhile by someone else state None (unknown)."""
    ids = [r["id"] for r in rows if r["state"] == "pending"]
    won = _cancel_ids(session, ids, reason=reason, now=now)
    for r in rows:
        if r["id"] in won:
            r["state"] = "cancelled"
        elif r["id"] in ids:
            r["state"] = None
    _log_cancelled(session, [_PendingRow(r["id"], r["trigger_id"], r["customer_id"], r["order_id"], r["event_id"],
                                         r["due_at"]) for r in rows if r["id"] in won],
                   reason=reason, now=now, event_id=event_id)
    return len(won)


class _PendingRow(NamedTuple):
    id: int
    trigger_id: int
    customer_id: int | None
    order_id: int | None
    event_id: int
    due_at: datetime


def _cancel_ids(session: Session, ids: list[int], *, reason: str, now: datetime) -> set[int]:
    """The conditional UPDATE of `cancel`: the ids it cancelled."""
    won: set[int] = set()
    for start in range(0, len(ids), 900):
        won.update(session.scalars(
            update(Timer).where(Timer.id.in_(ids[start:start + 900]), _still_pending())
            .values(state="cancelled", reason=reason, finished_at=now).returning(Timer.id),
            execution_options={"synchronize_session": False}))
    return won


def _log_cancelled(session: Session, won: list[_PendingRow], *, reason: str, now: datetime,
                   event_id: int | None) -> None:
    if won:
        record_finished(session, [(t.id, t.due_at) for t in won], now=now)
        insert_rows(session, Run.__table__, [  # Core rows: one statement (see acting's firings)
            {"trigger_id": t.trigger_id, "at": now, "phase": "cancel", "event_id": event_id or t.event_id,
             "timer_id": t.id, "customer_id": t.customer_id, "order_id": t.order_id, "outcome": "cancelled",
             "reason": reason, "actions": []} for t in won])


def pending_of_entity(session: Session, *, entity: str, entity_id: int, before_event_id: int) -> list[Timer]:
    return list(session.scalars(select(Timer).where(
        Timer.entity == entity, Timer.entity_id == entity_id, _still_pending(), Timer.event_id < before_event_id)))


_T = Timer.__table__
PENDING_COLUMNS = ("id", "trigger_id", "entity", "entity_id", "customer_id", "order_id", "event_id", "due_at", "state")
_PENDING_OF = select(*(_T.c[c] for c in PENDING_COLUMNS)).where(  # built once (see orders.snapshots)
    _T.c.entity == bindparam("entity"), _T.c.entity_id.in_(bindparam("ids", expanding=True)),
    unindexed(_T.c.state) == "pending",  # the run key finds them (see `_still_pending`)
    _T.c.trigger_id.in_(bindparam("triggers", expanding=True)))


def pending_rows_of_entities(session: Session, *, entity: str, entity_ids: Iterable[int],
                             trigger_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Pending timers of many entities of one kind and of these triggers, as plain rows (`PENDING_COLUMNS`, no
    ORM objects; `cancel_rows` cancels them), one query per 900 ids."""
    ids, out, only = sorted(set(entity_ids)), [], sorted(set(trigger_ids))
    for start in range(0, len(ids), 900):
        out += [dict(zip(PENDING_COLUMNS, r, strict=True)) for r in session.execute(
            _PENDING_OF, {"entity": entity, "ids": ids[start:start + 900], "triggers": only})]
    return out


def cancel_all(session: Session, *, trigger_id: int, reason: str, now: datetime) -> int:
    """Cancel every pending run of a trigger in a few statements."""
    ids = list(session.scalars(select(Timer.id).where(Timer.trigger_id == trigger_id, Timer.state == "pending")))
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        session.execute(update(Timer).where(Timer.id.in_(chunk), _still_pending())
                        .values(state="cancelled", reason=reason, finished_at=now))
    if ids:
        session.execute(insert(Run), [{"trigger_id": trigger_id, "at": now, "phase": "cancel", "event_id": None,
                                       "timer_id": None, "customer_id": None, "order_id": None,
                                       "outcome": "cancelled", "reason": f"{reason} ({len(ids)} pending runs)",
                                       "actions": []}])
    return len(ids)


def _still_pending() -> ColumnElement[bool]:
    """`state = 'pending'` beside `id IN (...)`: given the plain form, SQLite walks the (state, due_at) index
    over every pending timer instead of looking the ids up."""
    return unindexed(Timer.state) == "pending"
