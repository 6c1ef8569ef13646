"""Triggers: define (validated with pointed errors), list, switch on and off, pending runs, run log, dry run."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import Select, and_, func, literal, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from retento.app import from_session
from retento.core import bus, http, parsing, scoping
from retento.core.bus import Event
from retento.core.changes import ChangeContext
from retento.core.db.transactions import transaction
from retento.core.errors import Conflict, DomainError, NotFound
from retento.customers import events as customer_events, service as customers_service
from retento.customers.merges import Merge
from retento.customers.models import Customer
from retento.orders import service as orders_service
from retento.orders.models import Order
from retento.triggers import explain as explain_mod, templates, timers
from retento.triggers.compiled import Compiled, compile_trigger
from retento.triggers.conditions import Evaluator, split_conjuncts
from retento.triggers.data import load_variables
from retento.triggers.events import TRIGGER_ACTIVATED
from retento.triggers.models import Firing, Run, Timer, Trigger
from retento.triggers.schemas import (
    DryRunIn,
    DryRunOut,
    ExplainedEvent,
    ExplainOut,
    FiredOut,
    RunOut,
    TimerOut,
    TriggerIn,
    TriggerOut,
)

if TYPE_CHECKING:
    from retento.triggers.engine import Engine


def event_types(session: Session) -> list[str]:
    """The event types triggers can listen to: every registered type about an order or a customer."""
    return [t.name for t in from_session(session).parts.event_types.values() if t.about is not None]


def parse(session: Session, raw: Any) -> tuple[TriggerIn, Compiled]:
    """Validate a definition completely against the application's event types and actions: schema, event
    types, condition, every action's parameters."""
    try:
        spec = TriggerIn.model_validate(raw)
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc) from None
    if not spec.sites and scoping.of(session) is not None:
        # "every site" is no site-limited key's to give: its trigger listens to the key's sites
        spec.sites = sorted(scoping.site_codes(session))
    parts = from_session(session).parts
    for n, name in enumerate(spec.events):
        known = parts.event_types.get(name)
        if known is None:
            raise DomainError.one(f"events.{n}", f"unknown event type {name!r}; known: "
                                                 f"{', '.join(sorted(event_types(session)))}")
        if known.about is None:
            raise DomainError.one(f"events.{n}", f"{name!r} events are about no order or customer, so a trigger "
                                                 "cannot act on them")
    if spec.event_names and "custom" not in spec.events:
        raise DomainError.one("event_names", "only applies to `custom` events; add `custom` to events")
    compiled = compile_trigger(session, spec, actions=parts.actions)
    for n, (action, params) in enumerate(compiled.actions):
        for name, url in (action.calls(params) if action.calls else {}).items():
            http.check_url(session, url, field=f"actions.{n}.{name}")
    return spec, compiled


def _dump(spec: TriggerIn) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude_none=True)


def create_trigger(session: Session, *, raw: Any, now: datetime) -> Trigger:
    spec, _ = parse(session, raw)
    if _name_taken(session, spec.name):
        raise Conflict("name", f"a trigger named {spec.name!r} already exists")
    trigger = Trigger(name=spec.name, active=spec.active, definition=_dump(spec), version=1, created_at=now,
                      updated_at=now)
    session.add(trigger)
    session.flush()
    _announce(session, trigger, was_active=False, now=now)
    return trigger


def update_trigger(session: Session, *, trigger: Trigger, raw: Any, now: datetime) -> Trigger:
    spec, _ = parse(session, raw)
    if spec.name != trigger.name and _name_taken(session, spec.name):
        raise Conflict("name", f"a trigger named {spec.name!r} already exists")
    was_active = trigger.active
    trigger.name, trigger.active, trigger.definition = spec.name, spec.active, _dump(spec)
    trigger.version += 1
    trigger.updated_at = now
    session.flush()
    _announce(session, trigger, was_active=was_active, now=now)
    return trigger


