"""Why a trigger did or did not fire for an order or customer: the trigger evaluated again on each of the entity's
recorded events, with the condition evaluator the engine uses. Pure: no I/O; takes the data the service read.

For each event, in the engine's order: does the trigger listen to it (event type, `event_names`, sites, created
after the event), do its loop rules skip it (own change, chain depth), is the condition true on the order and
customer as they were right after the event (rebuilt from the current data by undoing the changes recorded in
later events) and if not, which `&&` part is false and what its sub-expressions gave, would a run limit stop it;
and what was recorded: the run-log entries and the delayed run (scheduled, fired, skipped, cancelled).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from retento.core.bus import Event
from retento.core.changes import Source
from retento.core.jsonable import jsonable
from retento.triggers.compiled import Compiled
from retento.triggers.conditions import (
    HELPER_FIELDS,
    HELPERS,
    ConditionError,
    Evaluator,
    compile_expression,
)
from retento.triggers.data import changes_of, event_view
from retento.triggers.schemas import LimitPer

MAX_VALUES = 8  # sub-expressions shown for a false part
REVERTED = {"order_changed": "order", "order_status_changed": "order", "customer_changed": "customer"}

# Outcomes, in plain words for the command line (English / Russian).
OUTCOMES = {
    "not_listening": "not listened to / не слушает",
    "skipped": "skipped / пропущено",
    "not_matched": "condition false / условие ложно",
    "error": "cannot evaluate / ошибка условия",
    "limited": "run limit / лимит запусков",
    "matched": "matched / совпало",
    "acted": "acted / выполнен",
    "scheduled": "scheduled / запланирован",
    "fired": "fired / сработал",
    "cancelled": "cancelled / отменён",
    "failed": "failed / ошибка действия",
}


@dataclass(frozen=True)
class Recorded:
    """What the engine stored about the trigger on the entity: run-log entries and delayed runs."""

    runs: Sequence[Any] = ()  # RunOut-like: event_id, timer_id, phase, outcome, reason, at
    timers: Sequence[Any] = ()  # Timer-like: id, event_id, state, due_at, reason, finished_at
    firings: Sequence[tuple[int, int | None, int | None, datetime]] = ()  # (event id, customer id, order id, at)


@dataclass
class Explained:
    event: Event
    outcome: str
    reason: str
    part: int | None = None  # the 1-based `&&` part that is false
    part_text: str | None = None
    values: dict[str, Any] = field(default_factory=dict)  # sub-expression -> the value it gave (or its error)
    limit: str | None = None
    runs: list[Any] = field(default_factory=list)
    timer: Any = None


def explain(t: Compiled, events: Sequence[Event], *, later: Iterable[Event] = (), orders: Mapping[int, dict[str, Any]],
            customers: Mapping[int, dict[str, Any]], groups: Mapping[str, str | None], recorded: Recorded,
            max_depth: int, evaluator: Evaluator | None = None) -> list[Explained]:
    """Each of `events` (oldest first) explained for trigger `t`. `later`: the change events of their orders and
    customers after the first of them; `orders` / `customers`: the current snapshots; `groups`: status -> status
    group. Each event is evaluated at its own time (`now` = when it occurred)."""
    evaluator = evaluator or Evaluator()
    every = {e.id: e for e in (*later, *events)}
    states = states_at(list(every.values()), orders=orders, customers=customers, groups=groups)
    timers = {tm.event_id: tm for tm in recorded.timers}
    by_timer = {tm.id: tm.event_id for tm in recorded.timers}
    runs: dict[int | None, list[Any]] = {}
    for r in recorded.runs:
        runs.setdefault(by_timer.get(r.timer_id, r.event_id), []).append(r)
    operands: dict[int, list[tuple[str, Any]]] = {}
    out = []
    for ev in events:
        order, customer = states[ev.id]
        item = _evaluate(t, ev, order, customer, evaluator, operands, max_depth)
        item.runs, item.timer = runs.get(ev.id, []), timers.get(ev.id)
        if item.outcome == "matched" and t.spec.delay is None:
            item.limit = limit_reason(t, ev, recorded.firings)
        _conclude(item)
        out.append(item)
    return out


def _evaluate(t: Compiled, ev: Event, order: dict[str, Any] | None, customer: dict[str, Any] | None,
              evaluator: Evaluator, operands: dict[int, list[tuple[str, Any]]], max_depth: int) -> Explained:
    why = listening_reason(t, ev)
    if why:
        return Explained(ev, "not_listening", why)
    why = loop_reason(t, ev, max_depth=max_depth)
    if why:
        return Explained(ev, "skipped", why)
    evaluator.bind(now=ev.occurred_at, event=event_view(ev), order=order, customer=customer, changes=changes_of(ev))
    verdict = evaluator.check(t.condition)
    if verdict.matched:
        return Explained(ev, "matched", "the condition holds")
    n = verdict.part or _erring_part(verdict.reason or "", len(t.condition.parts))
    text = t.condition.parts[n - 1][0] if n else None
    values = _values(evaluator, operands.setdefault(n, _operands(text))) if text else {}
    return Explained(ev, "error" if verdict.error else "not_matched", verdict.reason or "the condition is false",
                     part=n or None, part_text=text, values=values)


def _conclude(item: Explained) -> None:
    """The outcome and reason from what was recorded, where it says more than the evaluation."""
    recorded = {r.outcome for r in item.runs}
    timer = item.timer
    if timer is not None:
        state = {"pending": "scheduled", "done": "fired", "skipped": "skipped", "cancelled": "cancelled",
                 "failed": "failed"}.get(timer.state, timer.state)
        when = _at(timer.finished_at) if timer.finished_at else _at(timer.due_at)
        words = {"scheduled": f"a delayed run (#{timer.id}) is scheduled for {when}",
                 "fired": f"the delayed run (#{timer.id}) fired at {when}"}
        item.outcome = state
        item.reason = words.get(state, f"the delayed run (#{timer.id}) ended {timer.state} at {when}: "
                                       f"{timer.reason or 'no reason recorded'}")
        if state == "fired":
            acted = [r for r in item.runs if r.phase == "fire"]
            if acted and acted[-1].outcome != "acted":
                item.outcome, item.reason = acted[-1].outcome, f"at fire time: {acted[-1].reason}"
        return
    for outcome in ("acted", "failed", "skipped", "cancelled"):
        if outcome in recorded:
            run = next(r for r in reversed(item.runs) if r.outcome == outcome)
            item.outcome = "limited" if outcome == "skipped" and "run limit" in (run.reason or "") else outcome
            item.reason = run.reason or {"acted": "the actions ran", "failed": "an action failed"}.get(outcome, outcome)
            return
    if item.outcome == "matched":
        if item.limit:
            item.outcome, item.reason = "limited", item.limit
        else:
            item.reason = ("the condition holds, but no run was recorded (the event is not handled yet, or the "
                           "trigger or the data changed since)")


def listening_reason(t: Compiled, ev: Event) -> str | None:
    """Why the trigger does not even evaluate the event, or None: the engine's `_listens`, in words."""
    if ev.type not in t.spec.events:
        return f"the trigger listens to {', '.join(t.spec.events)}, not {ev.type}"
    if not t.spec.listens_to(ev.type, ev.name):
        return f"custom event {ev.name!r} is not among event_names ({', '.join(t.spec.event_names)})"
    if t.site_ids is not None and ev.site_id not in t.site_ids:
        return f"the trigger is limited to sites {', '.join(t.spec.sites)}; the event is of another site"
    if t.since is not None and ev.occurred_at < t.since:
        return f"the event happened before the trigger was created ({_at(t.since)})"
    return None


