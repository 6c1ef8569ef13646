"""Pure journey decisions: is a definition's graph sound, may a customer enter, which event enters, exits or wakes
a run, where a wait ends, which arm of a split. No I/O; times come in as `now`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from retento.core.errors import DomainError, FieldError
from retento.journeys.schemas import (
    MESSAGE_KINDS,
    BranchStep,
    Entry,
    ExitRule,
    JourneyIn,
    Reentry,
    Send,
    Split,
    Wait,
    WaitEvent,
)

MAX_STEPS_PER_TURN = 100  # steps a run may take in one go (a graph has no cycles, so this is never reached)


@dataclass(frozen=True)
class EventView:
    """What the decisions need of a domain event."""

    id: int
    type: str
    name: str | None
    occurred_at: datetime
    payload: Mapping[str, Any]


def edges(step: Any) -> list[tuple[str, str]]:
    """(field, step id) of every step a step can go to."""
    out: list[tuple[str, str | None]] = [("next", step.next)]
    if isinstance(step, WaitEvent):
        out += [("on_event", step.on_event), ("on_timeout", step.on_timeout)]
    elif isinstance(step, BranchStep):
        out += [(f"branches.{i}.next", b.next) for i, b in enumerate(step.branches)] + [("else", step.else_)]
    elif isinstance(step, Split):
        out += [(f"arms.{i}.next", a.next) for i, a in enumerate(step.arms)]
    return [(f, s) for f, s in out if s is not None]


def start_of(d: JourneyIn) -> str:
    return d.start or d.steps[0].id


def check_graph(d: JourneyIn) -> None:
    """The steps as a whole: unique ids, every reference names a step, every step reachable from the start, no
    cycles, a branch has an `else`, a wait has a duration or a time, a wait for an event has a timeout, a wait for
    a message's open / click names a send step before it. Raises DomainError naming each wrong part."""
    errors: list[FieldError] = []
    index: dict[str, int] = {}
    for i, s in enumerate(d.steps):
        if s.id in index:
            errors.append(FieldError(f"steps.{i}.id", f"step id {s.id!r} is used twice (first by steps.{index[s.id]})"))
        index.setdefault(s.id, i)
    if d.start is not None and d.start not in index:
        errors.append(FieldError("start", f"no step {d.start!r}"))
    for i, s in enumerate(d.steps):
        for f, target in edges(s):
            if target not in index:
                errors.append(FieldError(f"steps.{i}.{f}", f"no step {target!r}"))
        if isinstance(s, BranchStep) and s.else_ is None:
            errors.append(FieldError(f"steps.{i}.else", "a branch needs `else`: where customers go when no branch "
                                                          "holds"))
        if isinstance(s, Wait) and s.total_minutes == 0 and s.at is None:
            errors.append(FieldError(f"steps.{i}", "a wait needs minutes, hours, days or `at`"))
        if isinstance(s, WaitEvent):
            if s.timeout is None or s.timeout.total_minutes == 0:
                errors.append(FieldError(f"steps.{i}.timeout", "a wait for an event needs a timeout (minutes, "
                                                               "hours or days)"))
            if s.event == "custom" and not s.name:
                errors.append(FieldError(f"steps.{i}.name", "a custom event needs `name`"))
            if s.of_step is not None and (s.of_step not in index or not isinstance(d.steps[index[s.of_step]], Send)):
                errors.append(FieldError(f"steps.{i}.of_step", f"{s.of_step!r} is not a send step"))
        if isinstance(s, BranchStep):
            for j, b in enumerate(s.branches):
                if b.engaged and (b.engaged.step not in index or not isinstance(d.steps[index[b.engaged.step]], Send)):
                    errors.append(FieldError(f"steps.{i}.branches.{j}.engaged.step",
                                             f"{b.engaged.step!r} is not a send step"))
    if errors:
        raise DomainError(errors)
    start = start_of(d)
    seen, order = _walk(d, start)
    for i, s in enumerate(d.steps):
        if s.id not in seen:
            errors.append(FieldError(f"steps.{i}", f"step {s.id!r} is unreachable from the start ({start!r})"))
    if cycle := _cycle(d, start):
        errors.append(FieldError(f"steps.{index[cycle[0]]}", "the steps go round in a circle: " + " -> ".join(cycle)))
    for i, s in enumerate(d.steps):
        if isinstance(s, WaitEvent) and s.event in MESSAGE_KINDS and s.of_step is None and not _send_before(d, s.id):
            errors.append(FieldError(f"steps.{i}.event", f"waits for {s.event!r} but no send step comes before it"))
    if errors:
        raise DomainError(errors)


def _walk(d: JourneyIn, start: str) -> tuple[set[str], list[str]]:
    steps = {s.id: s for s in d.steps}
    seen, order, todo = set(), [], [start]
    while todo:
        sid = todo.pop()
        if sid in seen or sid not in steps:
            continue
        seen.add(sid)
        order.append(sid)
        todo += [t for _, t in edges(steps[sid])]
    return seen, order