def _name_taken(session: Session, name: str) -> bool:
    """Names are unique across the installation, also among triggers a site-limited key does not see."""
    return session.scalar(scoping.unscoped(select(Trigger.id).where(Trigger.name == name))) is not None


def _announce(session: Session, trigger: Trigger, *, was_active: bool, now: datetime) -> None:
    """A trigger switched on is a marketing initiative: say so on the bus (the cohort timeline records it)."""
    if trigger.active and not was_active:
        bus.record(session, [bus.event_row(TRIGGER_ACTIVATED, ctx=ChangeContext.system(), now=now, payload={
            "trigger_id": trigger.id, "name": trigger.name, "version": trigger.version,
            "sites": trigger.definition.get("sites", [])})])


def apply(session: Session, *, raw: Any, now: datetime) -> tuple[Trigger, bool]:
    """Create, or replace the trigger with the same name (YAML files). Returns (trigger, created)."""
    name = raw.get("name") if isinstance(raw, dict) else None
    existing = session.scalar(select(Trigger).where(Trigger.name == name)) if isinstance(name, str) else None
    if existing is None:
        return create_trigger(session, raw=raw, now=now), True
    return update_trigger(session, trigger=existing, raw=raw, now=now), False


def get_trigger(session: Session, trigger_id: int) -> Trigger:
    trigger = session.get(Trigger, trigger_id)
    if trigger is None:
        raise NotFound("id", f"trigger {trigger_id} not found")
    return trigger


def find_trigger(session: Session, ref: str) -> Trigger:
    """By id or by name (CLI)."""
    number = parsing.integer(ref, hi=2**31 - 1)
    trigger = session.get(Trigger, number) if number is not None else None
    trigger = trigger or session.scalar(select(Trigger).where(Trigger.name == ref))
    if trigger is None:
        raise NotFound("trigger", f"no trigger with id or name {ref!r}")
    return trigger


def set_active(session: Session, *, trigger: Trigger, active: bool, now: datetime) -> Trigger:
    return update_trigger(session, trigger=trigger, raw={**trigger.definition, "active": active}, now=now)


def set_debug(session: Session, *, trigger: Trigger, minutes: int, now: datetime) -> Trigger:
    """The debug switch: for `minutes` from `now` every evaluation of the trigger gets a run-log entry of its own
    (a condition found false too, with the false part); 0 switches it off. The definition (and its version) stays."""
    trigger.debug_until = now + timedelta(minutes=minutes) if minutes else None
    trigger.updated_at = now  # the engines recompile (see Engine.triggers)
    session.flush()
    return trigger


def delete_trigger(session: Session, *, trigger: Trigger, now: datetime) -> int:
    """Delete a trigger; its pending runs are cancelled first. Returns how many were cancelled."""
    cancelled = timers.cancel_all(session, trigger_id=trigger.id, reason="trigger deleted", now=now)
    session.delete(trigger)
    session.flush()
    return cancelled


def list_triggers(session: Session) -> list[TriggerOut]:
    q = select(Timer.trigger_id, func.count(Timer.id)).where(Timer.state == "pending").group_by(Timer.trigger_id)
    counts = {tid: n for tid, n in session.execute(q)}
    return [out(t, counts.get(t.id, 0)) for t in session.scalars(select(Trigger).order_by(Trigger.id))]


def out(t: Trigger, pending: int = 0) -> TriggerOut:
    return TriggerOut(id=t.id, name=t.name, active=t.active, version=t.version, definition=t.definition,
                      created_at=t.created_at, updated_at=t.updated_at, pending=pending, debug_until=t.debug_until)


def pending(session: Session, *, trigger_id: int | None = None, order_id: int | None = None,
            customer_id: int | None = None, after_id: int = 0, limit: int = 100) -> list[Timer]:
    """What will fire, when and for whom: pending runs in due order (page on with `after_id`)."""
    _check_refs(session, trigger_id=trigger_id, order_id=order_id, customer_id=customer_id)
    q = _pending_of(select(Timer), trigger_id=trigger_id, order_id=order_id, customer_id=customer_id)
    return list(session.scalars(q.where(Timer.id > after_id).order_by(Timer.due_at, Timer.id).limit(limit)))


