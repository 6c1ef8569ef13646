"""Acting: the run limits, the firing row that makes a run act at most once, and the actions.

A batch of runs acts inside one savepoint: limits and firing rows run by run (a limited trigger's firing is
stored at once, as the next run's limit counts it), then in waves of runs that change no order or customer in common (so
each entity sees its runs one after the other, as acting one by one would), within a wave action slot by slot,
each action type over all the runs that have it in one call (the registry's `many` handler: set-based service calls). If anything fails the
savepoint goes and the runs act again one by one, each in its own savepoint, so a failing run changes nothing
and the others still act.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from retento.core.bus import Event
from retento.core.changes import ActorType, ChangeContext, Source
from retento.core.db.bulk import insert_rows
from retento.core.db.locks import advisory_key, lock_keys
from retento.core.errors import DomainError
from retento.customers import service as customers
from retento.orders import service as orders
from retento.triggers import actions as registry
from retento.triggers.compiled import Compiled
from retento.triggers.data import changes_of, event_view, load_variables, run_row, with_group
from retento.triggers.models import Firing
from retento.triggers.schemas import LimitPer

if TYPE_CHECKING:
    from retento.triggers.models import Timer


@dataclass
class Act:
    """A run whose condition holds and that acts now (on the event, or at fire time with fresh `variables`)."""

    t: Compiled
    ev: Event
    entity: str
    entity_id: int
    phase: str
    timer: Timer | None = None
    variables: dict[str, Any] | None = None

    @property
    def timer_id(self) -> int | None:
        return self.timer.id if self.timer is not None else None


class Acting:
    """Mixed into the Engine."""

    def act(self, session: Session, a: Act, *, now: datetime) -> dict[str, Any]:
        """Check the limits, then run every action in one savepoint; returns the run-log row."""
        _lock(session, [a])  # see act_many
        try:
            with session.begin_nested():
                return self._perform(session, a, now=now)
        except IntegrityError:
            return run_row(a.t.id, now, a.phase, a.ev, a.timer_id, "skipped", "already acted for this entity and event")
        except _ActionFailed as exc:
            return run_row(a.t.id, now, a.phase, a.ev, a.timer_id, "failed",
                           f"action {exc.index} ({exc.name}) failed, nothing was changed: {exc.message}", exc.results)

    def act_many(self, session: Session, acts: list[Act], *, now: datetime) -> list[dict[str, Any]]:
        """Every run in one savepoint with set-based actions; if any fails, each again in its own savepoint.

        First the limited triggers' locks (`_lock`, until commit), in one statement before the savepoint: runs
        under a limit are counted and their firings stored by one worker at a time, so concurrent workers (bus
        batches, fire workers) cannot both act under one limit."""
        _lock(session, acts)
        if len(acts) == 1:
            return [self.act(session, acts[0], now=now)]
        try:
            with session.begin_nested():
                return self._perform_many(session, acts, now=now)
        except (_ActionFailed, DomainError, IntegrityError):
            return [self.act(session, a, now=now) for a in acts]

    def _perform(self, session: Session, a: Act, *, now: datetime) -> dict[str, Any]:
        """Limits, the firing row and the actions of one run. Raises _ActionFailed; the caller's savepoint undoes
        whatever the earlier actions did."""
        over = _over_limit(a, _limit_counts(session, [a], now))
        if over:
            return run_row(a.t.id, now, a.phase, a.ev, a.timer_id, "skipped", over)
        insert_rows(session, Firing.__table__, [_firing(a, now)])
        variables = a.variables
        if variables is None:  # acting on an event: read afresh (the re-check at fire time has just read them)
            variables = load_variables(session, a.ev, a.t.needs_act, order_id=a.ev.order_id,
                                       customer_id=a.ev.customer_id)
        context = _context(session, a, variables, now)
        results: list[dict[str, Any]] = []
        for n, (spec, params) in enumerate(a.t.actions):
            try:
                out = spec.handler(context, params)
            except DomainError as exc:
                results.append({"action": spec.name, "ok": False, "error": exc.message})
                raise _ActionFailed(n, spec.name, exc.message, results) from exc
            results.append({"action": spec.name, "ok": True, "result": out})
        return run_row(a.t.id, now, a.phase, a.ev, a.timer_id, "acted", None, results)

    def _perform_many(self, session: Session, acts: list[Act], *, now: datetime) -> list[dict[str, Any]]:
        out: list[dict[str, Any] | None] = [None] * len(acts)
        live, firings = [], []
        counts = _limit_counts(session, acts, now)
        for i, a in enumerate(acts):
            over = _over_limit(a, counts)
            if over:
                out[i] = run_row(a.t.id, now, a.phase, a.ev, a.timer_id, "skipped", over)
                continue
            firings.append(_firing(a, now))
            live.append(i)
        if firings:
            # Core rows, not the ORM's bulk insert: that leaves out None values and so splits the rows into a
            # statement per run of the same keys (customer and order runs alternate)
            insert_rows(session, Firing.__table__, firings)
        contexts = self._contexts(session, [acts[i] for i in live], now)
        results: dict[int, list[dict[str, Any]]] = {i: [] for i in live}
        for wave in _waves([acts[i] for i in live]):  # runs changing one order or customer act in turn
            self._act_wave(acts, [live[j] for j in wave], contexts, results)
        for i in live:
            a = acts[i]
            out[i] = run_row(a.t.id, now, a.phase, a.ev, a.timer_id, "acted", None, results[i])
        return out  # type: ignore[return-value]

    @staticmethod
    def _act_wave(acts: list[Act], live: list[int], contexts: dict[int, registry.ActionContext],
                  results: dict[int, list[dict[str, Any]]]) -> None:
        """Runs that share no order or customer: action slot by slot, each action type over all its runs."""
        for n in range(max((len(acts[i].t.actions) for i in live), default=0)):
            by_type: dict[str, list[int]] = {}
            for i in live:
                if n < len(acts[i].t.actions):
                    by_type.setdefault(acts[i].t.actions[n][0].name, []).append(i)
            for name, idx in by_type.items():
                spec = acts[idx[0]].t.actions[n][0]
                params = [acts[i].t.actions[n][1] for i in idx]
                if spec.many is not None:
                    done = spec.many([contexts[id(acts[i])] for i in idx], params)
                else:
                    done = [spec.handler(contexts[id(acts[i])], p) for i, p in zip(idx, params, strict=True)]
                for i, result in zip(idx, done, strict=True):
                    results[i].append({"action": name, "ok": True, "result": result})

    def _contexts(self, session: Session, acts: list[Act], now: datetime) -> dict[int, registry.ActionContext]:
        """Action contexts of the runs (by `id()` of the Act), reading the data of those acting on an event at
        once."""
        wanted: dict[str, set[int]] = {"order": set(), "customer": set()}
        for a in acts:
            if a.variables is None:
                if "order" in a.t.needs_act and a.ev.order_id is not None:
                    wanted["order"].add(a.ev.order_id)
                if "customer" in a.t.needs_act and a.ev.customer_id is not None:
                    wanted["customer"].add(a.ev.customer_id)
        snaps = {"order": {k: with_group(session, v) for k, v in orders.snapshots(session, wanted["order"]).items()},
                 "customer": customers.snapshots(session, wanted["customer"])}
        out = {}
        for a in acts:
            variables = a.variables
            if variables is None:
                variables = {"event": event_view(a.ev), "changes": changes_of(a.ev),
                             "order": snaps["order"].get(a.ev.order_id) if "order" in a.t.needs_act else None,
                             "customer": snaps["customer"].get(a.ev.customer_id)
                             if "customer" in a.t.needs_act else None}
            out[id(a)] = _context(session, a, variables, now)
        return out


def _limit_key(a: Act, n: int) -> tuple[int, int, int | None] | None:
    """Which count limit `n` of the run's trigger is about: (trigger, limit, customer / order / None)."""
    per = a.t.spec.limits[n].per
    if per == LimitPer.TRIGGER:
        return a.t.id, n, None
    entity_id = a.ev.customer_id if per == LimitPer.CUSTOMER else a.ev.order_id
    return (a.t.id, n, entity_id) if entity_id is not None else None