def loop_reason(t: Compiled, ev: Event, *, max_depth: int) -> str | None:
    """The loop rules: a trigger's own change, and the depth of a chain of trigger-caused changes."""
    if ev.source == Source.TRIGGER and ev.actor_id == str(t.id) and not t.spec.react_to_own_changes:
        return "the change was made by this trigger (set react_to_own_changes to react to it)"
    limit = t.spec.max_depth or max_depth
    if ev.depth >= limit:
        return f"chain of trigger-caused changes reached depth {ev.depth} (limit {limit})"
    return None


def limit_reason(t: Compiled, ev: Event, firings: Iterable[tuple[int, int | None, int | None, datetime]]
                 ) -> str | None:
    """Whether a run limit stopped a run on the event: firings of the trigger on earlier events, within the
    limit's period before the event, counted as the engine counts them."""
    firings = list(firings)
    for limit in t.spec.limits:
        if limit.per == LimitPer.CUSTOMER:
            if ev.customer_id is None:
                continue
            scope = [f for f in firings if f[1] == ev.customer_id]
        elif limit.per == LimitPer.ORDER:
            if ev.order_id is None:
                continue
            scope = [f for f in firings if f[2] == ev.order_id]
        else:
            scope = firings
        start = ev.occurred_at - timedelta(days=limit.period_days) if limit.period_days else None
        done = sum(1 for f in scope if f[0] < ev.id and (start is None or f[3] > start))
        if done >= limit.max:
            period = f" in {limit.period_days} days" if limit.period_days else ""
            return f"run limit reached: {done} of {limit.max} per {limit.per.value}{period}"
    return None