def count_pending(session: Session, *, trigger_id: int | None = None, order_id: int | None = None,
                  customer_id: int | None = None) -> int:
    """How many pending runs `pending` pages through with the same filters."""
    _check_refs(session, trigger_id=trigger_id, order_id=order_id, customer_id=customer_id)
    q = _pending_of(select(func.count(Timer.id)), trigger_id=trigger_id, order_id=order_id, customer_id=customer_id)
    return session.scalar(q) or 0


def _pending_of(q: Select, **filters: int | None) -> Select:
    q = q.where(Timer.state == "pending")
    for name, value in filters.items():
        if value is not None:
            q = q.where(getattr(Timer, name) == value)
    return q


def _pending_timer(session: Session, timer_id: int) -> Timer:
    timer = session.get(Timer, timer_id)
    if timer is None:
        raise NotFound("id", f"pending run {timer_id} not found")
    if timer.state != "pending":
        raise Conflict("state", f"run {timer_id} is already {timer.state}")
    return timer


def cancel_timer(session: Session, *, timer_id: int, now: datetime) -> Timer:
    timer = _pending_timer(session, timer_id)
    timers.cancel(session, [timer], reason="cancelled by hand", now=now)
    return timer


def fire_timer(sessions: sessionmaker[Session], *, engine: Engine, timer_id: int) -> FiredOut:
    """Fire one pending run now instead of at its due time, so that an operator sees a delayed trigger work
    without waiting (or stopping the clock). The worker's own path does it (`Engine.fire_now`): the condition is
    re-checked on fresh data, run limits apply, the run log gets its entry. Three transactions, so this takes a
    session factory: the run is looked up in the caller's (a site-limited key reaches only its sites' runs),
    fired in one of its own that sees every site (as the worker's), and read back."""
    with transaction(sessions) as s:
        _pending_timer(s, timer_id)
    if not scoping.as_system(engine.fire_now, timer_id):
        raise Conflict("state", f"run {timer_id} finished meanwhile")
    with transaction(sessions) as s:
        timer = s.get(Timer, timer_id)
        column = Run.order_id if timer.entity == "order" else Run.customer_id
        run = s.scalar(select(Run).where(column == timer.entity_id, Run.timer_id == timer_id, Run.phase == "fire")
                       .order_by(Run.id.desc()).limit(1))
        return FiredOut(timer=TimerOut.model_validate(timer), run=RunOut.model_validate(run) if run else None)


def cancel_pending(session: Session, *, trigger: Trigger, now: datetime) -> int:
    return timers.cancel_all(session, trigger_id=trigger.id, reason="cancelled by hand", now=now)


def runs(session: Session, *, order_id: int | None = None, customer_id: int | None = None,
         trigger_id: int | None = None, after_id: int = 0, limit: int = 100) -> list[Run]:
    """The run log: why did (or didn't) a trigger fire for this order / customer. Oldest first; page on with the
    last id you got. The row an event shares among the triggers ruled out by their guard and those that
    scheduled a run is expanded into one entry per trigger (sharing the row's id)."""
    _check_refs(session, trigger_id=trigger_id, order_id=order_id, customer_id=customer_id)
    out: list[Run] = []
    while len(out) < limit:
        q = select(Run).where(Run.id > after_id)
        for column, value in ((Run.order_id, order_id), (Run.customer_id, customer_id)):
            if value is not None:
                q = q.where(column == value)
        if trigger_id is not None:
            q = q.where(or_(Run.trigger_id == trigger_id, Run.trigger_id.is_(None)))
        page = list(session.scalars(q.order_by(Run.id).limit(limit)))
        for run in _expand(session, page):
            if trigger_id is None or run.trigger_id == trigger_id:
                out.append(run)
        if len(page) < limit:
            break
        after_id = page[-1].id
    return out[:limit] if trigger_id is not None else out


