"""Domain events: recorded in the same transaction as the change (outbox), dispatched after commit.

Each subscriber has its own cursor (the id of the last event it handled) stored in the database,
so delivery is at least once and survives restarts. A handler runs inside the transaction that
advances its cursor, so its own database writes happen exactly once; a handler that raises is
rolled back to a savepoint and gets the same event again on the next dispatch, until
`event_max_attempts`, after which the event is dead-lettered for that subscriber.

A subscriber may be split into partitions (`subscribe(..., partitions=N, partition_by=columns)`): N cursors
(`name#0` ... `name#N-1`), each over the events whose first non-null `partition_by` column is p modulo N (events
with none of them go to partition 0). A worker takes the partition furthest behind that no other worker holds
(`FOR UPDATE SKIP LOCKED`), so N workers handle one subscriber's events in parallel; the events of one key
(an order, a customer) stay in one partition, in id order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from heapq import merge
from itertools import islice
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    bindparam,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from retento.core.changes import ChangeContext
from retento.core.clock import Clock
from retento.core.db import changelog
from retento.core.db.bulk import insert_rows
from retento.core.db.engine import read_sessions
from retento.core.db.transactions import transaction
from retento.core.db.types import Base, JSONType, UTCDateTime
from retento.core.jsonable import serialised
from retento.core.scoping import GLOBAL, BySite
from retento.core.worker import in_round

log = logging.getLogger(__name__)
BigId = BigInteger().with_variant(Integer, "sqlite")
SLICE_SECONDS = 0.25  # a worker's turn for one kind of work before the others get theirs


@dataclass(frozen=True)
class EventType:
    """A kind of domain event, as the application registers it (`App.parts.event_types`)."""

    name: str
    about: str | None  # "order" (an order and its customer), "customer", or None (neither: a launch, ...)
    description: str = ""


class Event(Base):
    __tablename__ = "events"
    __site_scope__ = BySite()  # events of no site (a trigger switched on) are not a site key's

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(128))  # custom events: their name
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    site_id: Mapped[int | None] = mapped_column(Integer)
    customer_id: Mapped[int | None] = mapped_column(BigInteger)
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    source: Mapped[str] = mapped_column(String(16))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    depth: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)

    __table_args__ = (
        Index("ix_events_customer", "customer_id", "id"),
        Index("ix_events_order", "order_id", "id"),
        Index("ix_events_type", "type", "id"),
    )


class SubscriberCursor(Base):
    __tablename__ = "event_cursors"
    __site_scope__ = GLOBAL

    subscriber: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    failing_event_id: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeadLetter(Base):
    __tablename__ = "event_dead_letters"
    __site_scope__ = GLOBAL

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


def event_row(
    type: str,
    *,
    ctx: ChangeContext,
    now: datetime,
    payload: dict[str, Any] | None = None,
    site_id: int | None = None,
    customer_id: int | None = None,
    order_id: int | None = None,
    name: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    return {
        "type": type,
        "name": name,
        "occurred_at": now,
        "site_id": site_id,
        "customer_id": customer_id,
        "order_id": order_id,
        "payload": serialised(payload or {}),
        "source": ctx.source.value,
        "actor_type": ctx.actor_type.value,
        "actor_id": ctx.actor_id,
        "depth": ctx.depth,
        "idempotency_key": idempotency_key,
    }


_RECORDED = "bus.recorded"  # session.info: the transaction recorded events (its commit wakes a waiting worker)


def record(session: Session, rows: Iterable[dict[str, Any]]) -> None:
    """Store events in the caller's transaction: they exist if and only if the change commits."""
    rows = list(rows)
    if rows:
        changelog.claim(session, Event.__table__)
        insert_rows(session, Event.__table__, rows)
        session.info[_RECORDED] = True


def record_select(session: Session, columns: Sequence[str], query: Select) -> int:
    """Store the events an `INSERT ... SELECT` yields (set-based producers), like `record`; returns how many."""
    changelog.claim(session, Event.__table__)
    session.info[_RECORDED] = True
    return session.execute(insert(Event.__table__).from_select(list(columns), query),
                           execution_options={"preserve_rowcount": True}).rowcount


