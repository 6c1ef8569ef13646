"""The trigger engine: reacts to events (bus subscriber) and fires due delayed runs (worker job, `delayed`).

The run log records the runs that matched: scheduled (one shared row per event for the runs it scheduled, see
`data.event_row`), acted, skipped by a rule, failed, cancelled, and the re-checks at fire time. An evaluation on
an event whose condition is false (by its guard or when run) writes nothing: `retento triggers explain` answers
"why didn't it fire" on demand by evaluating again. An evaluation error keeps a row with the error. Acting (`acting`) happens inside a savepoint of the caller's transaction,
together with a `trigger_firings` row whose unique key (trigger, entity, entity id, triggering event)
makes each run act at most once; the bus cursor or the timer row advances in the same transaction,
so each run acts at least once while its condition holds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, sessionmaker

from retento.app import from_session
from retento.core.bus import Event
from retento.core.changes import Source
from retento.core.clock import Clock
from retento.core.db.bulk import insert_rows
from retento.core.errors import DomainError
from retento.customers import service as customers
from retento.orders import service as orders
from retento.sites.models import Site
from retento.triggers import dispatch, explain, timers
from retento.triggers.acting import Act, Acting, changed_by
from retento.triggers.compiled import Compiled, compile_trigger
from retento.triggers.conditions import Evaluator
from retento.triggers.data import (
    Preloaded,
    Selection,
    as_event_rows,
    changes_of,
    event_row,
    load_variables,
    order_snapshots,
    run_row,
    with_group,
)
from retento.triggers.delayed import DelayedRuns
from retento.triggers.models import Run, Trigger
from retento.triggers.schemas import OnChange, TriggerIn

log = logging.getLogger(__name__)
DERIVED_MAX = 20_000  # cached sets of triggers (`_needs_of`, `_binds_of`) before the cache starts again
CHOICES_MAX = 4_096  # outcomes of one plan's event guards kept (`_Listening.choices`); bounded by their literals
BUFFER = "trigger_buffer"  # session.info key: timers and run-log rows waiting for the commit

# what tells whether any definition changed (built once: a statement's construction costs more than its run)
_STAMP = select(func.count(Trigger.id), func.max(Trigger.updated_at), func.sum(Trigger.version),
                func.count(Trigger.debug_until), func.max(Trigger.debug_until))
_SITE_TIMEZONE = select(Site.__table__.c.timezone).where(Site.__table__.c.id == bindparam("site_id"))


class Engine(Acting, DelayedRuns):
    def __init__(self, sessions: sessionmaker[Session], clock: Clock, *, max_depth: int, batch: int) -> None:
        self._sessions, self._clock = sessions, clock
        self._max_depth, self._batch = max_depth, batch
        self._cache: dict[int, Compiled] = {}
        self._by_type: dict[str, list[Compiled]] = {}  # active triggers by the event types they listen to
        self._any_cancel = False  # some trigger cancels pending runs when the entity changes
        self._plans: dict[tuple[str, str | None, int | None], _Listening] = {}
        self._derived: dict[Any, Any] = {}  # per set of triggers: what they read (`_needs_of`, `_binds_of`)
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
        stamp = tuple(session.execute(_STAMP).one())
        with self._lock:
            if stamp != self._stamp:
                cache, actions = {}, from_session(session).parts.actions
                for t in session.scalars(select(Trigger)):
                    try:
                        cache[t.id] = compile_trigger(session, TriggerIn.model_validate(t.definition), actions=actions,
                                                     trigger_id=t.id, since=t.created_at, version=t.version)
                        cache[t.id].debug_until = t.debug_until
                    except (DomainError, ValueError) as exc:
                        log.error("trigger %s (%s) no longer compiles, skipped: %s", t.id, t.name, exc)
                by_type: dict[str, list[Compiled]] = {}
                for t in cache.values():
                    for typ in t.spec.events if t.active else ():
                        by_type.setdefault(typ, []).append(t)
                self._any_cancel = any(t.spec.on_change.policy == OnChange.CANCEL for t in cache.values())
                self._cache, self._by_type, self._stamp = cache, by_type, stamp
                self._plans, self._derived = {}, {}
                self._min_depth = min((t.spec.max_depth or self._max_depth for t in cache.values()),
                                      default=self._max_depth)
        session.info["trigger_stamp_checked"] = True
        return self._cache

    def interest(self, session: Session) -> frozenset[str]:
        """The event types some active trigger listens to, and the entity changes that cancel pending runs if a
        trigger cancels on a change (the bus passes over the others unread)."""
        self.triggers(session)
        return frozenset(self._by_type).union(timers.CHANGE_TYPES if self._any_cancel else ())

    # ---- on an event --------------------------------------------------------------------------------------

    def _listening(self, ev: Event) -> _Listening:
        """The triggers listening to events of this type, name and site, indexed by their guards (cached until a
        definition changes)."""
        key = (ev.type, ev.name, ev.site_id)
        found = self._plans.get(key)
        if found is None:
            listening = [t for t in self._by_type.get(ev.type, ()) if _listens(t, ev, since=False)]
            # a trigger with a debug switch is not ruled out by its guard: its condition runs and names the false part
            plan = dispatch.build_plan(listening, lambda t: [] if t.debug_until else t.guards, lambda t: t.since,
                                       lambda t, g: t.knowing(g.part))
            needs = frozenset().union(*(frozenset({g.kind}) | t.needs_now | t.binds.keys()
                                        for g in plan.entity_groups for t in g.everyone))
            found = self._plans[key] = _Listening(plan, needs, _fields_read(plan), {})
        return found

    def _needs_of(self, ready: list[Compiled], needs: frozenset[str]) -> frozenset[str]:
        """What these triggers and the entity guards read on an event (cached per set of triggers)."""
        key = (tuple(t.id for t in ready), needs)
        found = self._derived.get(key)
        if found is None:
            if len(self._derived) > DERIVED_MAX:
                self._derived = {}
            found = self._derived[key] = frozenset().union(*(t.needs_now for t in ready), needs,
                                                           *(t.binds for t in ready))
        return found  # type: ignore[return-value]

    def _binds_of(self, ready: list[Compiled]) -> dict[str, frozenset[str] | None]:
        """`_binds` of these triggers (sorted by id; cached per set of triggers)."""
        key = tuple(t.id for t in ready)
        found = self._derived.get(key)
        if found is None:
            found = self._derived[key] = _binds(ready)
        return found  # type: ignore[return-value]

    def _select(self, ev: Event) -> Selection:
        """The triggers whose condition must run for the event, and those whose guard already says no."""
        listening = self._listening(ev)
        plan, needs, fields = listening.plan, listening.needs, listening.fields
        if (plan.newest is not None and ev.occurred_at < plan.newest) or ev.depth >= self._min_depth:
            # some trigger is younger than the event, or a chain limit may apply: every trigger on its own
            return Selection([t for t in plan.everyone if _listens(t, ev)], [], needs, fields)
        changes, key = None, ()
        if plan.event_groups:
            changes, own = changes_of(ev), {"name": ev.name, "source": ev.source, "type": ev.type}
            payload = ev.payload
            key = tuple([g.slot(dispatch.event_value(g.kind, g.key, changes=changes, payload=payload, event=own))
                         for g in plan.event_groups])
        choice = listening.choices.get(key)
        if choice is None:
            candidates = list(plan.unguarded)
            for g, slot in zip(plan.event_groups, key, strict=True):
                candidates += g.split(slot)
            ordered = sorted(candidates, key=_by_id)
            choice = _Choice(candidates, frozenset().union(*(t.needs_now for t in candidates), needs), ordered,
                             self._needs_of(candidates, needs), _binds(ordered))
            if len(listening.choices) < CHOICES_MAX:
                listening.choices[key] = choice
        return Selection(choice.candidates, plan.entity_groups, needs, fields, changes, choice)

    def on_event(self, session: Session, ev: Event, preloaded: Preloaded) -> None:
        now = self._clock.now()
        if ev.type in timers.CHANGE_TYPES:
            self._cancel_on_change(session, ev, self.triggers(session), now, preloaded)
        if ev.order_id is not None:
            entity, entity_id = "order", ev.order_id
        elif ev.customer_id is not None:
            entity, entity_id = "customer", ev.customer_id
        else:
            return
        sel = preloaded.selection.pop(ev.id, None) or self._select(ev)
        if not (sel.candidates or sel.entity_groups):
            return
        runs: list[dict[str, Any]] = []
        to_schedule: list[dict[str, Any]] = []
        ready: list[Compiled] = []
        choice, binds = sel.choice, None
        if ev.depth == 0 and ev.source != Source.TRIGGER:  # nothing to skip: not a change made by a trigger
            if choice is not None and not sel.entity_groups:  # known from the guards alone (`_Choice`)
                ready, binds = choice.ordered, choice.binds
            else:
                ready += sel.candidates
        else:
            choice = None
            for t in sel.candidates:
                skip = self._skip_reason(t, ev)
                if skip:
                    runs.append(run_row(t.id, now, "event", ev, None, "skipped", skip))
                else:
                    ready.append(t)
        if ready or sel.entity_groups:
            needs = choice.needs if choice is not None else self._needs_of(ready, sel.needs)
            variables = load_variables(session, ev, needs, order_id=ev.order_id, customer_id=ev.customer_id,
                                       preloaded=preloaded, changes=sel.changes, with_event="event" in needs)
            for g in sel.entity_groups:
                ready += g.split(dispatch.entity_value(variables.get(g.kind), g.key))
        if ready:
            if binds is None:
                ready.sort(key=_by_id)
                binds = self._binds_of(ready)
            evaluator = self.evaluator
            evaluator.bind(now=now, **variables, fields=binds)
            for t in ready:
                verdict = evaluator.check(t.condition)
                if not verdict.matched:
                    if not verdict.part:  # an error, not a false part: kept with the error
                        runs.append(run_row(t.id, now, "event", ev, None, "not_matched", verdict.reason))
                    elif t.debugging(now):  # the debug switch is on: every evaluation is logged
                        log.info("trigger %s (%s), event %s: %s", t.id, t.name, ev.id, verdict.reason)
                        runs.append(run_row(t.id, now, "event", ev, None, "not_matched", f"debug: {verdict.reason}"))
                elif t.spec.delay is not None:
                    tz = _timezone(session, variables.get("customer"), ev.site_id) if t.spec.delay.at else None
                    row = {"trigger_id": t.id, "entity": entity, "entity_id": entity_id, "customer_id": ev.customer_id,
                           "order_id": ev.order_id, "event_id": ev.id, "state": "pending", "reason": None,
                           "due_at": timers.due_at(t.spec.delay, at=ev.occurred_at, tz=tz), "created_at": now,
                           "finished_at": None}
                    to_schedule.append(row)
                    preloaded.buffered.setdefault((entity, entity_id), []).append(row)
                else:  # acts with the others of the batch (see `_act_pending`)
                    act = Act(t, ev, entity, entity_id, "event")
                    preloaded.acting.append(act)
                    preloaded.dirty.update(changed_by(act))
        buffer = _buffer(session)
        buffer["timers"].extend(to_schedule)
        buffer["runs"].extend(runs)

    def on_batch(self, session: Session, events: list[Event]) -> None:
        """A whole batch of events (the bus's batch handler): orders, customers and pending timers are read for
        all of them at once, then each event is handled in turn. If anything raises, the buffer goes back to
        where it was (the bus rolls the batch back and hands the events over one by one)."""
        compiled = self.triggers(session)
        events = as_event_rows(events)  # type: ignore[assignment]
        saved = {k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in session.info.get(BUFFER, {}).items()}
        try:
            preloaded = self._preload_events(session, events, compiled)
            for n, ev in enumerate(events):
                if preloaded.acting and (("order", ev.order_id) in preloaded.dirty
                                         or ("customer", ev.customer_id) in preloaded.dirty):
                    self._act_pending(session, preloaded, n)  # the event must see what those runs change
                self.on_event(session, ev, preloaded)
            self._act_pending(session, preloaded, len(events))
        except BaseException:
            session.info.pop(BUFFER, None)
            if saved:
                session.info[BUFFER] = saved
            raise

    def _act_pending(self, session: Session, preloaded: Preloaded, position: int) -> None:
        """The immediate runs collected since the last call act together (set-based); the orders and customers
        they change are read again (the fields the batch reads) if an event from `position` on needs them."""
        if not preloaded.acting:
            return
        acts, preloaded.acting = preloaded.acting, []
        preloaded.dirty.clear()
        _buffer(session)["runs"].extend(self.act_many(session, acts, now=self._clock.now()))
        stale: dict[str, set[int]] = {"order": set(), "customer": set()}
        for kind, i in set().union(*map(changed_by, acts)):
            loaded = preloaded.orders if kind == "order" else preloaded.customers
            if loaded.pop(i, None) is not None and preloaded.last_use.get((kind, i), -1) >= position:
                stale[kind].add(i)  # type: ignore[arg-type]
        if stale["order"]:
            preloaded.orders.update((k, with_group(session, v)) for k, v in orders.snapshots(
                session, stale["order"], fields=preloaded.fields["order"]).items())
        if stale["customer"]:
            preloaded.customers.update(customers.snapshots(session, stale["customer"],
                                                           fields=preloaded.fields["customer"]))

    def _preload_events(self, session: Session, events: list[Event], compiled: dict[int, Compiled]) -> Preloaded:
        out = Preloaded()
        needs: dict[str, set[int]] = {"order": set(), "customer": set()}
        changed: dict[str, set[int]] = {"order": set(), "customer": set()}
        read: dict[int, dict[str, frozenset[str] | None]] = {}  # fields read by the triggers of the batch's events
        items_for: set[int] = set()  # orders whose events' conditions read the items
        for n, ev in enumerate(events):
            if ev.type in timers.CHANGE_TYPES and self._any_cancel:
                entity = timers.CHANGE_TYPES[ev.type]
                entity_id = ev.order_id if entity == "order" else ev.customer_id
                if entity_id is not None:
                    changed[entity].add(entity_id)
            if ev.order_id is None and ev.customer_id is None:
                continue
            sel = out.selection[ev.id] = self._select(ev)
            wanted = sel.choice.wanted if sel.choice is not None else set().union(
                *(t.needs_now for t in sel.candidates), sel.needs)
            if "order" in wanted and ev.order_id is not None:
                needs["order"].add(ev.order_id)
                out.last_use[("order", ev.order_id)] = n
                if sel.fields["order"] is None or "items" in sel.fields["order"]:
                    items_for.add(ev.order_id)
            if "customer" in wanted and ev.customer_id is not None:
                needs["customer"].add(ev.customer_id)
                out.last_use[("customer", ev.customer_id)] = n
            read[id(sel.fields)] = sel.fields
        fields = out.fields = _union_fields(read.values())  # what the conditions and guards read
        out.orders = order_snapshots(session, needs["order"], fields["order"], items_for)
        out.customers = customers.snapshots(session, needs["customer"], fields=fields["customer"])
        cancelling = [t.id for t in compiled.values() if t.spec.on_change.policy == OnChange.CANCEL]
        for entity, ids in changed.items():
            for timer in timers.pending_rows_of_entities(session, entity=entity, entity_ids=ids,
                                                         trigger_ids=cancelling):
                out.pending.setdefault((timer["entity"], timer["entity_id"]), []).append(timer)
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
        runs, cancels, by_event = buffer["runs"], buffer["cancels"], buffer["events"]
        for row in buffer["timers"] if cancels else ():
            cancelled = cancels.get(_timer_key(row))
            if cancelled is not None:
                row.update(state="cancelled", reason=cancelled[0], finished_at=cancelled[2])
        new = buffer["timers"]
        timers.schedule(session, new)
        for row in new:
            shared = by_event.get(row["event_id"])
            if shared is None:
                shared = by_event[row["event_id"]] = event_row(row["created_at"], _EventRef(row))
                runs.append(shared)
            shared["scheduled"].append([row["trigger_id"], row["due_at"].isoformat()])
        gone = [row for row in new if row["state"] == "cancelled"] if cancels else []
        ids = timers.ids_of(session, map(_timer_key, gone)) if gone else {}
        for row in gone:
            reason, event_id, at = cancels[_timer_key(row)]
            runs.append({"trigger_id": row["trigger_id"], "at": at, "phase": "cancel", "event_id": event_id,
                         "timer_id": ids.get(_timer_key(row)), "customer_id": row["customer_id"],
                         "order_id": row["order_id"], "outcome": "cancelled", "reason": reason, "actions": [],
                         "misses": None, "scheduled": None})
        insert_rows(session, Run.__table__, runs)

    def _skip_reason(self, t: Compiled, ev: Event) -> str | None:
        reason = explain.loop_reason(t, ev, max_depth=self._max_depth)
        if reason and reason.startswith("chain"):
            log.warning("trigger %s (%s) not run on event %s: %s", t.id, t.name, ev.id, reason)
        return reason

    def _cancel_on_change(self, session: Session, ev: Event, compiled: dict[int, Compiled], now: datetime,
                          preloaded: Preloaded) -> None:
        """Pending runs of the changed entity whose trigger cancels on this change: those stored are cancelled
        now, those scheduled earlier in this transaction (not stored yet) are stored cancelled."""
        entity = timers.CHANGE_TYPES[ev.type]
        entity_id = ev.order_id if entity == "order" else ev.customer_id
        if entity_id is None or not self._any_cancel:
            return
        fields = {c["field"] for c in ev.payload.get("changes", ())}
        pending, buffered = preloaded.pending.get((entity, entity_id)), preloaded.buffered.get((entity, entity_id))
        if not pending and not buffered:
            return  # nothing to cancel

        def doomed(trigger_id: int) -> bool:
            t = compiled.get(trigger_id)
            return (t is not None and t.spec.on_change.policy == OnChange.CANCEL
                    and (not t.spec.on_change.fields or bool(fields & set(t.spec.on_change.fields))))

        reason = f"{entity} changed ({', '.join(sorted(fields))}) in event {ev.id}"
        stored = [t for t in pending or ()
                  if t["state"] == "pending" and t["event_id"] < ev.id and doomed(t["trigger_id"])]
        if stored:
            timers.cancel_rows(session, stored, reason=reason, now=now, event_id=ev.id)
        cancels = _buffer(session)["cancels"]
        for row in buffered or ():
            key = _timer_key(row)
            if row["event_id"] < ev.id and key not in cancels and doomed(row["trigger_id"]):
                cancels[key] = (reason, ev.id, now)


def _by_id(t: Compiled) -> int:
    return t.id


def _listens(t: Compiled, ev: Event, *, since: bool = True) -> bool:
    if not t.spec.listens_to(ev.type, ev.name) or (since and t.since is not None and ev.occurred_at < t.since):
        return False
    return t.site_ids is None or ev.site_id in t.site_ids


def _timezone(session: Session, customer: dict[str, Any] | None, site_id: int | None) -> str | None:
    if customer and customer.get("timezone"):
        return customer["timezone"]
    if site_id is None:
        return None
    zones = session.info.setdefault("trigger_site_timezones", {})
    if site_id not in zones:
        zones[site_id] = session.scalar(_SITE_TIMEZONE, {"site_id": site_id})
    return zones[site_id]


def _binds(triggers: list[Compiled]) -> dict[str, frozenset[str] | None]:
    """The variables and fields the conditions of these triggers read (None: the whole variable)."""
    out: dict[str, frozenset[str] | None] = {}
    for t in triggers:
        for var, wanted in t.binds.items():
            if var in out and out[var] is None:
                continue
            out[var] = None if wanted is None else (out.get(var) or frozenset()) | wanted
    return out


def _fields_read(plan: dispatch.Plan[Compiled]) -> dict[str, frozenset[str] | None]:
    """The order and customer fields the plan's conditions and guards read (None: the whole snapshot)."""
    out: dict[str, set[str] | None] = {"order": set(), "customer": set()}
    for t in plan.everyone:
        for kind in ("order", "customer"):
            have = out[kind]
            if have is None or kind not in t.needs_now:
                continue
            if kind not in t.binds:  # read for the time zone of an "at HH:MM" delay
                have.add("timezone")
            elif t.binds[kind] is None:
                out[kind] = None
            else:
                have.update(t.binds[kind])  # type: ignore[arg-type]
    for g in plan.entity_groups:
        have = out[g.kind]
        if have is not None:
            have.add(g.key)
    order = out["order"]
    if order is not None and "status_group" in order:
        order.add("status")
    return {k: (frozenset(v) if v is not None else None) for k, v in out.items()}


def _union_fields(read: Iterable[dict[str, frozenset[str] | None]]) -> dict[str, set[str] | None]:
    out: dict[str, set[str] | None] = {"order": set(), "customer": set()}
    for fields in read:
        for kind, wanted in fields.items():
            have = out[kind]
            if have is not None:
                if wanted is None:
                    out[kind] = None
                else:
                    have.update(wanted)
    return out


class _Listening(NamedTuple):
    """The engine's entry for one (event type, event name, site): the guard index and what its triggers read."""

    plan: dispatch.Plan[Compiled]
    needs: frozenset[str]  # of the entity-guarded triggers: the guard's order / customer, and their variables
    fields: dict[str, frozenset[str] | None]  # see `_fields_read`
    choices: dict[tuple[Any, ...], _Choice]  # by the event guards' slots (`Group.slot`): the candidates


class _Choice(NamedTuple):
    """The candidates of one outcome of a plan's event guards, and what follows from them alone (`_select`)."""

    candidates: list[Compiled]  # in the plan's order (skipped runs are logged in it)
    wanted: frozenset[str]  # what they and the entity guards need read: their `needs_now` and `_Listening.needs`
    ordered: list[Compiled]  # by id, the order conditions run in
    needs: frozenset[str]  # `_needs_of(candidates, _Listening.needs)`
    binds: dict[str, frozenset[str] | None]  # `_binds(ordered)`


def _buffer(session: Session) -> dict[str, Any]:
    return session.info.setdefault(BUFFER, {"timers": [], "runs": [], "cancels": {}, "events": {}})


class _EventRef:
    """The ids of a timer's triggering event, for its shared run-log row."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.id, self.customer_id, self.order_id = row["event_id"], row["customer_id"], row["order_id"]


def _timer_key(row: dict[str, Any]) -> tuple[int, str, int, int]:
    return row["trigger_id"], row["entity"], row["entity_id"], row["event_id"]