# ---- the data as it was right after each event ---------------------------------------------------------------

def states_at(events: Sequence[Event], *, orders: Mapping[int, dict[str, Any]], customers: Mapping[int, dict[str, Any]],
              groups: Mapping[str, str | None]) -> dict[int, tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """event id -> (order, customer) right after the event: the current snapshots with the changes of every later
    event (in `events`) undone, newest first. Values keep the snapshot's types (money as Decimal, times as
    datetime); what no event records (items' products, consents) stays as it is now."""
    current = {"order": {k: copy.deepcopy(v) for k, v in orders.items()},
               "customer": {k: copy.deepcopy(v) for k, v in customers.items()}}
    out = {}
    for ev in sorted(events, key=lambda e: e.id, reverse=True):
        order = current["order"].get(ev.order_id) if ev.order_id is not None else None
        customer = current["customer"].get(ev.customer_id) if ev.customer_id is not None else None
        out[ev.id] = (copy.deepcopy(order) if order is not None else None,
                      copy.deepcopy(customer) if customer is not None else None)
        kind = REVERTED.get(ev.type)
        snap = (order if kind == "order" else customer) if kind else None
        if snap is None:
            continue
        for change in changes_of(ev):
            name = change["field"]
            if name in snap:
                snap[name] = _like(snap[name], change["old"])
        if kind == "order" and "status_group" in snap:
            snap["status_group"] = groups.get(snap.get("status"))
    return out


def _like(current: Any, old: Any) -> Any:
    """A value from an event's JSON payload in the type of the snapshot's value (Decimal, datetime, date)."""
    if old is None or not isinstance(old, str):
        return old
    try:
        if isinstance(current, Decimal):
            return Decimal(old)
        if isinstance(current, datetime):
            return datetime.fromisoformat(old)
        if isinstance(current, date):
            return date.fromisoformat(old)
    except (ValueError, InvalidOperation):
        return old
    return old


# ---- what the sub-expressions of a false part saw ------------------------------------------------------------

_STRING = re.compile(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"")
_PATH = re.compile(r"(?<![\w.])(order|customer|event)((?:\s*\.\s*[A-Za-z_]\w*)+)")
_CALL = re.compile(r"(?<![\w.])(" + "|".join(HELPERS) + r")\s*\(")
_CHANGE_HELPERS = re.compile(r"(?<![\w.])(changed|old_value|new_value)\s*\(")
_ENTITY_ARG = re.compile(r"^(has_tag|in_status_group)\(\s*(order|customer)\s*[,)]")
_ERRING = re.compile(r"^part (\d+) of \d+ ")


def _operands(text: str) -> list[tuple[str, Any]]:
    """(source, compiled program) of the sub-expressions worth showing in a part: helper calls, field paths (with
    what a helper reads of a whole order or customer), the changed fields for change helpers."""
    masked = _STRING.sub(lambda m: m.group(0)[0] + " " * (len(m.group(0)) - 2) + m.group(0)[-1], text)
    found: list[str] = []
    for m in _CALL.finditer(masked):
        end = _closing(masked, m.end() - 1)
        if end is not None:
            call = text[m.start():end + 1]
            found.append(call)
            arg = _ENTITY_ARG.match(call)
            if arg:
                found.append(f"{arg.group(2)}.{HELPER_FIELDS[arg.group(1)]}")
    for m in _PATH.finditer(masked):
        path = re.sub(r"\s+", "", text[m.start():m.end()])
        if masked[m.end():].lstrip().startswith("("):  # a method: `order.number.startsWith(...)`
            path = path.rpartition(".")[0]
        if "." in path:
            found.append(path)
    if _CHANGE_HELPERS.search(masked):
        found.append("changes.map(c, c.field)")
    out, seen = [], {text.strip()}
    for source in found:
        if source in seen:
            continue
        seen.add(source)
        try:
            out.append((source, compile_expression(source)))
        except ConditionError:
            continue
        if len(out) == MAX_VALUES:
            break
    return out


def _closing(text: str, opening: int) -> int | None:
    depth = 0
    for i in range(opening, len(text)):
        if text[i] in "([{":
            depth += 1
        elif text[i] in ")]}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _values(evaluator: Evaluator, operands: list[tuple[str, Any]]) -> dict[str, Any]:
    out = {}
    for source, program in operands:
        value, error = evaluator.value(program)
        out[source] = {"error": error} if error else jsonable(value)
    return out


def _erring_part(reason: str, parts: int) -> int:
    """The part an evaluation error names (`part 2 of 3 ... could not be evaluated`); the whole condition if one."""
    m = _ERRING.match(reason)
    return int(m.group(1)) if m else (1 if parts == 1 else 0)


def _at(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")