def _check_refs(session: Session, **ids: int | None) -> None:
    """Filters name a trigger, order or customer the caller sees: else a 404 naming the filter."""
    models = {"trigger_id": Trigger, "order_id": Order, "customer_id": Customer}
    for field, value in ids.items():
        if value is not None:
            scoping.require(session, models[field], value, field)


def _expand(session: Session, page: list[Run]) -> list[Run]:
    shared = [r for r in page if r.trigger_id is None]
    if not shared:
        return page
    ids = {m[0] for r in shared for m in (r.misses or ())} | {m[0] for r in shared for m in (r.scheduled or ())}
    defs = {t.id: t for t in session.scalars(select(Trigger).where(Trigger.id.in_(ids)))} if ids else {}
    timer_ids = {(k[0], k[3]): i for k, i in timers.ids_of(session, [
        (tid, "order" if r.order_id is not None else "customer",
         r.order_id if r.order_id is not None else r.customer_id, r.event_id)
        for r in shared for tid, _ in r.scheduled or ()]).items()}
    out = []
    for r in page:
        if r.trigger_id is not None:
            out.append(r)
            continue
        entries = [(tid, "not_matched", None, (version, part)) for tid, version, part in r.misses or ()]
        entries += [(tid, "scheduled", timer_ids.get((tid, r.event_id)), due) for tid, due in r.scheduled or ()]
        for tid, outcome, timer_id, detail in sorted(entries, key=lambda e: e[0]):
            t = defs.get(tid)
            if t is None:
                continue  # the trigger was deleted
            reason = _miss_reason(t, *detail) if outcome == "not_matched" else f"condition holds; fires at {detail}"
            out.append(Run(id=r.id, trigger_id=tid, at=r.at, phase=r.phase, event_id=r.event_id, timer_id=timer_id,
                           customer_id=r.customer_id, order_id=r.order_id, outcome=outcome, reason=reason,
                           actions=[]))
    return out


def _miss_reason(t: Trigger, version: int, part: int) -> str:
    if version != t.version:
        return f"part {part} of the condition of version {version} (now {t.version}) was false on the event"
    source = t.definition.get("condition", "").strip()
    parts = split_conjuncts(source)
    if len(parts) == 1:
        return f"condition `{source}` is false"  # as the evaluator words it
    if not 0 < part <= len(parts):
        return "condition is false"
    return f"part {part} of {len(parts)} is false: `{parts[part - 1]}`"


def dry_run(session: Session, *, raw: Any, options: DryRunIn, now: datetime) -> DryRunOut:
    """Evaluate a definition (saved or not) over the last N events of its types, or over current entities.

    Nothing is written; loop and limit rules are not applied, only the condition."""
    return dry_run_step(session, raw=raw, options=options, now=now)[0]


def dry_run_step(session: Session, *, raw: Any, options: DryRunIn, now: datetime, before_id: int | None = None,
                 size: int | None = None) -> tuple[DryRunOut, int | None]:
    """One step of a dry run taken in steps (the console shows its progress between them): at most `size` of the
    inputs older than `before_id` (ids descending). Returns this step's result (`merge_dry_runs` adds the steps up)
    and the id to go on from, None when the inputs are exhausted."""
    spec, compiled = parse(session, raw)
    evaluator = Evaluator()
    needs = compiled.condition.variables & {"order", "customer"}
    matched, evaluated, sample, reasons, last = 0, 0, [], Counter(), None
    limit = min(options.limit, size or options.limit)
    for ev, order_id, customer_id, key in _dry_inputs(session, spec, options, before_id=before_id, limit=limit):
        variables = load_variables(session, ev, needs, order_id=order_id, customer_id=customer_id)
        evaluator.bind(now=now, **variables)
        verdict = evaluator.check(compiled.condition)
        evaluated, last = evaluated + 1, key
        if verdict.matched:
            matched += 1
            if len(sample) < options.sample:
                sample.append({"event_id": ev.id or None, "order_id": order_id, "customer_id": customer_id})
        else:
            reasons[verdict.reason or "false"] += 1
    out = DryRunOut(evaluated=evaluated, matched=matched, sample=sample, reasons=dict(reasons.most_common(10)))
    return out, last if evaluated == limit else None


