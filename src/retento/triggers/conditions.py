"""Trigger conditions: CEL expressions, compiled once, evaluated against one reused context. Pure: no I/O.

Variables: `event`, `customer`, `order`, `changes` (list of {field, old, new, source, actor}), `now`.
Helpers (see docs/triggers.md): days_since, hours_since, minutes_since, has_tag, contains,
in_status_group, changed, old_value, new_value, source_is, source_is_not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field as dc_field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from functools import cached_property
from typing import Any

import cel

from retento.triggers.quick import UNKNOWN, Scope, compile_part

VARIABLES = ("event", "customer", "order", "changes", "now")
EVENT_FIELDS = frozenset({"id", "type", "name", "occurred_at", "source", "actor_type", "actor_id", "depth", "data"})
HELPERS = {
    "days_since": "days_since(time) - whole days from a time (or ISO date) until now",
    "hours_since": "hours_since(time) - whole hours from a time until now",
    "minutes_since": "minutes_since(time) - whole minutes from a time until now",
    "has_tag": "has_tag(customer_or_order, \"tag\") - the entity carries the tag",
    "contains": "contains(list_or_text, value) - list membership or substring",
    "in_status_group": "in_status_group(order, \"complete\") - the order's status is in the group (or list of groups)",
    "changed": "changed(\"field\") - the triggering change touched the field",
    "old_value": "old_value(\"field\") - the field's value before the change (null if unchanged)",
    "new_value": "new_value(\"field\") - the field's value after the change (null if unchanged)",
    "source_is": "source_is(\"user\") - the change was made through this source (api, user, trigger, robot, import)",
    "source_is_not": "source_is_not(\"trigger\") - the change was not made through this source",
}
CEL_FUNCTIONS = frozenset({
    "size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double", "string", "bytes", "bool",
    "timestamp", "duration", "type", "dyn", "has", "exists", "all", "exists_one", "map", "filter",
    "getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate", "getDayOfWeek", "getHours",
    "getMinutes", "getSeconds", "getMilliseconds", "max", "min",
})
TYPE_NAMES = frozenset({"int", "uint", "double", "string", "bool", "bytes", "list", "map", "null_type", "type"})
_MACRO_VAR = re.compile(r"\.\s*(?:exists|all|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_STRING = re.compile(r"'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"", re.DOTALL)
_FIELD_REF = re.compile(r"(?<![\w.])(order|customer|event)\s*\.\s*([A-Za-z_]\w*)")
_POSITION = re.compile(r"<input>:(\d+):(\d+):\s*(.*)")


class ConditionError(ValueError):
    """A condition that cannot be saved; the message says which part is wrong, `span` where it is in the source
    (start and end offsets; None when it is the whole), so an editor can mark it."""

    def __init__(self, message: str, span: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.span = span


def _span_of(pattern: str, text: str) -> tuple[int, int] | None:
    m = re.search(pattern, text)
    return m.span() if m else None


@dataclass(frozen=True)
class Condition:
    source: str
    program: Any  # cel.Program
    parts: tuple[tuple[str, Any], ...]  # top-level `&&` parts, for explaining a false result
    variables: frozenset[str]
    fields: Mapping[str, frozenset[str] | None] = dc_field(default_factory=dict)  # see `fields_used`
    known: frozenset[int] = frozenset()  # 1-based parts known to hold (a guard matched): `check` skips them
    # per part: its plain Python version (`quick.compile_part`), None where the part is not in that subset
    shortcuts: tuple[Any, ...] = dc_field(default=(), compare=False, repr=False)
    falses: tuple[Verdict, ...] = dc_field(default=(), compare=False, repr=False)  # per part: its verdict when false

    def knowing(self, part: int) -> Condition:
        """The same condition for an event on which part `part` is known to hold (its guard matched)."""
        return replace(self, known=self.known | {part})

    @cached_property
    def steps(self) -> tuple[tuple[int, Any, Any, str], ...]:
        """The parts `Evaluator.check` runs, in order: (1-based number, Python version or None, program, text)."""
        return tuple((n, self.shortcuts[n - 1] if self.shortcuts else None, program, text)
                     for n, (text, program) in enumerate(self.parts, 1) if n not in self.known)


@dataclass(frozen=True)
class Verdict:
    matched: bool
    reason: str | None = None  # why not (which part was false, or the evaluation error)
    error: bool = False
    part: int = 0  # the 1-based `&&` part that was false (0: matched, or an evaluation error)


MATCHED = Verdict(True)


def compile_condition(source: str, *, fields: Mapping[str, Iterable[str]] | None = None) -> Condition:
    """Compile and check a condition; raises ConditionError naming the wrong part.

    `fields` maps `order` / `customer` to the fields they have, so a misspelt field is caught on save.
    """
    source = source.strip()
    if not source:
        raise ConditionError("is empty; write `true` to match every event")
    program = _compile(source)
    refs = program.references()
    bound = set(_MACRO_VAR.findall(source))
    stripped = _STRING.sub(lambda m: '"' + " " * (len(m.group()) - 2) + '"', source)  # offsets kept
    unknown = [v for v in refs["variables"] if v not in VARIABLES and v not in bound and v not in TYPE_NAMES]
    if unknown:
        raise ConditionError(f"unknown variable {unknown[0]!r}; available: {', '.join(VARIABLES)}",
                             _span_of(rf"(?<![\w.]){re.escape(unknown[0])}\b", stripped))
    bad = [f for f in refs["functions"] if not _is_operator(f) and f not in CEL_FUNCTIONS and f not in HELPERS]
    if bad:
        raise ConditionError(f"unknown function {bad[0]!r}; helpers: {', '.join(HELPERS)}",
                             _span_of(rf"\b{re.escape(bad[0])}(?=\s*\()", stripped))
    known = {"event": EVENT_FIELDS, **{k: frozenset(v) for k, v in (fields or {}).items()}}
    for m in _FIELD_REF.finditer(stripped):
        var, name = m.groups()
        if var in known and name not in known[var]:
            raise ConditionError(f"{var} has no field {name!r}; fields: {', '.join(sorted(known[var]))}", m.span())
    parts = split_conjuncts(source)
    compiled_parts = tuple((p, _compile(p)) for p in parts) if len(parts) > 1 else ((source, program),)
    variables, used = set(refs["variables"]), fields_used(stripped)
    if SOURCE_HELPERS & set(refs["functions"]):  # they read the event's source, named or not
        variables.add("event")
        if used.get("event", frozenset()) is not None:
            used["event"] = frozenset(used.get("event") or ()) | {"source"}
    if len(compiled_parts) == 1:
        falses = (Verdict(False, f"condition `{source}` is false", part=1),)
    else:
        falses = tuple(Verdict(False, f"part {n} of {len(compiled_parts)} is false: `{text}`", part=n)
                       for n, (text, _) in enumerate(compiled_parts, 1))
    return Condition(source=source, program=program, parts=compiled_parts, variables=frozenset(variables),
                     fields=used, shortcuts=tuple(compile_part(text) for text, _ in compiled_parts), falses=falses)


SOURCE_HELPERS = frozenset({"source_is", "source_is_not"})
_ENTITY_HELPER = re.compile(r"\b(has_tag|in_status_group)\(\s*(order|customer)\s*(?=[,)])")
_BARE = re.compile(r"(?<![\w.])(order|customer|event)\b(?!\s*\.)")
HELPER_FIELDS = {"has_tag": "tags", "in_status_group": "status_group"}


def fields_used(stripped: str) -> dict[str, frozenset[str] | None]:
    """Which fields of `order`, `customer` and `event` a condition (string literals blanked) reads: a set, or
    None when it uses the whole object (`order["x"]`, passing it to a function other than the helpers).
    Only those fields are handed to CEL, which costs time in proportion to what it is given."""
    used: dict[str, set[str] | None] = {}
    for var, name in _FIELD_REF.findall(stripped):
        if used.get(var, set()) is not None:
            used.setdefault(var, set()).add(name)  # type: ignore[union-attr]
    for helper, var in _ENTITY_HELPER.findall(stripped):
        if used.get(var, set()) is not None:
            used.setdefault(var, set()).add(HELPER_FIELDS[helper])  # type: ignore[union-attr]
    for var in _BARE.findall(_ENTITY_HELPER.sub("", stripped)):
        used[var] = None
    return {k: (frozenset(v) if v is not None else None) for k, v in used.items()}


def compile_expression(source: str) -> Any:
    """A CEL expression of any type (a part of a condition), for `Evaluator.value`; ConditionError if it does not
    compile."""
    return _compile(source)


def _compile(source: str) -> Any:
    try:
        return cel.compile(source)
    except ValueError as exc:
        raise ConditionError(*_syntax_message(source, str(exc))) from None


def _syntax_message(source: str, raw: str) -> tuple[str, tuple[int, int] | None]:
    m = _POSITION.search(raw)
    if not m:
        return f"syntax error: {raw.splitlines()[0] if raw else 'cannot parse'}", None
    line, col, detail = int(m.group(1)), int(m.group(2)), m.group(3).strip()
    detail = detail.removeprefix("Syntax error: ")
    text = source.splitlines()[line - 1] if source.splitlines() else source
    near = text[max(0, col - 20):col + 1].strip()
    # cel's column is 1-based: the offset of the character it points at, within the whole source
    at = min(sum(len(x) + 1 for x in source.split("\n")[:line - 1]) + max(col - 1, 0), len(source))
    return f"syntax error at line {line}, column {col + 1} (near `{near}`): {detail}", (at, min(at + 1, len(source)))


def _is_operator(name: str) -> bool:
    return name.startswith(("_", "!", "@", "-"))


def split_conjuncts(source: str) -> list[str]:
    """The parts of `a && b && (c || d)` joined by a top-level `&&`; one part if there is none."""
    parts, depth, start, i, quote = [], 0, 0, 0, ""
    while i < len(source):
        ch = source[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "?" and depth == 0:
            return [source.strip()]  # a top-level ternary: explain it as a whole
        elif source.startswith("&&", i) and depth == 0:
            parts.append(source[start:i].strip())
            start = i + 2
            i += 1
        elif source.startswith("||", i) and depth == 0:
            return [source.strip()]  # `a && b || c` is not a conjunction at the top
        i += 1
    parts.append(source[start:].strip())
    return [p for p in parts if p]


def plain(value: Any) -> Any:
    """Values CEL accepts: Decimal -> float, date -> ISO string, datetime stays (UTC), enums by value."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return str(value)