LOCK_BUCKETS = 16  # per trigger and kind of limit key (customer, order): see `_lock`


def _lock(session: Session, acts: list[Act]) -> None:
    """PostgreSQL: advisory locks (until commit) so that runs under a limit are counted and their firings stored
    by one worker at a time; runs of triggers without limits lock nothing. SQLite: one writer.

    A run of a trigger limited per customer or per order locks the bucket of that customer / order (its id
    modulo `LOCK_BUCKETS`, per trigger), so workers acting for other customers and orders of the trigger rarely
    wait for each other; a run of a trigger limited per trigger locks every bucket of the trigger (which also
    holds if a worker still runs an older version of the trigger's limits). Buckets rather than one lock per
    customer: a batch of 500 runs would otherwise hold 500 locks, and PostgreSQL's lock table is shared by every
    session (64 per connection by default)."""
    keys: set[int] = set()
    for a in acts:
        limits = a.t.spec.limits
        if not limits:
            continue
        base = a.t.id * 2 * LOCK_BUCKETS
        if any(limit.per == LimitPer.TRIGGER for limit in limits):
            keys.update(advisory_key("trigger", base + b) for b in range(2 * LOCK_BUCKETS))
            continue
        for limit in limits:
            customer = limit.per == LimitPer.CUSTOMER
            entity_id = a.ev.customer_id if customer else a.ev.order_id
            if entity_id is not None:
                bucket = entity_id % LOCK_BUCKETS + (0 if customer else LOCK_BUCKETS)
                keys.add(advisory_key("trigger", base + bucket))
    lock_keys(session, keys)