def dry_run_total(session: Session, *, raw: Any, options: DryRunIn) -> int:
    """How many inputs a dry run with these options evaluates (at most `options.limit`)."""
    spec, _ = parse(session, raw)
    q = _dry_query(spec, options, before_id=None).limit(options.limit)
    return session.scalar(select(func.count()).select_from(q.with_only_columns(literal(1), maintain_column_froms=True).subquery())) or 0


def merge_dry_runs(a: DryRunOut, b: DryRunOut, *, sample: int) -> DryRunOut:
    """Two steps of one dry run added up (the sample kept to `sample` entries, the ten most frequent reasons)."""
    reasons = Counter(a.reasons) + Counter(b.reasons)
    return DryRunOut(evaluated=a.evaluated + b.evaluated, matched=a.matched + b.matched,
                     sample=(a.sample + b.sample)[:sample], reasons=dict(reasons.most_common(10)))


def _dry_query(spec: TriggerIn, options: DryRunIn, *, before_id: int | None) -> Select:
    if options.over == "events":
        q = select(Event).where(Event.type.in_(spec.events))
        if spec.event_names:  # as TriggerIn.listens_to: the names narrow custom events only
            q = q.where(or_(Event.type != customer_events.CUSTOM, Event.name.in_(spec.event_names)))
        model: Any = Event
    else:
        model = Order if options.over == "orders" else Customer
        q = select(model)
    if before_id is not None:
        q = q.where(model.id < before_id)
    return q.order_by(model.id.desc())


def _dry_inputs(session: Session, spec: TriggerIn, options: DryRunIn, *, before_id: int | None, limit: int):
    q = _dry_query(spec, options, before_id=before_id).limit(limit)
    if options.over == "events":
        for ev in session.scalars(q):
            yield ev, ev.order_id, ev.customer_id, ev.id
        return
    for row in session.scalars(q):
        order_id = row.id if options.over == "orders" else None
        customer_id = row.customer_id if options.over == "orders" else row.id
        ev = Event(id=0, type="dry_run", name=None, occurred_at=row.updated_at, site_id=row.site_id,
                   customer_id=customer_id, order_id=order_id, payload={}, source="system", actor_type="system",
                   actor_id=None, depth=0)
        yield ev, order_id, customer_id, row.id


def install_template(session: Session, *, name: str, params: dict[str, Any] | None = None,
                     trigger_name: str | None = None, now: datetime) -> tuple[Trigger, bool]:
    """Install (or re-install with new parameters) a ready-made trigger. Returns (trigger, created)."""
    raw = templates.render(name, params)
    if trigger_name:
        raw["name"] = trigger_name
    return apply(session, raw=raw, now=now)


EXPLAIN_NOTE = ("Each event is evaluated again with the trigger's current definition (version {version}), on the "
                "order and customer as they were right after the event (today's data with the changes of later "
                "events undone) and with `now` at the event's time.")