@dataclass
class _Cursor:
    """A subscriber's cursor row as a batch reads and moves it (plain values: the ORM's unit of work for one row
    cost a batch more than the row's read and update)."""

    subscriber: str
    position: int
    failing_event_id: int | None
    attempts: int
    last_error: str | None


# a subscriber's cursor, locked (PostgreSQL), moved, and the newest event after it (up to the settled id): built
# once
_C = SubscriberCursor.__table__
_CURSOR_COLUMNS = select(_C.c.subscriber, _C.c.position, _C.c.failing_event_id, _C.c.attempts, _C.c.last_error)
_CURSOR = _CURSOR_COLUMNS.where(_C.c.subscriber == bindparam("name")).with_for_update()
_MOVE = _C.update().where(_C.c.subscriber == bindparam("name")).values(
    position=bindparam("to"), failing_event_id=bindparam("failing"), attempts=bindparam("n"),
    last_error=bindparam("error"), updated_at=bindparam("at"))
_TOP = select(func.max(Event.id)).where(Event.id > bindparam("after"))
_TOP_SETTLED = _TOP.where(Event.id <= bindparam("settled"))

Handler = Callable[[Session, Event], None]
BatchHandler = Callable[[Session, list[Event]], None]
Interest = Callable[[Session], "frozenset[str] | None"]


@dataclass
class Subscription:
    name: str
    handler: Handler
    types: frozenset[str] | None
    start: str  # "beginning" or "latest": where a new cursor starts
    batch_handler: BatchHandler | None = None  # set-based subscribers: one call per batch of events
    partitions: int = 1
    partition_by: tuple[str, ...] = ()  # event columns, the first non-null one keys the partition
    columns: tuple[str, ...] = ()  # the event columns its handlers read (all when empty)
    interest: Interest | None = None  # the types it needs now, as its configuration says (None: all of `types`)
    _stmts: dict[str | None, Select] = field(default_factory=dict, init=False, repr=False)

    def kinds(self, session: Session) -> tuple[list[str | None], frozenset[str] | None]:
        """The event types a batch reads, one statement each ([None]: one statement for every type), and the
        types it keeps of what that reads (None: all). `interest` narrows `types` to what the subscriber needs now
        (nothing read if it needs none). Without `types` the batch still reads every type in one statement and
        keeps the wanted ones: one range of the id index costs less than a range of the (type, id) index per
        type when the types are common (each read up to a batch: several batches' rows for one)."""
        try:
            wanted = None if self.interest is None else self.interest(session)
        except Exception as exc:  # noqa: BLE001 - a broken interest must not stop the subscriber: it gets all
            log.warning("subscriber %s: its interest failed, every event is handed over: %r", self.name, exc)
            wanted = None
        if wanted is None:
            return ([None] if self.types is None else sorted(self.types)), None
        if self.types is None:
            return ([None] if wanted else []), wanted
        return sorted(wanted & self.types), None

    def read(self, kind: str | None, batch: int) -> Select:
        """The statement that reads a batch of its events of one type (None: of every type), an ordered range of
        the (type, id) index bound by `after`, `top` and, partitioned, `part`, with the columns its handlers read.
        Built once per type: a statement used again keeps its cache key (built anew, each batch paid for it)."""
        q = self._stmts.get(kind)
        if q is None:
            t = Event.__table__
            q = select(*(t.c[c] for c in self.columns or t.c.keys())).where(
                t.c.id > bindparam("after"), t.c.id <= bindparam("top"))
            if self.partitions > 1:
                q = q.where(func.coalesce(*(t.c[c] for c in self.partition_by), 0) % self.partitions
                            == bindparam("part"))
            q = self._stmts[kind] = (q if kind is None else q.where(t.c.type == kind)).order_by(t.c.id).limit(batch)
        return q

    def column(self, name: str) -> Callable[[Any], Any]:
        """A read row's column, by position."""
        return itemgetter((self.columns or tuple(Event.__table__.c.keys())).index(name))

    @property
    def cursors(self) -> list[str]:
        """The names of its cursor rows: its own name, or `name#p` for each partition."""
        return [self.name] if self.partitions == 1 else [f"{self.name}#{p}" for p in range(self.partitions)]