def _as_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"expected a time, got {value!r}")


class Evaluator:
    """One CEL context with the helpers, reused for every evaluation (not thread-safe: one per thread).

    A part of a condition in the subset `quick` compiles runs as plain Python on the variables as given; CEL runs
    the others, and those parts whenever the Python version cannot be sure of CEL's answer (`quick.UNKNOWN`).
    The variables are handed to CEL only when it runs (`bind` keeps them until then). `shortcuts=False` runs every
    part in CEL (the tests compare both ways)."""

    def __init__(self, *, shortcuts: bool = True) -> None:
        self._scope = scope = Scope()
        self._shortcuts = shortcuts
        self._unbound: tuple[Mapping[str, frozenset[str] | None] | None] | None = None  # see `_hand_over`
        ctx = cel.Context()

        def since(unit: int) -> Any:
            return lambda t: int((scope.now - _as_time(t)).total_seconds() // unit)

        ctx.add_function("days_since", since(86400))
        ctx.add_function("hours_since", since(3600))
        ctx.add_function("minutes_since", since(60))
        ctx.add_function("has_tag", lambda entity, tag: bool(entity) and tag in (entity.get("tags") or ()))
        ctx.add_function("contains", lambda where, what: where is not None and what in where)
        ctx.add_function("in_status_group", _in_status_group)
        ctx.add_function("changed", lambda f: any(c["field"] == f for c in scope.changes))
        ctx.add_function("old_value", lambda f: next((c["old"] for c in scope.changes if c["field"] == f), None))
        ctx.add_function("new_value", lambda f: next((c["new"] for c in scope.changes if c["field"] == f), None))
        ctx.add_function("source_is", lambda s: scope.source == s)
        ctx.add_function("source_is_not", lambda s: scope.source != s)
        self._ctx = ctx

    def bind(self, *, now: datetime, event: dict[str, Any] | None, customer: dict[str, Any] | None,
             order: dict[str, Any] | None, changes: list[dict[str, Any]],
             fields: Mapping[str, frozenset[str] | None] | None = None) -> None:
        """Set the variables for the evaluations that follow (one conversion for all triggers of an event, when
        the first part that needs CEL runs).

        `fields` (variable -> fields, None for all): only those variables and fields are converted and handed
        to CEL (the union over the conditions about to run); the rest keep stale values no condition reads."""
        scope = self._scope
        scope.now, scope.event, scope.customer, scope.order, scope.changes = now, event, customer, order, changes
        scope.source = (event or {}).get("source")
        self._unbound = (fields,)

    def _hand_over(self) -> None:
        """Convert the bound variables into CEL's context (once per `bind`, before CEL first runs)."""
        if self._unbound is None:
            return
        (fields,), self._unbound = self._unbound, None
        scope = self._scope
        if fields is None:
            self._ctx.update({"now": scope.now, "event": plain(scope.event), "customer": plain(scope.customer),
                              "order": plain(scope.order), "changes": plain(scope.changes)})
            return
        values: dict[str, Any] = {"now": scope.now}
        for name, value in (("event", scope.event), ("customer", scope.customer), ("order", scope.order),
                            ("changes", scope.changes)):
            if name not in fields:
                continue
            wanted = fields[name]
            if wanted is None or not isinstance(value, Mapping):
                values[name] = plain(value)
            else:
                values[name] = {k: plain(value[k]) for k in wanted if k in value}
        self._ctx.update(values)

    def check(self, condition: Condition) -> Verdict:
        """A condition of `a && b && c` is run part by part, stopping at the first false one (the same result as
        the whole, as CEL's `&&` is false if any part is false): one run names the false part, no second pass.
        Parts known to hold (`Condition.known`: the guard the engine found the trigger by) are not run again."""
        if len(condition.parts) == 1:
            if condition.known:
                return MATCHED
            fast = condition.shortcuts[0] if condition.shortcuts and self._shortcuts else None
            result = fast(self._scope) if fast is not None else UNKNOWN
            if result is UNKNOWN:
                result, error = self._run(condition.program)
                if error:
                    return Verdict(False, f"condition could not be evaluated: {error}", error=True)
            if result is True:
                return MATCHED
            return condition.falses[0] if condition.falses else Verdict(
                False, f"condition `{condition.source}` is false", part=1)
        scope, shortcuts = self._scope, self._shortcuts
        for n, fast, program, text in condition.steps:
            part = fast(scope) if fast is not None and shortcuts else UNKNOWN
            if part is UNKNOWN:
                part, error = self._run(program)
                if error:
                    return Verdict(False, f"part {n} of {len(condition.parts)} `{text}` could not be evaluated: "
                                          f"{error}", error=True)
            if part is not True:
                return condition.falses[n - 1] if condition.falses else Verdict(
                    False, f"part {n} of {len(condition.parts)} is false: `{text}`", part=n)
        return MATCHED

    def value(self, program: Any) -> tuple[Any, str | None]:
        """(value, None) of any compiled expression (`compile_expression`) on the bound variables, or (None, the
        error): what a sub-expression of a condition saw (`explain`)."""
        self._hand_over()
        try:
            return program.execute(self._ctx), None
        except Exception as exc:  # noqa: BLE001 - as in _run
            return None, str(exc).split(". Check ")[0].split(". CEL does not")[0]

    def _run(self, program: Any) -> tuple[Any, str | None]:
        self._hand_over()
        try:
            result = program.execute(self._ctx)
        except Exception as exc:  # noqa: BLE001 - CEL raises several types; all mean "cannot evaluate on this data"
            text = str(exc).split(". Check ")[0].split(". CEL does not")[0]
            return None, f"missing field {text}" if isinstance(exc, KeyError) else text
        if not isinstance(result, bool):
            return None, f"must give true or false, got {result!r}"
        return result, None


def _in_status_group(order: Any, groups: Any) -> bool:
    if not order:
        return False
    group = order.get("status_group")
    return group in groups if isinstance(groups, list) else group == groups
