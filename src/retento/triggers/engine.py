"""The trigger engine: reacts to events (bus subscriber) and fires due delayed runs (worker job).

Every evaluation leaves a run-log row. Acting happens inside a savepoint of the caller's transaction,
together with a `trigger_firings` row whose unique key (trigger, entity, entity id, triggering event)
makes each run act at most once; the bus cursor or the timer row advances in the same transaction,
so each run acts at least once while its condition holds.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from retento.bus import SLICE_SECONDS, Event
from retento.clock import Clock
from retento.customers import service as customers
from retento.customers.models import Customer
from retento.db import insert_rows, transaction
from retento.errors import DomainError
from retento.history.schemas import ActorType, ChangeContext, Source
from retento.orders import service as orders
from retento.orders.models import Order
from retento.sites.models import Site
from retento.triggers import actions as registry
from retento.triggers import dispatch
from retento.triggers import timers
from retento.triggers.conditions import Condition, Evaluator, compile_condition
from retento.triggers.models import Firing, Run, Timer, Trigger
from retento.triggers.schemas import LimitPer, OnChange, TriggerIn

log = logging.getLogger(__name__)
BUFFER = "trigger_buffer"  # session.info key: timers and run-log rows waiting for the commit

ORDER_FIELDS = frozenset(orders.FLAT) | {"id", "site", "external_id", "number", "created_at", "status_updated_at",
                                         "status_group"}
CUSTOMER_FIELDS = frozenset(customers.COLUMNS) | {"id", "site_id", "email_confirmed_at", "created_at", "tags",
                                                  "interests", "consents"}
FIELDS = {"order": ORDER_FIELDS, "customer": CUSTOMER_FIELDS}


def _needs_data(action: Any) -> bool:
    """Whether an action reads the order and customer data (a webhook body, `{order.number}` placeholders)."""
    params = action.params
    return action.type == "webhook" or any(m.group(1) in ("order", "customer") for k in ("title", "text")
                                           for m in registry.PLACEHOLDER.finditer(str(params.get(k) or "")))


@dataclass
class Compiled:
    id: int
    name: str
    active: bool
    spec: TriggerIn
    condition: Condition
    actions: list[tuple[registry.ActionSpec, Any]]
    site_ids: frozenset[int] | None
    needs_now: frozenset[str]  # entities the condition (or delay) needs on the event
    needs_fire: frozenset[str] = field(default_factory=frozenset)  # ... at fire time (condition and actions)
    since: datetime | None = None  # events that occurred before the trigger existed are not reacted to
    version: int = 1
    guard: dispatch.Guard | None = None  # the `&&` part it is indexed on (see dispatch)
    binds: dict[str, frozenset[str] | None] = field(default_factory=dict)  # variable -> fields the condition reads


def compile_trigger(session: Session | None, spec: TriggerIn, *, trigger_id: int = 0,
                    since: datetime | None = None, version: int = 1) -> Compiled:
    """Compile a validated definition; DomainError names the wrong part (condition, actions.N.x)."""
    try:
        condition = compile_condition(spec.condition, fields=FIELDS)
    except ValueError as exc:
        raise DomainError.one("condition", str(exc)) from None
    parsed = [registry.parse(session, a.type, a.params, prefix=f"actions.{n}.") for n, a in enumerate(spec.actions)]
    site_ids = None
    if spec.sites and session is not None:
        by_code = {code: sid for code, sid in session.execute(select(Site.code, Site.id))}
        for n, code in enumerate(spec.sites):
            if code not in by_code:
                raise DomainError.one(f"sites.{n}", f"unknown site {code!r}")
        site_ids = frozenset(by_code[c] for c in spec.sites)
    cond_needs = condition.variables & {"order", "customer"}
    needs_now = cond_needs | ({"customer"} if spec.delay and spec.delay.at else set())
    needs_fire = cond_needs | ({"order", "customer"} if any(_needs_data(a) for a in spec.actions) else set())
    binds = {v: condition.fields.get(v) for v in condition.variables & {"event", "order", "customer", "changes"}}
    guard = dispatch.pick(dispatch.guards_of(text for text, _ in condition.parts))
    return Compiled(trigger_id, spec.name, spec.active, spec, condition, parsed, site_ids, frozenset(needs_now),
                    frozenset(needs_fire), since, version, guard, binds)


def event_view(ev: Event) -> dict[str, Any]:
    return {"id": ev.id, "type": ev.type, "name": ev.name, "occurred_at": ev.occurred_at, "source": ev.source,
            "actor_type": ev.actor_type, "actor_id": ev.actor_id, "depth": ev.depth, "data": ev.payload}


def changes_of(ev: Event) -> list[dict[str, Any]]:
    """The change set: field, old, new, source, actor."""
    actor = f"{ev.actor_type}:{ev.actor_id}" if ev.actor_id else ev.actor_type
    if ev.type == "order_status_changed":
        raw = [{"field": "status", "old": ev.payload.get("old"), "new": ev.payload.get("new")}]
    else:
        raw = ev.payload.get("changes") or []
    return [{"field": c.get("field"), "old": c.get("old"), "new": c.get("new"), "source": ev.source, "actor": actor}
            for c in raw]


@dataclass
class Selection:
    candidates: list[Compiled]  # their condition runs
    misses: list[Compiled]  # their guard is false for the event
    entity_groups: list[dispatch.Group[Compiled]]  # guards on the order / customer, split once it is read


@dataclass
class Preloaded:
    """Orders, customers and pending timers of a batch of events, read in a few queries. When a trigger acts on
    an event, the snapshots of its order and customer are dropped, so later events read them fresh."""

    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    pending: dict[tuple[str, int], list[Timer]] = field(default_factory=dict)  # pending timers of changed entities
    events: dict[int, Event] = field(default_factory=dict)  # triggering events of due timers
    changes: dict[str, dict[int, list[tuple[int, set[str]]]]] = field(default_factory=dict)  # see change_events
    selection: dict[int, Selection] = field(default_factory=dict)  # event id -> triggers to run / rejected
    buffered: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)  # timers not stored yet

    def forget(self, ev: Event) -> None:
        """A trigger acted on the event: its order and customer (all that actions change) are read again."""
        self.orders.pop(ev.order_id, None)  # type: ignore[arg-type]
        self.customers.pop(ev.customer_id, None)  # type: ignore[arg-type]


def load_variables(session: Session, ev: Event, needs: frozenset[str] | set[str], *, order_id: int | None,
                   customer_id: int | None, preloaded: Preloaded | None = None) -> dict[str, Any]:
    """Fresh order / customer data (only what is needed) plus the event and its change set."""
    out: dict[str, Any] = {"event": event_view(ev), "changes": changes_of(ev), "order": None, "customer": None}
    if "order" in needs and order_id is not None:
        snap = preloaded.orders.get(order_id) if preloaded else None
        if snap is None:
            order = session.get(Order, order_id)
            snap = _with_group(session, orders.snapshot(session, order)) if order is not None else None
        out["order"] = snap
    if "customer" in needs and customer_id is not None:
        snap = preloaded.customers.get(customer_id) if preloaded else None
        if snap is None:
            customer = session.get(Customer, customer_id)
            snap = customers.snapshot(session, customer) if customer is not None else None
        out["customer"] = snap
    return out


def _with_group(session: Session, snap: dict[str, Any]) -> dict[str, Any]:
    groups = session.info.get("trigger_status_groups")
    if groups is None:
        groups = session.info["trigger_status_groups"] = orders.status_groups(session)
    snap["status_group"] = groups.get(snap["status"])
    return snap


class Engine:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock, *, max_depth: int, batch: int) -> None:
        self._sessions, self._clock = sessions, clock
        self._max_depth, self._batch = max_depth, batch
        self._cache: dict[int, Compiled] = {}
        self._by_type: dict[str, list[Compiled]] = {}  # active triggers by the event types they listen to
        self._any_cancel = False  # some trigger cancels pending runs when the entity changes
        self._plans: dict[tuple[str, str | None, int | None], dispatch.Plan[Compiled]] = {}
        self._min_depth = max_depth  # the lowest chain-depth limit of any trigger
        self._stamp: tuple[Any, ...] | None = None
        self._local = threading.local()
        self._lock = threading.Lock()

    @property
    def evaluator(self) -> Evaluator:
        ev = getattr(self._local, "evaluator", None)
        if ev is None:
            ev = self._local.evaluator = Evaluator()
        return ev

    def triggers(self, session: Session) -> dict[int, Compiled]:
        """Compiled triggers, recompiled only when a definition changed (checked once per transaction)."""
        if session.info.get("trigger_stamp_checked"):
            return self._cache
        stamp = tuple(session.execute(select(func.count(Trigger.id), func.max(Trigger.updated_at),
                                             func.sum(Trigger.version))).one())
        with self._lock:
            if stamp != self._stamp:
                cache = {}
                for t in session.scalars(select(Trigger)):
                    try:  # noqa: SIM105
                        cache[t.id] = compile_trigger(session, TriggerIn.model_validate(t.definition), trigger_id=t.id,
                                                     since=t.created_at, version=t.version)
                    except (DomainError, ValueError) as exc:
                        log.error("trigger %s (%s) no longer compiles, skipped: %s", t.id, t.name, exc)
                by_type: dict[str, list[Compiled]] = {}
                for t in cache.values():
                    for typ in t.spec.events if t.active else ():
                        by_type.setdefault(typ, []).append(t)
                self._any_cancel = any(t.spec.on_change.policy == OnChange.CANCEL for t in cache.values())
                self._cache, self._by_type, self._stamp = cache, by_type, stamp
                self._plans = {}
                self._min_depth = min((t.spec.max_depth or self._max_depth for t in cache.values()),
                                      default=self._max_depth)
        session.info["trigger_stamp_checked"] = True
        return self._cache

    # ---- on an event --------------------------------------------------------------------------------------

    def _plan(self, ev: Event) -> dispatch.Plan[Compiled]:
        """The triggers listening to events of this type, name and site, indexed by their guards (cached until a
        definition changes)."""
        key = (ev.type, ev.name, ev.site_id)
        plan = self._plans.get(key)
        if plan is None:
            listening = [t for t in self._by_type.get(ev.type, ()) if _listens(t, ev, since=False)]
            plan = self._plans[key] = dispatch.build_plan(listening, lambda t: t.guard, lambda t: t.since)
        return plan

    def _select(self, ev: Event) -> Selection:
        """The triggers whose condition must run for the event, and those whose guard already says no."""
        plan = self._plan(ev)
        if (plan.newest is not None and ev.occurred_at < plan.newest) or ev.depth >= self._min_depth:
            # some trigger is younger than the event, or a chain limit may apply: every trigger on its own
            return Selection([t for t in plan.everyone if _listens(t, ev)], [], [])
        candidates, misses = list(plan.unguarded), []
        if plan.event_groups:
            changes, own = changes_of(ev), {"name": ev.name, "source": ev.source, "type": ev.type}
            for g in plan.event_groups:
                hit, miss = g.split(dispatch.event_value(g.kind, g.key, changes=changes, payload=ev.payload,
                                                         event=own))
                candidates += hit
                misses += miss
        return Selection(candidates, misses, plan.entity_groups)

    def on_event(self, session: Session, ev: Event, preloaded: Preloaded) -> None:
        now = self._clock.now()
        compiled = self.triggers(session)
        if ev.type in timers.CHANGE_TYPES:
            self._cancel_on_change(session, ev, compiled, now, preloaded)
        entity, entity_id = _entity(ev)
        if entity is None:
            return
        sel = preloaded.selection.pop(ev.id, None) or self._select(ev)
        if not (sel.candidates or sel.misses or sel.entity_groups):
            return
        runs: list[dict[str, Any]] = []
        to_schedule: list[dict[str, Any]] = []
        ready, misses = [], list(sel.misses)
        for t in sel.candidates:
            skip = self._skip_reason(t, ev)
            if skip:
                runs.append(_run(t.id, now, "event", ev, None, "skipped", skip))
            else:
                ready.append(t)
        if ready or sel.entity_groups:
            needs = frozenset().union(*(t.needs_now for t in ready), (g.kind for g in sel.entity_groups))
            variables = load_variables(session, ev, needs, order_id=ev.order_id, customer_id=ev.customer_id,
                                       preloaded=preloaded)
            for g in sel.entity_groups:
                hit, miss = g.split(dispatch.entity_value(variables.get(g.kind), g.key))
                misses += miss
                ready += hit
        if ready:
            ready.sort(key=lambda t: t.id)
            self.evaluator.bind(now=now, **variables, fields=_binds(ready))
            for t in ready:
                verdict = self.evaluator.check(t.condition)
                if not verdict.matched:
                    runs.append(_run(t.id, now, "event", ev, None, "not_matched", verdict.reason))
                elif t.spec.delay is not None:
                    tz = _timezone(session, variables.get("customer"), ev.site_id) if t.spec.delay.at else None
                    row = {"trigger_id": t.id, "entity": entity, "entity_id": entity_id, "customer_id": ev.customer_id,
                           "order_id": ev.order_id, "event_id": ev.id, "state": "pending", "reason": None,
                           "due_at": timers.due_at(t.spec.delay, at=ev.occurred_at, tz=tz), "created_at": now,
                           "finished_at": None}
                    to_schedule.append(row)
                    preloaded.buffered.setdefault((entity, entity_id), []).append(row)
                else:
                    runs.append(self.act(session, t, ev, entity, entity_id, now=now, phase="event"))
                    preloaded.forget(ev)
        if misses:
            runs.append(_misses(now, ev, misses))
        buffer = _buffer(session)
        buffer["timers"].extend(to_schedule)
        buffer["runs"].extend(runs)

    def on_batch(self, session: Session, events: list[Event]) -> None:
        """A whole batch of events (the bus's batch handler): orders, customers and pending timers are read for
        all of them at once, then each event is handled in turn. If anything raises, the buffer goes back to
        where it was (the bus rolls the batch back and hands the events over one by one)."""
        compiled = self.triggers(session)
        saved = {k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in session.info.get(BUFFER, {}).items()}
        try:
            preloaded = self._preload_events(session, events, compiled)
            for ev in events:
                self.on_event(session, ev, preloaded)
        except BaseException:
            session.info.pop(BUFFER, None)
            if saved:
                session.info[BUFFER] = saved
            raise

    def _preload_events(self, session: Session, events: list[Event], compiled: dict[int, Compiled]) -> Preloaded:
        out = Preloaded()
        needs: dict[str, set[int]] = {"order": set(), "customer": set()}
        changed: dict[str, set[int]] = {"order": set(), "customer": set()}
        for ev in events:
            if ev.type in timers.CHANGE_TYPES and self._any_cancel:
                entity = timers.CHANGE_TYPES[ev.type]
                entity_id = ev.order_id if entity == "order" else ev.customer_id
                if entity_id is not None:
                    changed[entity].add(entity_id)
            if _entity(ev)[0] is None:
                continue
            sel = out.selection[ev.id] = self._select(ev)
            wanted = set().union(*(t.needs_now for t in sel.candidates), (g.kind for g in sel.entity_groups))
            if "order" in wanted and ev.order_id is not None:
                needs["order"].add(ev.order_id)
            if "customer" in wanted and ev.customer_id is not None:
                needs["customer"].add(ev.customer_id)
        out.orders = {k: _with_group(session, v) for k, v in orders.snapshots(session, needs["order"]).items()}
        out.customers = customers.snapshots(session, needs["customer"])
        for entity, ids in changed.items():
            for timer in timers.pending_of_entities(session, entity=entity, entity_ids=ids):
                out.pending.setdefault((timer.entity, timer.entity_id), []).append(timer)
        for row in session.info.get(BUFFER, {}).get("timers", ()):  # scheduled by earlier events, not yet stored
            out.buffered.setdefault((row["entity"], row["entity_id"]), []).append(row)
        return out

    def flush(self, session: Session) -> None:
        """Store what `on_event` collected in this transaction: timers and run-log rows, a few statements for a
        whole batch of events (hooked to `before_commit`)."""
        if session.in_nested_transaction():
            return  # a savepoint ending: wait for the real commit
        buffer = session.info.pop(BUFFER, None)
        if not buffer:
            return
        runs, cancels = buffer["runs"], buffer["cancels"]
        for row in buffer["timers"]:
            cancelled = cancels.get(_timer_key(row))
            if cancelled is not None:
                row.update(state="cancelled", reason=cancelled[0], finished_at=cancelled[2])
        for row in timers.schedule(session, buffer["timers"]):
            runs.append({"trigger_id": row["trigger_id"], "at": row["created_at"], "phase": "event",
                         "event_id": row["event_id"], "timer_id": row["id"], "customer_id": row["customer_id"],
                         "order_id": row["order_id"], "outcome": "scheduled",
                         "reason": f"condition holds; fires at {row['due_at'].isoformat()}", "actions": [],
                         "misses": None})
            if row["state"] == "cancelled":
                reason, event_id, at = cancels[_timer_key(row)]
                runs.append({"trigger_id": row["trigger_id"], "at": at, "phase": "cancel", "event_id": event_id,
                             "timer_id": row["id"], "customer_id": row["customer_id"], "order_id": row["order_id"],
                             "outcome": "cancelled", "reason": reason, "actions": [], "misses": None})
        insert_rows(session, Run.__table__, runs)

    def _skip_reason(self, t: Compiled, ev: Event) -> str | None:
        if ev.source == Source.TRIGGER and ev.actor_id == str(t.id) and not t.spec.react_to_own_changes:
            return "the change was made by this trigger (set react_to_own_changes to react to it)"
        limit = t.spec.max_depth or self._max_depth
        if ev.depth >= limit:
            log.warning("trigger %s (%s) not run on event %s: chain of trigger changes reached depth %s",
                        t.id, t.name, ev.id, ev.depth)
            return f"chain of trigger-caused changes reached depth {ev.depth} (limit {limit})"
        return None

    def _cancel_on_change(self, session: Session, ev: Event, compiled: dict[int, Compiled], now: datetime,
                          preloaded: Preloaded) -> None:
        """Pending runs of the changed entity whose trigger cancels on this change: those stored are cancelled
        now, those scheduled earlier in this transaction (not stored yet) are stored cancelled."""
        entity = timers.CHANGE_TYPES[ev.type]
        entity_id = ev.order_id if entity == "order" else ev.customer_id
        if entity_id is None or not self._any_cancel:
            return
        fields = {c["field"] for c in ev.payload.get("changes", ())}

        def doomed(trigger_id: int) -> bool:
            t = compiled.get(trigger_id)
            return (t is not None and t.spec.on_change.policy == OnChange.CANCEL
                    and (not t.spec.on_change.fields or bool(fields & set(t.spec.on_change.fields))))

        reason = f"{entity} changed ({', '.join(sorted(fields))}) in event {ev.id}"
        stored = [t for t in preloaded.pending.get((entity, entity_id), ())
                  if t.state == "pending" and t.event_id < ev.id and doomed(t.trigger_id)]
        if stored:
            timers.cancel(session, stored, reason=reason, now=now, event_id=ev.id)
        cancels = _buffer(session)["cancels"]
        for row in preloaded.buffered.get((entity, entity_id), ()):
            key = _timer_key(row)
            if row["event_id"] < ev.id and key not in cancels and doomed(row["trigger_id"]):
                cancels[key] = (reason, ev.id, now)

    # ---- acting -------------------------------------------------------------------------------------------

    def act(self, session: Session, t: Compiled, ev: Event, entity: str, entity_id: int, *, now: datetime,
            phase: str, timer_id: int | None = None, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Check the limits, then run every action in one savepoint; returns the run-log row."""
        try:
            with session.begin_nested():
                return self._perform(session, t, ev, entity, entity_id, now=now, phase=phase, timer_id=timer_id,
                                     variables=variables)
        except IntegrityError:
            return _run(t.id, now, phase, ev, timer_id, "skipped", "already acted for this entity and event")
        except _ActionFailed as exc:
            return _run(t.id, now, phase, ev, timer_id, "failed",
                        f"action {exc.index} ({exc.name}) failed, nothing was changed: {exc.message}", exc.results)

    def _perform(self, session: Session, t: Compiled, ev: Event, entity: str, entity_id: int, *, now: datetime,
                 phase: str, timer_id: int | None, variables: dict[str, Any] | None,
                 firings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Limits, the firing row (now, or appended to `firings` for one insert later) and the actions.

        Raises _ActionFailed; the caller's savepoint undoes whatever the earlier actions did."""
        order_id, customer_id = ev.order_id, ev.customer_id
        over = self._limit_reached(session, t, order_id=order_id, customer_id=customer_id, now=now)
        if over:
            return _run(t.id, now, phase, ev, timer_id, "skipped", over)
        firing = {"trigger_id": t.id, "entity": entity, "entity_id": entity_id, "event_id": ev.id,
                  "customer_id": customer_id, "order_id": order_id, "at": now}
        if firings is None or t.spec.limits:  # limits count firings: those must be in the table at once
            session.execute(insert(Firing), [firing])
        else:
            firings.append(firing)
        if variables is None:  # acting on an event: read afresh (the re-check at fire time has just read them)
            variables = load_variables(session, ev, t.needs_fire, order_id=order_id, customer_id=customer_id)
        a = registry.ActionContext(session=session, now=now, trigger_id=t.id, trigger_name=t.name,
                                   key=f"trigger:{t.id}:{entity}:{entity_id}:{ev.id}",
                                   ctx=ChangeContext(Source.TRIGGER, ActorType.TRIGGER, str(t.id), depth=ev.depth + 1),
                                   event=variables["event"], order_id=order_id, customer_id=customer_id,
                                   variables={**variables, "trigger": {"id": t.id, "name": t.name}})
        results: list[dict[str, Any]] = []
        for n, (spec, params) in enumerate(t.actions):
            try:
                out = spec.handler(a, params)
            except DomainError as exc:
                results.append({"action": spec.name, "ok": False, "error": exc.message})
                raise _ActionFailed(n, spec.name, exc.message, results) from exc
            results.append({"action": spec.name, "ok": True, "result": out})
        return _run(t.id, now, phase, ev, timer_id, "acted", None, results)

    def _limit_reached(self, session: Session, t: Compiled, *, order_id: int | None, customer_id: int | None,
                       now: datetime) -> str | None:
        for limit in t.spec.limits:
            q = select(func.count(Firing.id)).where(Firing.trigger_id == t.id)
            if limit.per == LimitPer.CUSTOMER:
                if customer_id is None:
                    continue
                q = q.where(Firing.customer_id == customer_id)
            elif limit.per == LimitPer.ORDER:
                if order_id is None:
                    continue
                q = q.where(Firing.order_id == order_id)
            if limit.period_days:
                q = q.where(Firing.at > now - timedelta(days=limit.period_days))
            done = session.scalar(q) or 0
            if done >= limit.max:
                period = f" in {limit.period_days} days" if limit.period_days else ""
                return f"run limit reached: {done} of {limit.max} per {limit.per.value}{period}"
        return None

    # ---- delayed runs -------------------------------------------------------------------------------------

    def fire_due(self, *, max_seconds: float | None = None) -> int:
        """Worker job: fire due timers, a batch per transaction (act + mark done commit together); all that are
        due, or batches for about `max_seconds`."""
        total, started = 0, time.perf_counter()
        while True:
            now = self._clock.now()
            with transaction(self._sessions) as s:
                due = timers.claim_due(s, now=now, limit=self._batch)
                if due:
                    insert_rows(s, Run.__table__, self._fire_batch(s, due, now, self._preload_timers(s, due)))
            total += len(due)
            if len(due) < self._batch or (max_seconds is not None and time.perf_counter() - started >= max_seconds):
                return total

    def fire_slice(self) -> int:
        """The worker's fair share of due timers (see `Bus.dispatch_slice`)."""
        return self.fire_due(max_seconds=SLICE_SECONDS)

    def _fire_batch(self, session: Session, due: list[Timer], now: datetime,
                    preloaded: Preloaded) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        acting = []
        for timer in due:
            checked = self._recheck(session, timer, now, preloaded)
            if isinstance(checked, dict):
                runs.append(checked)
            else:
                acting.append((timer, *checked))
        if not acting:
            return runs
        try:  # the common case: every run succeeds, one savepoint and one firing insert for the batch
            firings: list[dict[str, Any]] = []
            with session.begin_nested():
                done = [self._perform(session, t, ev, timer.entity, timer.entity_id, now=now, phase="fire",
                                      timer_id=timer.id, variables=variables, firings=firings)
                        for timer, t, ev, variables in acting]
                if firings:
                    session.execute(insert(Firing), firings)
        except (_ActionFailed, IntegrityError):  # some run fails: redo them one savepoint each
            done = [self.act(session, t, ev, timer.entity, timer.entity_id, now=now, phase="fire",
                             timer_id=timer.id, variables=variables) for timer, t, ev, variables in acting]
        for (timer, *_), run in zip(acting, done, strict=True):
            state = {"acted": "done", "failed": "failed"}.get(run["outcome"], "skipped")
            timers.finish(timer, state=state, reason=run["reason"], now=now)
        return runs + done

    def _preload_timers(self, session: Session, due: list[Timer]) -> Preloaded:
        """Events, order and customer snapshots, and later changes of a batch of due timers in a few queries."""
        compiled = self.triggers(session)
        out = Preloaded()
        out.events = {e.id: e for e in session.scalars(select(Event).where(Event.id.in_({t.event_id for t in due})))}
        needs: dict[str, set[int]] = {"order": set(), "customer": set()}
        changed: dict[str, set[int]] = {"order": set(), "customer": set()}
        for timer in due:
            t = compiled.get(timer.trigger_id)
            if t is None:
                continue
            for kind, entity_id in (("order", timer.order_id), ("customer", timer.customer_id)):
                if kind in t.needs_fire and entity_id is not None:
                    needs[kind].add(entity_id)
            if t.spec.on_change.policy == OnChange.CANCEL:
                changed[timer.entity].add(timer.entity_id)
        out.orders = {k: _with_group(session, v) for k, v in orders.snapshots(session, needs["order"]).items()}
        out.customers = customers.snapshots(session, needs["customer"])
        after = min(t.event_id for t in due)
        out.changes = {kind: timers.change_events(session, entity=kind, entity_ids=ids, after_event_id=after)
                       for kind, ids in changed.items() if ids}
        return out

    def _recheck(self, session: Session, timer: Timer, now: datetime, preloaded: Preloaded) -> dict[str, Any] | tuple:
        """A run-log row if the timer ends here (cancelled, condition false), else (trigger, event, variables)."""
        ev = preloaded.events.get(timer.event_id)
        t = self.triggers(session).get(timer.trigger_id)
        if t is None or not t.active or ev is None:
            reason = "trigger is switched off" if t is not None else "trigger no longer exists"
            timers.finish(timer, state="cancelled", reason=reason, now=now)
            return _run(timer.trigger_id, now, "fire", ev, timer.id, "cancelled", reason, customer_id=timer.customer_id,
                        order_id=timer.order_id)
        if t.spec.on_change.policy == OnChange.CANCEL:
            changed = timers.first_change(preloaded.changes.get(timer.entity, {}).get(timer.entity_id, ()),
                                          after_event_id=timer.event_id, fields=t.spec.on_change.fields)
            if changed is not None:
                reason = f"{timer.entity} changed in event {changed} before the run was due"
                timers.finish(timer, state="cancelled", reason=reason, now=now)
                return _run(t.id, now, "fire", ev, timer.id, "cancelled", reason)
        variables = load_variables(session, ev, t.needs_fire, order_id=timer.order_id, customer_id=timer.customer_id,
                                   preloaded=preloaded)
        self.evaluator.bind(now=now, **variables)
        verdict = self.evaluator.check(t.condition)
        if not verdict.matched:
            reason = f"re-check at fire time: {verdict.reason}"
            timers.finish(timer, state="skipped", reason=reason, now=now)
            return _run(t.id, now, "fire", ev, timer.id, "not_matched", reason)
        return t, ev, variables


class _ActionFailed(Exception):
    def __init__(self, index: int, name: str, message: str, results: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.index, self.name, self.message, self.results = index, name, message, results


def _entity(ev: Event) -> tuple[str | None, int | None]:
    if ev.order_id is not None:
        return "order", ev.order_id
    if ev.customer_id is not None:
        return "customer", ev.customer_id
    return None, None


def _listens(t: Compiled, ev: Event, *, since: bool = True) -> bool:
    if ev.type not in t.spec.events or (since and t.since is not None and ev.occurred_at < t.since):
        return False
    if t.spec.event_names and ev.name not in t.spec.event_names:
        return False
    return t.site_ids is None or ev.site_id in t.site_ids


def _timezone(session: Session, customer: dict[str, Any] | None, site_id: int | None) -> str | None:
    if customer and customer.get("timezone"):
        return customer["timezone"]
    if site_id is None:
        return None
    zones = session.info.setdefault("trigger_site_timezones", {})
    if site_id not in zones:
        zones[site_id] = session.scalar(select(Site.timezone).where(Site.id == site_id))
    return zones[site_id]


def _run(trigger_id: int, now: datetime, phase: str, ev: Event | None, timer_id: int | None, outcome: str,
         reason: str | None, actions: list[dict[str, Any]] | None = None, *, customer_id: int | None = None,
         order_id: int | None = None) -> dict[str, Any]:
    return {"trigger_id": trigger_id, "at": now, "phase": phase, "event_id": ev.id if ev else None,
            "timer_id": timer_id, "customer_id": ev.customer_id if ev else customer_id,
            "order_id": ev.order_id if ev else order_id, "outcome": outcome, "reason": reason,
            "actions": actions or [], "misses": None}


def _misses(now: datetime, ev: Event, rejected: list[Compiled]) -> dict[str, Any]:
    """One run-log row for every trigger whose guard was false on the event: [trigger id, version, part]."""
    return {"trigger_id": None, "at": now, "phase": "event", "event_id": ev.id, "timer_id": None,
            "customer_id": ev.customer_id, "order_id": ev.order_id, "outcome": "not_matched", "reason": None,
            "actions": [], "misses": [[t.id, t.version, t.guard.part if t.guard else 0] for t in rejected]}


def _binds(triggers: list[Compiled]) -> dict[str, frozenset[str] | None]:
    """The variables and fields the conditions of these triggers read (None: the whole variable)."""
    out: dict[str, frozenset[str] | None] = {}
    for t in triggers:
        for var, wanted in t.binds.items():
            if var in out and out[var] is None:
                continue
            out[var] = None if wanted is None else (out.get(var) or frozenset()) | wanted
    return out


def _buffer(session: Session) -> dict[str, Any]:
    return session.info.setdefault(BUFFER, {"timers": [], "runs": [], "cancels": {}})


def _timer_key(row: dict[str, Any]) -> tuple[int, str, int, int]:
    return row["trigger_id"], row["entity"], row["entity_id"], row["event_id"]