class Bus:
    def __init__(self, factory: sessionmaker[Session], clock: Clock, *, batch: int, max_attempts: int):
        self._factory = factory
        self._clock = clock
        self._batch = batch
        self._max_attempts = max_attempts
        self._subs: dict[str, Subscription] = {}
        self._cursors: set[str] = set()  # subscribers whose cursor row is known to exist
        # cursor -> the position this process last committed for it (positions only grow), and the newest event
        # id (None: read it again), so a turn with nothing new costs one read instead of a write transaction per
        # subscriber (`_nothing_new`)
        self._at: dict[str, int] = {}
        self._newest: int | None = None
        self.wakeup = threading.Event()
        event.listen(factory, "after_commit", self._after_commit)
        event.listen(factory, "after_rollback", lambda session: session.info.pop(_RECORDED, None))

    def _after_commit(self, session: Session) -> None:
        self._newest = None  # events may have been recorded
        # a waiting worker looks for new events (or work another thread queued) now instead of at its next poll;
        # a worker round's own commits without events do not wake it (else an idle worker never waits)
        if session.info.pop(_RECORDED, False) or not in_round():
            self.wakeup.set()

    def subscribe(
        self, name: str, handler: Handler, *, types: Iterable[str] | None = None, start: str = "beginning",
        batch_handler: BatchHandler | None = None, partitions: int = 1, partition_by: Sequence[str] = (),
        columns: Sequence[str] = (), interest: Interest | None = None,
    ) -> None:
        """`handler` gets one event at a time. With `batch_handler`, a whole batch goes to it in one savepoint
        first; only if that raises are the batch's events handed to `handler` one by one (so a bad event is
        retried and dead-lettered alone, as for any subscriber). `partitions` (see the module's doc): keep the
        number fixed for a database; a changed number starts the new cursors where the slowest old one was
        (events between are handed over again: at least once). `columns`: the only event columns the handlers
        read (the id among them), so a batch reads and converts no other (a payload's JSON, for one). `interest`: the
        types the subscriber needs now (None: all), asked in each batch's transaction after the batch's upper bound
        is fixed; the events of other types up to it are passed over (`Subscription.kinds`: a subscriber that needs
        none reads no event; with `columns`, the type among them). A configuration committed before a batch's
        transaction applies to every event it hands over, as a handler reading the configuration would see it."""
        if name in self._subs:
            raise ValueError(f"subscriber {name!r} is already registered")
        if start not in ("beginning", "latest"):
            raise ValueError("start must be 'beginning' or 'latest'")
        if partitions < 1 or (partitions > 1 and not partition_by) or "#" in name:
            raise ValueError("partitions: 1, or more with the event columns to partition by; no '#' in a name")
        if columns and ("id" not in columns or set(columns) - set(Event.__table__.c.keys())
                        or (interest is not None and "type" not in columns)):
            raise ValueError("columns: event columns, the id among them (and the type, with an interest)")
        self._subs[name] = Subscription(name, handler, frozenset(types) if types else None, start, batch_handler,
                                        partitions, tuple(partition_by), tuple(columns), interest)

    @property
    def subscribers(self) -> list[str]:
        return list(self._subs)

    def cursors_of(self, name: str) -> list[str]:
        """The names of a subscriber's cursor rows (one per partition)."""
        return self._subs[name].cursors

    def dispatch(self, *, names: Iterable[str] | None = None, max_batches: int | None = None,
                 max_seconds: float | None = None) -> int:
        """Deliver pending events to every subscriber (or those named); returns how many deliveries were made.

        By default until none is left; `max_batches` / `max_seconds` bound the work per subscriber, so a worker
        can give its other jobs (due timers) a turn under a steady stream of events."""
        total = 0
        subs = self._subs.values() if names is None else [self._subs[n] for n in names]
        self._newest = None  # events other processes recorded since the last call
        for sub in subs:
            self._ensure_cursor(sub)
            if self._nothing_new(sub):
                continue
            batches, started = 0, time.perf_counter()
            while max_batches is None or batches < max_batches:
                handled, more = self._dispatch_batch(sub)
                total += handled
                batches += 1
                if not more or (max_seconds is not None and time.perf_counter() - started >= max_seconds):
                    break
        return total

    def dispatch_slice(self) -> int:
        """The worker's fair share: up to a quarter of a second of batches per subscriber."""
        return self.dispatch(max_seconds=SLICE_SECONDS)

    def _ensure_cursor(self, sub: Subscription) -> None:
        """Create the subscriber's cursor rows if there are none (checked in the database once per process: a
        worker's turn would otherwise cost a transaction per subscriber just for this). The cursors of another
        partitioning of the subscriber (a changed number) are replaced, starting from the slowest of them."""
        if sub.name in self._cursors:
            return
        wanted = sub.cursors
        with transaction(self._factory) as s:
            have = {c.subscriber: c for c in s.scalars(select(SubscriberCursor).where(
                SubscriberCursor.subscriber.like(f"{sub.name}%")))
                    if c.subscriber == sub.name or c.subscriber.rsplit("#", 1)[0] == sub.name}
            missing = [n for n in wanted if n not in have]
            if missing:
                others = [c for n, c in have.items() if n not in wanted]
                if others:
                    position = min(c.position for c in others)
                elif sub.start == "latest":  # events still being written count as new
                    position = s.scalar(select(func.max(Event.id)).where(
                        changelog.up_to_settled(s, Event.__table__))) or 0
                else:
                    position = 0
                for name in missing:
                    try:
                        with s.begin_nested():
                            s.add(SubscriberCursor(subscriber=name, position=position, attempts=0,
                                                   updated_at=self._clock.now()))
                    except IntegrityError:
                        pass  # another worker created it first
                for c in others:
                    s.delete(c)
        self._cursors.add(sub.name)

    def _nothing_new(self, sub: Subscription) -> bool:
        """Every cursor of the subscriber is, as this process last committed it, at the newest event or past it.
        A cursor only moves forward and an event committed later gets a larger id than any position a cursor was
        given (see `_dispatch_batch`), so there is nothing to hand over; read-only, no write lock on SQLite."""
        known = [self._at.get(c) for c in sub.cursors]
        if None in known:
            return False
        newest = self._newest
        if newest is None:
            with read_sessions(self._factory.kw["bind"])() as s:
                newest = self._newest = s.scalar(select(func.max(Event.id))) or 0
        return min(known) >= newest  # type: ignore[type-var]

    def _dispatch_batch(self, sub: Subscription) -> tuple[int, bool]:
        held: list[_Cursor] = []
        out = self._batch_of(sub, held)
        for cur in held:  # committed
            self._at[cur.subscriber] = cur.position
        return out

    def _batch_of(self, sub: Subscription, held: list[_Cursor]) -> tuple[int, bool]:
        with transaction(self._factory) as s:
            if sub.partitions == 1:
                row = s.execute(_CURSOR, {"name": sub.name}).first()
            else:  # the partition furthest behind that no other worker holds
                row = s.execute(_CURSOR_COLUMNS.where(_C.c.subscriber.in_(sub.cursors))
                                .order_by(_C.c.position, _C.c.subscriber).limit(1)
                                .with_for_update(skip_locked=True)).first()
            if row is None:  # removed since this process created it (or every partition is taken): next turn
                if sub.partitions == 1:
                    self._cursors.discard(sub.name)
                return 0, False
            cur = _Cursor(*row)
            held.append(cur)
            moved = self._move(s, sub, cur)
            if moved is None:  # nothing new: the row as it was
                return 0, False
            s.execute(_MOVE, {"name": cur.subscriber, "to": cur.position, "failing": cur.failing_event_id,
                              "n": cur.attempts, "error": cur.last_error, "at": self._clock.now()})
            return moved

    def _move(self, s: Session, sub: Subscription, cur: _Cursor) -> tuple[int, bool] | None:
        """Hand the events after the cursor to the subscriber and move it (`cur`, written back by the caller);
        None if there was nothing to hand over."""
        # Upper bound first: no event committed later can have an id up to `top` (see `changelog`; a
        # statement of its own, so the next ones see a snapshot taken after it).
        settled = changelog.settled(s, Event.__table__)
        if settled is not None and settled <= cur.position:
            return None
        top = (s.scalar(_TOP, {"after": cur.position}) if settled is None else
               s.scalar(_TOP_SETTLED, {"after": cur.position, "settled": settled}))
        if top is None:
            return None
        # plain rows, read-only, with the Event's attribute names: an ORM object per event and subscriber
        # cost more than most handlers' own work. A typed subscriber: one query per type, each an ordered range of
        # the (type, id) index that stops at the batch; `type IN (...)` made both engines read (and sort) every
        # event of the types up to `top`, a cost that grew with the backlog: quadratic over a backlog of a million
        # events. An untyped one: one ordered range of the id index (`Subscription.kinds`).
        # A full batch of one type bounds the others' reads at its last id (the merged batch ends there at the
        # latest). Each fetched whole (the driver's fetchall, not a fetch per row) and merged by position: a
        # row's attribute costs about a microsecond
        bounds = {"after": cur.position, "top": top}
        if sub.partitions > 1:
            bounds["part"] = int(cur.subscriber.rsplit("#", 1)[1])
        event_id, parts = sub.column("id"), []
        kinds, keep = sub.kinds(s)
        for kind in kinds:
            rows = s.execute(sub.read(kind, self._batch), bounds).all()
            if rows:
                parts.append(rows)
                if len(rows) == self._batch:
                    bounds["top"] = event_id(rows[-1])
        read = (parts[0] if len(parts) == 1 else
                list(islice(merge(*parts, key=event_id), self._batch)) if parts else [])
        # more to do: a full batch; partitioned, maybe another partition (until one finds nothing up to top). The
        # cursor's end: the batch's last event, or `top` if the batch ended before it (nothing of interest left)
        full = len(read) == self._batch
        more, end = full or sub.partitions > 1, event_id(read[-1]) if full else top
        events = read
        if keep is not None:  # the wanted types of an untyped read
            type_of = sub.column("type")
            events = [r for r in read if type_of(r) in keep]
        if events and sub.batch_handler is not None and self._whole_batch(s, sub, events):
            cur.position = end
            cur.failing_event_id, cur.attempts, cur.last_error = None, 0, None
            return len(events), more
        handled = 0
        for ev in events:
            try:
                with s.begin_nested():
                    sub.handler(s, ev)
            except Exception as exc:  # noqa: BLE001 - a subscriber's failure must not stop the others
                if not self._failed(s, cur, sub, ev, exc):
                    return handled, False
            cur.position = ev.id
            cur.failing_event_id, cur.attempts, cur.last_error = None, 0, None
            handled += 1
        cur.position = end
        return handled, more

    def _whole_batch(self, s: Session, sub: Subscription, events: list[Event]) -> bool:
        try:
            with s.begin_nested():
                sub.batch_handler(s, events)  # type: ignore[misc]
            return True
        except Exception as exc:  # noqa: BLE001 - fall back to one event at a time
            log.warning("subscriber %s failed on a batch of %s events, retrying one by one: %r", sub.name,
                        len(events), exc)
            return False

    def _failed(self, s: Session, cur: _Cursor, sub: Subscription, ev: Event, exc: Exception) -> bool:
        """Count the failure; True if the event is given up on (dead-lettered) and the cursor moves past it."""
        attempts = cur.attempts + 1 if cur.failing_event_id == ev.id else 1
        log.warning("subscriber %s failed on event %s (attempt %s): %r", sub.name, ev.id, attempts, exc)
        cur.failing_event_id, cur.attempts, cur.last_error = ev.id, attempts, repr(exc)[:2000]
        if attempts < self._max_attempts:
            return False
        s.add(DeadLetter(subscriber=sub.name, event_id=ev.id, error=repr(exc)[:2000], attempts=attempts,
                         at=self._clock.now()))
        return True