def _limit_counts(session: Session, acts: list[Act], now: datetime) -> dict[tuple[int, int, int | None], int]:
    """Firings so far for every limit the runs meet: one grouped query per kind of limit (per customer, order or
    trigger) and period, over all the triggers that have one."""
    wanted: dict[tuple[LimitPer, int | None], tuple[dict[int, set[int]], set[int | None]]] = {}
    for a in acts:
        for n, limit in enumerate(a.t.spec.limits):
            key = _limit_key(a, n)
            if key is not None:
                limits, ids = wanted.setdefault((limit.per, limit.period_days), ({}, set()))
                limits.setdefault(a.t.id, set()).add(n)  # trigger -> its limits of this kind
                ids.add(key[2])
    counts: dict[tuple[int, int, int | None], int] = {}
    for (per, period_days), (limits, ids) in wanted.items():
        column = {LimitPer.CUSTOMER: Firing.customer_id, LimitPer.ORDER: Firing.order_id}.get(per)
        q = select(Firing.trigger_id, column if column is not None else literal(None), func.count(Firing.id)).where(
            Firing.trigger_id.in_(list(limits)))
        if column is not None:
            q = q.where(column.in_(ids)).group_by(Firing.trigger_id, column)
        else:
            q = q.group_by(Firing.trigger_id)
        if period_days:
            q = q.where(Firing.at > now - timedelta(days=period_days))
        for tid, entity_id, done in session.execute(q):
            if column is None or entity_id in ids:
                for n in limits[tid]:
                    counts[(tid, n, entity_id)] = done
    return counts


def _over_limit(a: Act, counts: dict[tuple[int, int, int | None], int]) -> str | None:
    """The reason if a limit is reached, else None and the run is counted (for the runs after it)."""
    keys = [(n, _limit_key(a, n)) for n in range(len(a.t.spec.limits))]
    for n, key in keys:
        limit = a.t.spec.limits[n]
        done = counts.get(key, 0) if key is not None else 0
        if key is not None and done >= limit.max:
            period = f" in {limit.period_days} days" if limit.period_days else ""
            return f"run limit reached: {done} of {limit.max} per {limit.per.value}{period}"
    for _, key in keys:
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    return None


def _waves(acts: list[Act]) -> list[list[int]]:
    """Positions of the runs grouped into waves acted one after the other; within a wave action slot by slot,
    each type over its runs in list order. Two runs that change the same order or customer go to different waves
    in their order, unless each changes it with one action of the same type in the same slot (a `many` call
    applies those in list order itself): the entity then sees its changes in the order one by one would make."""
    last: dict[tuple[str, int | None], tuple[int, Any]] = {}  # entity -> (wave, signature) of its last run
    out: list[list[int]] = []
    for i, a in enumerate(acts):
        sigs = _signatures(a)
        w = 0
        for entity, sig in sigs.items():
            if entity in last:
                wave, before = last[entity]
                w = max(w, wave if sig is not None and sig == before else wave + 1)
        if w == len(out):
            out.append([])
        out[w].append(i)
        for entity, sig in sigs.items():
            last[entity] = (w, sig)
    return out


def _signatures(a: Act) -> dict[tuple[str, int | None], Any]:
    """Entity -> (slot, action) if the run changes it with one action, None if with several."""
    ids = {"order": a.ev.order_id, "customer": a.ev.customer_id}
    out: dict[tuple[str, int | None], Any] = {}
    for n, (spec, params) in enumerate(a.t.actions):
        for kind in spec.changes(params) if spec.changes is not None else ids:
            if ids[kind] is None:
                continue
            key = (kind, ids[kind])
            out[key] = None if key in out else (n, spec.name)
    return out


def changed_by(a: Act) -> set[tuple[str, int | None]]:
    """The order and customer the run's actions change (both, for an action that does not say)."""
    ids = {"order": a.ev.order_id, "customer": a.ev.customer_id}
    out = set()
    for spec, params in a.t.actions:
        kinds = spec.changes(params) if spec.changes is not None else ids
        out.update((kind, ids[kind]) for kind in kinds if ids[kind] is not None)
    return out


def _firing(a: Act, now: datetime) -> dict[str, Any]:
    return {"trigger_id": a.t.id, "entity": a.entity, "entity_id": a.entity_id, "event_id": a.ev.id,
            "customer_id": a.ev.customer_id, "order_id": a.ev.order_id, "at": now}


def _context(session: Session, a: Act, variables: dict[str, Any], now: datetime) -> registry.ActionContext:
    t, ev = a.t, a.ev
    return registry.ActionContext(session=session, now=now, trigger_id=t.id, trigger_name=t.name,
                                  key=f"trigger:{t.id}:{a.entity}:{a.entity_id}:{ev.id}",
                                  ctx=ChangeContext(Source.TRIGGER, ActorType.TRIGGER, str(t.id), depth=ev.depth + 1),
                                  event=variables["event"], order_id=ev.order_id, customer_id=ev.customer_id,
                                  variables={**variables, "trigger": {"id": t.id, "name": t.name}})


class _ActionFailed(Exception):
    def __init__(self, index: int, name: str, message: str, results: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.index, self.name, self.message, self.results = index, name, message, results
