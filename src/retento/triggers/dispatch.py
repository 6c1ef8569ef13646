"""Which triggers an event can match, without running their conditions. Pure: no I/O.

Most conditions start with an equality that depends on the event alone or on one field of the order or
customer: `new_value("status") == "received"`, `changed("total")`, `event.data.channel == "email"`,
`order.payment_status == "paid"`. Such a top-level `&&` part is a *guard*. Triggers are indexed by their
guard (a discrimination network, as rule engines do): for an event, one dict lookup per guard key finds the
triggers whose guard holds; only those conditions are run. A trigger whose guard does not hold is not run: CEL's
`&&` is false when any part is false, so its result is known.

A guard only rejects when the value is there and differs from the literal; a missing key, a missing order or
customer leaves the trigger to its full condition (which then says what could not be evaluated).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")
MISSING = object()

_LIT = r'"([^"\\]*)"'
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("new", re.compile(rf'^new_value\(\s*"(\w+)"\s*\)\s*==\s*{_LIT}$')),
    ("new", re.compile(rf'^{_LIT}\s*==\s*new_value\(\s*"(\w+)"\s*\)$')),
    ("changed", re.compile(r'^changed\(\s*"(\w+)"\s*\)$')),
    ("data", re.compile(rf'^event\s*\.\s*data\s*\.\s*([A-Za-z_]\w*)\s*==\s*{_LIT}$')),
    ("event", re.compile(rf'^event\s*\.\s*(name|source|type)\s*==\s*{_LIT}$')),
    ("order", re.compile(rf'^order\s*\.\s*([A-Za-z_]\w*)\s*==\s*{_LIT}$')),
    ("customer", re.compile(rf'^customer\s*\.\s*([A-Za-z_]\w*)\s*==\s*{_LIT}$')),
)
EVENT_KINDS = ("new", "changed", "data", "event")  # known from the event alone
ENTITY_KINDS = ("order", "customer")  # known once the order / customer is read


@dataclass(frozen=True)
class Guard:
    kind: str  # new | changed | data | event | order | customer
    key: str  # the field
    value: Any  # the literal the value must equal (True for `changed`)
    part: int  # 1-based index of the `&&` part it comes from
    parts: int  # how many parts the condition has

    @property
    def reason(self) -> str:
        return f"part {self.part} of {self.parts} is false"


def guards_of(parts: Iterable[str]) -> list[Guard]:
    """Every part of a conjunction that is a guard, in order."""
    parts = list(parts)
    out = []
    for n, text in enumerate(parts, 1):
        for kind, pattern in _PATTERNS:
            m = pattern.match(text.strip())
            if m is None:
                continue
            if kind == "changed":
                out.append(Guard(kind, m.group(1), True, n, len(parts)))
            elif pattern.pattern.startswith("^" + _LIT):
                out.append(Guard(kind, m.group(2), m.group(1), n, len(parts)))
            else:
                out.append(Guard(kind, m.group(1), m.group(2), n, len(parts)))
            break
    return out


def event_value(kind: str, key: str, *, changes: list[Mapping[str, Any]], payload: Mapping[str, Any],
                event: Mapping[str, Any]) -> Any:
    """The value a guard of an event kind compares (MISSING when the condition would not get a value)."""
    if kind == "new":
        return next((c.get("new") for c in changes if c.get("field") == key), None)
    if kind == "changed":
        return any(c.get("field") == key for c in changes)
    if kind == "data":
        return payload.get(key, MISSING) if isinstance(payload, Mapping) else MISSING
    return event.get(key, MISSING)


def entity_value(entity: Mapping[str, Any] | None, key: str) -> Any:
    if entity is None:
        return MISSING
    return entity.get(key, MISSING)


@dataclass
class Group(Generic[T]):
    """The triggers indexed on one guard key: literal -> triggers; `everyone` for an absent value."""

    kind: str
    key: str
    by_value: dict[Any, list[T]] = field(default_factory=dict)
    everyone: list[T] = field(default_factory=list)

    def split(self, value: Any) -> list[T]:
        """The candidates for the value the event has (the others' condition is false)."""
        if value is MISSING:
            return self.everyone
        if isinstance(value, str | bool):
            return self.by_value.get(value, [])
        return []

    def slot(self, value: Any) -> Any:
        """The value as far as `split` tells values apart: MISSING, a literal of the group, or None (no one);
        `split(slot(v))` is `split(v)`, and there are only as many slots as literals (a cache key)."""
        if value is MISSING:
            return MISSING
        if isinstance(value, str | bool) and value in self.by_value:
            return value
        return None


@dataclass
class Plan(Generic[T]):
    """The triggers listening to one (event type, event name, site): grouped by guard, and those without."""

    event_groups: list[Group[T]] = field(default_factory=list)
    entity_groups: list[Group[T]] = field(default_factory=list)
    unguarded: list[T] = field(default_factory=list)
    everyone: list[T] = field(default_factory=list)
    newest: datetime | None = None  # the latest `since` among them: older events need the per-trigger check


def build_plan(triggers: Iterable[T], guards: Callable[[T], list[Guard]],
               since: Callable[[T], datetime | None], matched: Callable[[T, Guard], T] | None = None) -> Plan[T]:
    """Index the triggers. Each is indexed on one of its guards: one known from the event alone if it has one
    (nothing needs reading to reject), else on the order / customer; among those, the most selective here (the
    key with the most distinct literals among these triggers). `matched(t, guard)`, optional: what the index
    hands out for a value equal to the guard's literal (the trigger knowing that its guard holds)."""
    plan: Plan[T] = Plan()
    triggers = list(triggers)
    literals: dict[tuple[str, str], set[Any]] = {}
    for t in triggers:
        for g in guards(t):
            literals.setdefault((g.kind, g.key), set()).add(g.value)
    groups: dict[tuple[str, str], Group[T]] = {}
    for t in triggers:
        plan.everyone.append(t)
        s = since(t)
        if s is not None and (plan.newest is None or s > plan.newest):
            plan.newest = s
        options = guards(t)
        if not options:
            plan.unguarded.append(t)
            continue
        g = max(options, key=lambda g: (g.kind in EVENT_KINDS, len(literals[(g.kind, g.key)]), -g.part))
        group = groups.get((g.kind, g.key))
        if group is None:
            group = groups[(g.kind, g.key)] = Group(g.kind, g.key)
            (plan.event_groups if g.kind in EVENT_KINDS else plan.entity_groups).append(group)
        group.by_value.setdefault(g.value, []).append(matched(t, g) if matched is not None else t)
        group.everyone.append(t)
    return plan