def explain(session: Session, *, trigger: Trigger, order_id: int | None = None, customer_id: int | None = None,
            event_id: int | None = None, limit: int = 100, max_depth: int) -> ExplainOut:
    """Why the trigger did or did not fire for an order, a customer or one event: its last `limit` events (or
    the one) evaluated again (`explain.explain`), with what the run log and the delayed runs recorded."""
    given = [n for n, v in (("order", order_id), ("customer", customer_id), ("event", event_id)) if v is not None]
    if len(given) != 1:
        raise DomainError.one(given[1] if given else "order", "give exactly one of order, customer or event")
    t = compile_trigger(session, TriggerIn.model_validate(trigger.definition),
                        actions=from_session(session).parts.actions, trigger_id=trigger.id, since=trigger.created_at,
                        version=trigger.version)
    if event_id is not None:
        ev = scoping.require(session, Event, event_id, "event")
        if ev.order_id is None and ev.customer_id is None:
            raise DomainError.one("event", f"event {event_id} is about no order or customer")
        events = [ev]
        entity, entity_id = ("order", ev.order_id) if ev.order_id is not None else ("customer", ev.customer_id)
    else:
        entity, entity_id = ("order", order_id) if order_id is not None else ("customer", customer_id)
        scoping.require(session, Order if entity == "order" else Customer, entity_id, entity)
        column = Event.order_id if entity == "order" else Event.customer_id
        events = list(session.scalars(select(Event).where(column == entity_id).order_by(Event.id.desc())
                                      .limit(limit)))[::-1]
    order_ids = {e.order_id for e in events if e.order_id is not None}
    customer_ids = {e.customer_id for e in events if e.customer_id is not None}
    later = _changes_after(session, events, order_ids, customer_ids)
    groups = orders_service.status_groups(session)
    snaps = orders_service.snapshots(session, order_ids)
    for snap in snaps.values():
        snap["status_group"] = groups.get(snap.get("status"))
    explained = explain_mod.explain(
        t, events, later=later, orders=snaps, customers=customers_service.snapshots(session, customer_ids),
        groups=groups, recorded=_recorded(session, t, events, entity, entity_id, order_ids, customer_ids),
        max_depth=max_depth)
    return ExplainOut(trigger_id=trigger.id, name=trigger.name, version=trigger.version, active=trigger.active,
                      entity=entity, entity_id=entity_id, note=EXPLAIN_NOTE.format(version=trigger.version),
                      events=[_explained_out(x) for x in explained])


def _changes_after(session: Session, events: list[Event], order_ids: set[int],
                   customer_ids: set[int]) -> list[Event]:
    """The change events of these orders and customers after the first of `events` (to rebuild their data)."""
    if not events:
        return []
    after, out = events[0].id, []
    for column, ids in ((Event.order_id, order_ids), (Event.customer_id, customer_ids)):
        if ids:
            out += session.scalars(select(Event).where(column.in_(ids), Event.id > after,
                                                       Event.type.in_(list(explain_mod.REVERTED))))
    return out


def _recorded(session: Session, t: Compiled, events: list[Event], entity: str, entity_id: int,
              order_ids: set[int], customer_ids: set[int]) -> explain_mod.Recorded:
    ids = [e.id for e in events]
    if not ids:
        return explain_mod.Recorded()
    logged = _runs_of_events(session, t.id, ids, Run.order_id if entity == "order" else Run.customer_id, entity_id)
    by_order = {e.order_id for e in events if e.order_id is not None}  # a run's entity: its event's order, else
    by_customer = {e.customer_id for e in events if e.order_id is None and e.customer_id is not None}  # customer
    timers_ = list(session.scalars(select(Timer).where(
        Timer.trigger_id == t.id, Timer.event_id.in_(ids),
        or_(and_(Timer.entity == "order", Timer.entity_id.in_(by_order)),
            and_(Timer.entity == "customer", Timer.entity_id.in_(by_customer))))))
    firings: list[tuple[int, int | None, int | None, datetime]] = []
    if t.spec.limits and t.spec.delay is None:
        cols = (Firing.event_id, Firing.customer_id, Firing.order_id, Firing.at)
        scopes = [Firing.customer_id.in_(customer_ids), Firing.order_id.in_(order_ids)]
        if any(limit.per == "trigger" for limit in t.spec.limits):
            q = select(*cols).where(Firing.trigger_id == t.id, Firing.event_id < ids[-1])
            q = q.order_by(Firing.event_id.desc()).limit(10_000)
        else:
            q = select(*cols).where(Firing.trigger_id == t.id, Firing.event_id < ids[-1], or_(*scopes))
        firings = [tuple(r) for r in session.execute(q)]  # type: ignore[misc]
    return explain_mod.Recorded(runs=logged, timers=timers_, firings=firings)


