"""THE durable-work primitive: claim due rows, lease them with a fencing token, count attempts, back off, and
keep what cannot be done as a dead letter with its last error.

Every kind of deferred work (outgoing messages, webhook deliveries, trigger webhook calls, delayed trigger runs,
cascade timers, campaign starts, segment re-evaluation) keeps its own table, described by a `Queue`, and goes
through these functions. There are two ways to hold work:

- `locked(...)`: due rows locked until the current transaction ends (PostgreSQL `FOR UPDATE SKIP LOCKED`, so
  other workers skip them; SQLite has one writer). For work done inside that transaction: a crash rolls it all
  back and the rows are due again.
- `claim(...)`: due rows leased to one worker by a short transaction that commits, for work that leaves the
  process (an HTTP call, an SMTP send) and must not keep a transaction open. The claim writes a fresh token on the
  rows; `renew`, `move`, `complete` and `fail` change only rows that still carry it, so a worker whose lease ran
  out and was taken over changes nothing. A lease that ran out makes its rows claimable again (`claim` takes them
  before new work); rows in an in-flight state (`Queue.in_flight`, a message being sent) are not simply taken
  over: their owner decides what an interrupted attempt means (`reap`).

Attempts are counted when work is claimed; a failure waits `Backoff.delay(attempts)` (one policy: exponential,
capped, no jitter, so tests can predict it), and after `Queue.max_attempts` (or a permanent error) the row goes to
the queue's dead state with its last error. Operators see queues with `stats`, list `dead_letters`, and `retry`
or `drop` them (`retento work`, `GET /api/work`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ClauseElement

from retento.core.db.transactions import transaction
from retento.core.sql import unindexed

log = logging.getLogger(__name__)

Filter = Callable[[Table], ColumnElement[bool]]


@dataclass(frozen=True)
class Backoff:
    """The one retry schedule: `base` seconds after the first failure, doubling, at most `cap`."""

    base: float = 30.0
    cap: float = 6 * 3600.0

    def delay(self, failures: int) -> timedelta:
        return timedelta(seconds=min(self.cap, self.base * 2 ** max(failures - 1, 0)))

    def next_at(self, failures: int, *, now: datetime, retry_after: float | None = None) -> datetime:
        """When to try again after `failures` failed attempts; when the other side said how long to wait
        (`Retry-After`, Telegram's `retry_after`), that, at most `cap`."""
        if retry_after is not None and retry_after >= 0:
            return now + timedelta(seconds=min(retry_after, self.cap))
        return now + self.delay(failures)


@dataclass(frozen=True, eq=False)  # compared and hashed by identity
class Queue:
    """A table of deferred work and the names of its standard columns and states."""

    name: str
    table: Table
    label: str = ""  # what the work is, for operators
    key: str = "id"  # the primary key column
    state: str | None = "state"  # None: every row is waiting work (a set-based queue that deletes what it did)
    due: str | None = "due_at"  # None: waiting work is due at once
    due_null: bool = False  # a NULL due time means due at once (else: never)
    attempts: str | None = "attempts"
    error: str | None = "last_error"
    token: str | None = "lease_token"  # None: the queue is only worked with `locked`
    owner: str | None = "lease_owner"
    until: str | None = "lease_until"
    ready: str = "pending"
    held: str = "running"  # leased to a worker
    in_flight: tuple[str, ...] = ()  # further states under the lease, left to `reap` when it runs out
    done: str = "done"
    dead: str | None = "dead"  # attempts used up, or a permanent error
    also_dead: tuple[str, ...] = ()  # further states an operator may retry or drop
    order: tuple[str, ...] = ()  # claim order; default (due, id)
    where: Filter | None = None  # waiting work also needs this (e.g. `claim IS NULL`)
    max_attempts: int = 5
    backoff: Backoff = Backoff()
    lease: timedelta = timedelta(minutes=5)
    dead_values: Callable[[datetime], Mapping[str, Any]] | None = None  # more columns set when work goes dead
    retry_values: Mapping[str, Any] = field(default_factory=dict)  # more columns set by an operator's retry
    drop_values: Callable[[datetime], Mapping[str, Any]] | None = None  # None: `drop` deletes the row
    notes: Callable[[Session, datetime], list[str]] | None = None  # what operators should know (work no one does)

    @classmethod
    def in_transaction(cls, name: str, table: Table, **kw: Any) -> Queue:
        """A queue worked only with `locked`, inside one transaction: no lease columns, and no attempts, error or
        dead state unless given."""
        plain: dict[str, Any] = {"attempts": None, "error": None, "token": None, "owner": None, "until": None,
                                 "dead": None}
        return cls(name, table, **{**plain, **kw})

    def c(self, name: str) -> Any:
        return self.table.c[name]

    @property
    def id(self) -> Any:
        return self.table.c[self.key]

    @property
    def dead_states(self) -> tuple[str, ...]:
        return ((self.dead,) if self.dead else ()) + self.also_dead

    @property
    def leased_states(self) -> tuple[str, ...]:
        return (self.held, *self.in_flight)

    def waiting(self, now: datetime | None) -> ColumnElement[bool]:
        """Work that is due: ready, past its due time (any time with `now` None), and whatever `where` adds."""
        parts = []
        if self.state is not None:
            parts.append(self.c(self.state) == self.ready)
        if self.due is not None and now is not None:
            parts.append(self.is_due(now))
        if self.where is not None:
            parts.append(self.where(self.table))
        return and_(*parts)

    def is_due(self, now: datetime) -> ColumnElement[bool]:
        due = self.c(self.due)  # type: ignore[arg-type]
        return or_(due.is_(None), due <= now) if self.due_null else due <= now

    def ordering(self) -> list[Any]:
        if self.order:
            return [self.c(n) for n in self.order]
        return ([self.c(self.due)] if self.due else []) + [self.id]


def worker_id() -> str:
    """Who holds a lease, for operators: host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


def _skip_locked(session: Session, q: Any) -> Any:
    return q.with_for_update(skip_locked=True) if session.get_bind().dialect.name == "postgresql" else q


def _columns(queue: Queue, columns: Sequence[str]) -> list[Any]:
    return [queue.id] + [queue.c(n) for n in columns if n != "id"]


# --- work done inside one transaction ---------------------------------------------------------------------

def locked(session: Session, queue: Queue, *, now: datetime, limit: int, columns: Sequence[str] = (),
           where: ColumnElement[bool] | None = None) -> list[Row]:
    """Due rows (id and `columns`, in claim order), locked until the transaction ends; rows another worker
    holds are skipped."""
    q = select(*_columns(queue, columns)).where(queue.waiting(now))
    if where is not None:
        q = q.where(where)
    return list(session.execute(_skip_locked(session, q.order_by(*queue.ordering()).limit(limit))))


def run_locked(sessions: sessionmaker[Session], queue: Queue, *, now: datetime, limit: int,
               handle: Callable[[Session, list[Row]], None], columns: Sequence[str] = ()) -> int:
    """One batch of work done inside one transaction: due rows `locked`, `handle`d and committed together;
    returns how many rows were taken. When the batch fails as a whole (a bug, a poisoned row), its rows are
    handled again one per transaction, so one row cannot hold the others back; a row that fails alone is a
    failed attempt (`fail_locked`: due again after the backoff, dead after `max_attempts`, with the error)."""
    rows: list[Row] = []
    try:
        with transaction(sessions) as s:
            rows = locked(s, queue, now=now, limit=limit, columns=columns)
            if rows:
                handle(s, rows)
        return len(rows)
    except Exception:
        if len(rows) < 1:
            raise
        log.exception("%s: a batch of %s failed; each goes again on its own", queue.name, len(rows))
    for row in rows:
        try:
            with transaction(sessions) as s:
                again = locked(s, queue, now=now, limit=1, columns=columns, where=queue.id == row[0])
                if again:
                    handle(s, again)
        except Exception as exc:  # noqa: BLE001 - recorded on the row, which goes on without the others
            log.exception("%s %s failed", queue.name, row[0])
            with transaction(sessions) as s:
                fail_locked(s, queue, {row[0]: f"{type(exc).__name__}: {exc}"}, now=now)
    return len(rows)


def fail_locked(session: Session, queue: Queue, errors: Mapping[int, str], *, now: datetime) -> Failed:
    """Waiting rows whose work failed inside its (rolled back) transaction: an attempt counted and the error kept;
    due again after the backoff, or dead after `max_attempts`. A queue without an attempts column keeps only the
    error (the row is due again at once)."""
    q, out = queue, Failed()
    if not q.attempts:
        for row_id, error in errors.items() if q.error else ():
            session.execute(update(q.table).where(q.id == row_id).values({q.error: error[:2000]}))
        return out
    counts = dict(session.execute(select(q.id, q.c(q.attempts)).where(q.id.in_(list(errors)), q.waiting(now))).all())
    for row_id, n in counts.items():
        n += 1
        values: dict[str, Any] = {q.attempts: n}
        if q.error:
            values[q.error] = errors[row_id][:2000]
        if n >= q.max_attempts and q.dead:
            values.update({q.state: q.dead, **(q.dead_values(now) if q.dead_values else {})})
            out.dead.add(row_id)
        else:
            if q.due:
                values[q.due] = q.backoff.next_at(n, now=now)
            out.retried.add(row_id)
        session.execute(update(q.table).where(q.id == row_id).values(values))
    return out


def select_due(queue: Queue, *, now: datetime, limit: int) -> Any:
    """The ids `locked` would take, as a statement to use inside another one (an UPDATE ... WHERE id IN)."""
    return select(queue.id).where(queue.waiting(now)).order_by(*queue.ordering()).limit(limit)


def lock_due(session: Session, queue: Queue, *, now: datetime, limit: int) -> Any:
    """`select_due` with the PostgreSQL row locks (`FOR UPDATE SKIP LOCKED`), as a scalar subquery."""
    return _skip_locked(session, select_due(queue, now=now, limit=limit)).scalar_subquery()


# --- leases -----------------------------------------------------------------------------------------------

@dataclass
class Lease:
    """Rows one worker claimed, with the token that fences every later change of them."""

    queue: Queue
    token: str
    owner: str
    until: datetime
    rows: list[Row]
    renewed_at: datetime

    @property
    def ids(self) -> list[int]:
        return [r.id for r in self.rows]

    def due_for_renewal(self, now: datetime) -> bool:
        """A third of the lease has passed since it was taken or last renewed."""
        return now - self.renewed_at >= self.queue.lease / 3


def claim(session: Session, queue: Queue, *, now: datetime, limit: int, owner: str, columns: Sequence[str] = (),
          where: ColumnElement[bool] | None = None) -> Lease:
    """Lease up to `limit` rows: first those whose lease ran out (in the held state), then due waiting ones.
    Each claim counts an attempt. Commit the transaction to make the lease visible to other workers."""
    t, q = queue.table, queue
    extra = [where] if where is not None else []
    expired = _skip_locked(session, select(q.id).where(
        q.c(q.state) == q.held, q.c(q.until) < now, *extra).order_by(q.id).limit(limit))
    ids = list(session.scalars(expired))
    if len(ids) < limit:
        fresh = select(q.id).where(q.waiting(now), *extra).order_by(*q.ordering()).limit(limit - len(ids))
        ids += session.scalars(_skip_locked(session, fresh))
    token, until = uuid.uuid4().hex, now + q.lease
    lease = Lease(q, token, owner, until, [], now)
    if not ids:
        return lease
    values: dict[str, Any] = {q.state: q.held, q.token: token, q.until: until}
    if q.owner:
        values[q.owner] = owner
    if q.attempts:
        values[q.attempts] = q.c(q.attempts) + 1
    got = {r.id: r for r in session.execute(update(t).where(q.id.in_(ids)).values(values)
                                            .returning(*_columns(q, columns)),
                                            execution_options={"synchronize_session": False})}
    lease.rows = [got[i] for i in ids if i in got]
    return lease


def _fenced(lease: Lease, ids: Iterable[int], states: Iterable[str]) -> ColumnElement[bool]:
    q = lease.queue
    return and_(q.id.in_(list(ids)), q.c(q.token) == lease.token, unindexed(q.c(q.state)).in_(list(states)))


def _update(session: Session, lease: Lease, ids: Sequence[int], states: Iterable[str],
            values: Mapping[str, Any]) -> set[int]:
    """UPDATE the rows of `ids` the lease still holds (in `states`); returns those changed. Plain values go
    through one statement per shape, built once (a message's send makes two of these: they must be cheap)."""
    if not ids:
        return set()
    q = lease.queue
    if any(isinstance(v, ClauseElement) for v in values.values()):
        stmt = update(q.table).where(_fenced(lease, ids, states)).values(dict(values)).returning(q.id)
        return set(session.scalars(stmt, execution_options={"synchronize_session": False}))
    stmt = _fenced_update(q, tuple(states), tuple(sorted(values)))
    params = {"ids": list(ids), "token": lease.token, **{f"v_{k}": v for k, v in values.items()}}
    return set(session.execute(stmt, params).scalars())


@lru_cache(maxsize=512)
def _fenced_update(q: Queue, states: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    t = q.table
    return (update(t).where(q.id.in_(bindparam("ids", expanding=True)), q.c(q.token) == bindparam("token"),
                            unindexed(q.c(q.state)).in_(states))
            .values({c: bindparam(f"v_{c}", type_=t.c[c].type) for c in columns}).returning(q.id))


def renew(session: Session, lease: Lease, *, now: datetime, ids: Sequence[int] | None = None) -> set[int]:
    """Extend the lease of `ids` (default: all its rows) from `now`; returns the ids still held by it."""
    q = lease.queue
    lease.until, lease.renewed_at = now + q.lease, now
    return _update(session, lease, lease.ids if ids is None else ids, q.leased_states, {q.until: lease.until})


def move(session: Session, lease: Lease, ids: Sequence[int], *, state: str,
         values: Mapping[str, Any] | None = None) -> set[int]:
    """Change the state of held rows within the lease (e.g. to an in-flight state); returns those changed."""
    q = lease.queue
    return _update(session, lease, ids, q.leased_states, {q.state: state, **(values or {})})


def complete(session: Session, lease: Lease, ids: Sequence[int], *, values: Mapping[str, Any] | None = None,
             state: str | None = None, also_from: Iterable[str] = ()) -> set[int]:
    """The work of `ids` is done: their final state (default `Queue.done`), the lease released. Rows no longer
    held by this lease are left alone; returns those changed. `also_from`: further states the lease's rows may
    have been moved to meanwhile by someone else (`reap`) that this result still settles."""
    q = lease.queue
    return _update(session, lease, ids, (*q.leased_states, *also_from),
                   {q.state: state or q.done, **_released(q), **(values or {})})


def _released(q: Queue) -> dict[str, Any]:
    out: dict[str, Any] = {q.token: None, q.until: None}
    if q.owner:
        out[q.owner] = None
    return out


@dataclass(frozen=True)
class Failure:
    error: str
    permanent: bool = False  # no point in trying again
    retry_after: float | None = None  # seconds the other side asked us to wait
    values: Mapping[str, Any] = field(default_factory=dict)  # more columns to set (e.g. the last status code)


@dataclass
class Failed:
    retried: set[int] = field(default_factory=set)
    dead: set[int] = field(default_factory=set)


def fail(session: Session, lease: Lease, failures: Mapping[int, Failure], *, now: datetime,
         also_from: Iterable[str] = ()) -> Failed:
    """Attempts that failed: due again after the backoff, or dead when attempts are used up or the error is
    permanent; the error is kept either way. Rows no longer held by this lease are left alone."""
    q = lease.queue
    out = Failed()
    if not failures:
        return out
    attempts = dict(session.execute(
        select(q.id, q.c(q.attempts) if q.attempts else literal(0)).where(
            _fenced(lease, failures, (*q.leased_states, *also_from)))).all())
    for row_id, n in attempts.items():
        f = failures[row_id]
        if f.permanent or n >= q.max_attempts:
            values = {q.state: q.dead, **_released(q), **(q.dead_values(now) if q.dead_values else {}), **f.values}
            (out.dead if _error_update(session, lease, row_id, f.error, values, also_from) else set()).add(row_id)
        else:
            values = {q.state: q.ready, **_released(q), **f.values}
            if q.due:
                values[q.due] = q.backoff.next_at(n, now=now, retry_after=f.retry_after)
            (out.retried if _error_update(session, lease, row_id, f.error, values, also_from) else set()).add(row_id)
    return out


def _error_update(session: Session, lease: Lease, row_id: int, error: str, values: dict[str, Any],
                  also_from: Iterable[str]) -> bool:
    q = lease.queue
    if q.error:
        values[q.error] = error[:2000]
    return bool(_update(session, lease, [row_id], (*q.leased_states, *also_from), values))


def reap(session: Session, queue: Queue, *, now: datetime, state: str, to: str, release: bool,
         values: Mapping[str, Any] | None = None, where: ColumnElement[bool] | None = None) -> list[int]:
    """Rows left in an in-flight `state` by a lease that ran out go to `to` (plus `values`). With `release` the
    token is cleared too (the work is claimable again); without, the worker that held it may still settle it
    with `complete(..., also_from=(to,))` if it turns out to be alive after all."""
    q = queue
    cond = [q.c(q.state) == state, q.c(q.until) < now]
    if where is not None:
        cond.append(where)
    ids = list(session.scalars(_skip_locked(session, select(q.id).where(*cond).order_by(q.id))))
    if not ids:
        return []
    new = {q.state: to, **(_released(q) if release else {}), **(values or {})}
    session.execute(update(q.table).where(q.id.in_(ids)).values(new), execution_options={"synchronize_session": False})
    return ids


# --- operators --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stats:
    queue: str
    label: str
    due: int  # waiting and due now
    later: int  # waiting, due later
    leased: int  # held by a worker whose lease is current
    expired: int  # held under a lease that ran out (the worker died or stalled)
    dead: int
    oldest_due: datetime | None  # the due time of the longest-waiting work

    def as_dict(self) -> dict[str, Any]:
        return {"queue": self.queue, "label": self.label, "due": self.due, "later": self.later,
                "leased": self.leased, "expired": self.expired, "dead": self.dead,
                "oldest_due": self.oldest_due.isoformat() if self.oldest_due else None}


def stats(session: Session, queue: Queue, *, now: datetime) -> Stats:
    q = queue
    t = q.table
    count = func.count()
    waiting = [q.c(q.state) == q.ready] if q.state else []
    if q.where is not None:
        waiting.append(q.where(t))
    due_col = q.c(q.due) if q.due else None
    if due_col is not None:
        is_due = q.is_due(now)
        due = session.scalar(select(count).select_from(t).where(*waiting, is_due)) or 0
        later = session.scalar(select(count).select_from(t).where(*waiting, due_col > now)) or 0
        oldest = session.scalar(select(func.min(due_col)).where(*waiting, is_due))
        if oldest is None and due:
            oldest = now
    else:
        due, later, oldest = session.scalar(select(count).select_from(t).where(*waiting)) or 0, 0, None
    leased = expired = dead = 0
    if q.state:
        if q.token:
            held = q.c(q.state).in_(q.leased_states)
            expired = session.scalar(select(count).select_from(t).where(held, q.c(q.until) < now)) or 0
            leased = (session.scalar(select(count).select_from(t).where(held)) or 0) - expired
        if q.dead_states:
            dead = session.scalar(select(count).select_from(t).where(q.c(q.state).in_(q.dead_states))) or 0
    return Stats(q.name, q.label, due, later, leased, expired, dead, oldest)


def dead_letters(session: Session, queue: Queue, *, after_id: int = 0, limit: int = 50) -> list[dict[str, Any]]:
    """Dead work (and the queue's further states an operator may act on), oldest first."""
    q = queue
    if not q.state or not q.dead_states:
        return []
    cols = [q.id, q.c(q.state)] + [q.c(n) for n in (q.attempts, q.error, q.due) if n]
    rows = session.execute(select(*cols).where(q.c(q.state).in_(q.dead_states), q.id > after_id)
                           .order_by(q.id).limit(limit))
    return [{"id": r[0], "state": r[1], "attempts": r._mapping.get(q.attempts) if q.attempts else None,
             "error": r._mapping.get(q.error) if q.error else None} for r in rows]


def retry(session: Session, queue: Queue, ids: Sequence[int], *, now: datetime) -> list[int]:
    """Dead work due again now with fresh attempts; returns the ids retried. Dead work whose retry would break a
    unique key of live work (a journey run of a customer who is in that journey again) is left alone: the others
    of `ids` are then retried one at a time."""
    q = queue
    values: dict[str, Any] = {q.state: q.ready, **dict(q.retry_values)}
    if q.due:
        values[q.due] = now
    if q.attempts:
        values[q.attempts] = 0
    if q.token:
        values.update(_released(q))
    stmt = update(q.table).values(values)
    try:
        with session.begin_nested():
            return _operate(session, q, ids, stmt)
    except IntegrityError:
        pass
    done: list[int] = []
    for i in sorted(set(ids)):
        try:
            with session.begin_nested():
                done += _operate(session, q, [i], stmt)
        except IntegrityError:
            log.info("%s %s not retried: it would clash with live work", q.name, i)
    return done


def drop(session: Session, queue: Queue, ids: Sequence[int], *, now: datetime) -> list[int]:
    """Give dead work up for good: deleted, or marked as the queue says (`drop_values`)."""
    q = queue
    stmt = delete(q.table) if q.drop_values is None else update(q.table).values(dict(q.drop_values(now)))
    return _operate(session, q, ids, stmt)


def _operate(session: Session, q: Queue, ids: Sequence[int], stmt: Any) -> list[int]:
    if not q.state or not q.dead_states or not ids:
        return []
    stmt = stmt.where(q.id.in_(list(ids)), unindexed(q.c(q.state)).in_(q.dead_states)).returning(q.id)
    return sorted(session.scalars(stmt, execution_options={"synchronize_session": False}))


# --- the loop ---------------------------------------------------------------------------------------------

def due_in(sessions: sessionmaker[Session], queue: Queue, *, now: datetime) -> float | None:
    """Seconds from `now` until the queue's earliest waiting row falls due (0 or less: one is due now; None:
    nothing waits), read through its due index: what an idle worker waits for (`Worker.add_job(due_in=...)`)."""
    if queue.due is None:
        raise ValueError(f"{queue.name}: a queue without due times has nothing scheduled")
    due = queue.c(queue.due)
    with transaction(sessions) as s:
        at = s.scalar(select(func.min(due)).where(queue.waiting(None)))
        if queue.due_null and s.scalar(select(literal(1)).where(queue.waiting(None), due.is_(None)).limit(1)):
            return 0.0
    return None if at is None else (at - now).total_seconds()


def drain(step: Callable[[], int], *, batch: int, max_seconds: float | None = None) -> int:
    """Run `step` (one batch of work; returns how much it did) until a batch comes back short, or, with
    `max_seconds`, until that much time has passed (the worker's fair turn); returns the total."""
    total, started = 0, time.perf_counter()
    while True:
        done = step()
        total += done
        if done < batch or (max_seconds is not None and time.perf_counter() - started >= max_seconds):
            return total