def _cycle(d: JourneyIn, start: str) -> list[str] | None:
    steps = {s.id: s for s in d.steps}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(sid: str) -> list[str] | None:
        state[sid] = 1
        path.append(sid)
        for _, t in edges(steps[sid]):
            if state.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in state and (found := visit(t)):
                return found
        state[sid] = 2
        path.pop()
        return None

    return visit(start)


def _send_before(d: JourneyIn, target: str) -> bool:
    """Some path from the start to `target` passes a send step."""
    steps = {s.id: s for s in d.steps}
    preds: dict[str, set[str]] = {}
    for s in d.steps:
        for _, t in edges(s):
            preds.setdefault(t, set()).add(s.id)
    seen, todo = set(), list(preds.get(target, ()))
    while todo:
        sid = todo.pop()
        if sid in seen:
            continue
        seen.add(sid)
        if isinstance(steps[sid], Send):
            return True
        todo += preds.get(sid, ())
    return False


# --- entries, exits, wakes -------------------------------------------------------------------------------------

def entry_event(entry: Entry, ev: EventView) -> bool:
    """The event is of the entry's kind (the condition is checked apart, on the data)."""
    if entry.kind == "customer_created":
        if ev.type != "customer_created":
            return False
        point = (ev.payload.get("customer") or {}).get("entry_point")
        return not entry.entry_points or point in entry.entry_points
    if entry.kind == "email_confirmed":
        return ev.type == "email_confirmed"
    if entry.kind == "segment_entered":
        return ev.type == "segment_entered" and ev.payload.get("segment_code") == entry.segment
    return ev.type == entry.event and (entry.event_name is None or ev.name == entry.event_name)


def may_enter(reentry: Reentry, *, active: bool, last_entered_at: datetime | None, now: datetime) -> bool:
    """One active run per customer and journey; then the re-entry rule."""
    if active:
        return False
    if last_entered_at is None or reentry.policy == "always":
        return True
    if reentry.policy == "never":
        return False
    return now - last_entered_at >= timedelta(days=reentry.days or 0)


def exit_event(exits: Iterable[ExitRule], ev: EventView) -> str | None:
    """The reason of the first exit rule the event meets, or None."""
    for rule in exits:
        if rule.event is None:
            continue
        if rule.event == "ordered" and ev.type == "order_created":
            return rule.reason
        if rule.event in ("unsubscribed", "email_confirmed") and ev.type == rule.event:
            return rule.reason
        if rule.event == "segment_left" and ev.type == "segment_left" and ev.payload.get("segment_code") == rule.segment:
            return rule.reason
        if rule.event == "custom" and ev.type == "custom" and ev.name == rule.name:
            return rule.reason
    return None


def send_of(step: WaitEvent, context: Mapping[str, Any]) -> int | None:
    """The cascade run whose messages a wait for an open / click looks at."""
    sends = context.get("sends") or {}
    key = step.of_step or context.get("last_send")
    return sends.get(key) if key else None


def wakes(step: WaitEvent, ev: EventView, context: Mapping[str, Any], *, since: datetime) -> bool:
    """The event is what the waiting step waits for, and came after the wait began."""
    if ev.occurred_at < since:
        return False
    if step.event in MESSAGE_KINDS:
        wanted = "message_clicked" if step.event == "clicked" else "message_read"
        return ev.type == wanted and ev.payload.get("run_id") is not None and ev.payload.get("run_id") == send_of(
            step, context)
    if step.event == "ordered":
        return ev.type == "order_created"
    if step.event == "email_confirmed":
        return ev.type == "email_confirmed"
    return ev.type == "custom" and ev.name == step.name


# --- waits and splits --------------------------------------------------------------------------------------------

def zone(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def wait_until(step: Wait, *, now: datetime, tz: str | None) -> datetime:
    """The end of a wait: `now` + the duration; with `at`, then on to that local time (the same day if it is still
    ahead, else the next)."""
    end = now + timedelta(minutes=step.total_minutes)
    if step.at is None:
        return end
    z = zone(tz)
    local = end.astimezone(z)
    hh, mm = (int(x) for x in step.at.split(":"))
    target = datetime.combine(local.date(), time(hh, mm), tzinfo=z)
    if target < local:
        target = datetime.combine(local.date() + timedelta(days=1), time(hh, mm), tzinfo=z)
    return target.astimezone(now.tzinfo)


def timeout_at(step: WaitEvent, *, now: datetime) -> datetime:
    return now + timedelta(minutes=step.timeout.total_minutes if step.timeout else 0)


def bucket(*parts: object) -> int:
    """A stable number 0..99 from the parts (the same customer lands in the same arm every time)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def split_arm(step: Split, *, journey_id: int, customer_id: int) -> str | None:
    """The arm's `next` step for this customer, or None for the holdout."""
    b = bucket(journey_id, step.id, customer_id)
    edge = 0
    for arm in step.arms:
        edge += arm.share
        if b < edge:
            return arm.name
    return None