def _runs_of_events(session: Session, trigger_id: int, event_ids: list[int], column: Any,
                    entity_id: int) -> list[Run]:
    """The trigger's run-log entries about these events, oldest first (shared rows expanded, as `runs` does):
    what `explain` attaches to each event, read by event id (`ix_trigger_runs_event`) instead of paging through
    the entity's whole log. A run about a delayed run always names the event that scheduled it."""
    out: list[Run] = []
    for start in range(0, len(event_ids), 900):
        q = select(Run).where(Run.event_id.in_(event_ids[start:start + 900]), column == entity_id,
                              or_(Run.trigger_id == trigger_id, Run.trigger_id.is_(None)))
        out += [r for r in _expand(session, list(session.scalars(q.order_by(Run.id))))
                if r.trigger_id == trigger_id]
    return sorted(out, key=lambda r: r.id)


def _explained_out(x: explain_mod.Explained) -> ExplainedEvent:
    ev = x.event
    return ExplainedEvent(event_id=ev.id, type=ev.type, name=ev.name, occurred_at=ev.occurred_at,
                          order_id=ev.order_id, customer_id=ev.customer_id, outcome=x.outcome, reason=x.reason,
                          part=x.part, part_text=x.part_text, values=x.values, limit=x.limit,
                          runs=[RunOut.model_validate(r) for r in x.runs],
                          timer=TimerOut.model_validate(x.timer) if x.timer is not None else None)


MATCHED = frozenset({"acted", "scheduled", "skipped", "failed"})  # outcomes of an event whose condition held


def recent_counts(session: Session, *, since: datetime) -> dict[int, dict[str, int]]:
    """Per trigger, from the run log since `since`: events whose condition held (`matched`: acted, scheduled,
    skipped by a rule or failed), runs that `acted` (at once or when a delayed run fired) and that `failed`."""
    out: dict[int, dict[str, int]] = {}

    def add(tid: int, key: str, n: int) -> None:
        out.setdefault(tid, {"matched": 0, "acted": 0, "failed": 0})[key] += n

    # grouped by trigger last: SQLite's planner (no statistics) would otherwise walk ix_trigger_runs_trigger for
    # the grouping order, reading every entry of the whole log, instead of the last day's range of ix_trigger_runs_at
    q = (select(Run.trigger_id, Run.phase, Run.outcome, func.count(Run.id))
         .where(Run.at >= since, Run.trigger_id.is_not(None)).group_by(Run.phase, Run.outcome, Run.trigger_id))
    for tid, phase, outcome, n in session.execute(q):
        if phase == "event" and outcome in MATCHED:
            add(tid, "matched", n)
        if outcome in ("acted", "failed"):
            add(tid, outcome, n)
    shared = select(Run.scheduled).where(Run.at >= since, Run.trigger_id.is_(None), Run.scheduled.is_not(None))
    for (scheduled,) in session.execute(shared):
        for tid, _ in scheduled or ():
            add(tid, "matched", 1)
    return out


def merge_customers(session: Session, merge: Merge) -> dict[str, int]:
    """The `customer_merge` handler (customers.merging): the merged customers' delayed runs (timers) go on as the
    kept customer's, and what triggers did for them (firings, which also count toward per-customer limits, and
    the run log) becomes the kept customer's past."""
    out = {}
    for name, model in (("trigger_timers", Timer), ("trigger_firings", Firing)):
        t = model.__table__
        session.execute(update(t).where(t.c.entity == "customer", t.c.entity_id.in_(merge.merged_ids))
                        .values(entity_id=merge.keep_id))
        out[name] = merge.move(session, t)
    merge.move(session, Run.__table__)
    return out
