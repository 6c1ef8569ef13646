"""Common condition shapes as plain Python functions, with CEL as the fallback. Pure: no I/O.

A part of a condition (a top-level `&&` part, see `conditions.split_conjuncts`) written in a small subset of CEL
is compiled to a Python function of the bound variables (`Scope`): field reads of `order`, `customer` and `event`,
string / number / bool / null literals, `== != < <= > >=`, `!`, `&&`, `||`, parentheses, the helpers and `size`.
Anything else (arithmetic, lists, macros, `now`, `changes`, escapes in strings, ...) is not compiled: the part runs
in CEL. A compiled part gives True or False only where its answer is CEL's for sure (values of the plain types
`plain` gives: null, bool, int within 2^53, float but NaN, string; the comparisons CEL defines for them, its
heterogeneous `==` false across types), and UNKNOWN everywhere else: a missing field, a null or a map where a value
is expected, a type CEL would refuse, a helper that raises. The evaluator then runs the part in CEL, which gives the
result or the error exactly as before. So the verdict, the false part and every error message stay CEL's; what is
saved is the conversion of the variables into CEL (`cel.Context.update`) and the call into it.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

UNKNOWN: Any = object()  # "ask CEL"
Fn = Callable[["Scope"], Any]
ROOTS = ("order", "customer", "event")
_EXACT = 2 ** 53  # ints beyond this compare with doubles differently in CEL (as doubles) and Python (exactly)
_TOKEN = re.compile(r'\s*(?:(?P<num>\d+\.\d+(?![\w.])|\d+(?![\w.]))|(?P<str>"[^"\\\n]*")|(?P<name>[A-Za-z_]\w*)'
                    r'|(?P<op>==|!=|<=|>=|&&|\|\||[<>!().,]))')
_RELATIONS = ("==", "!=", "<", "<=", ">", ">=")


class Scope:
    """The variables a condition is evaluated on, as the evaluator was given them (not converted)."""

    __slots__ = ("now", "event", "order", "customer", "changes", "source")

    def __init__(self) -> None:
        self.now: datetime = datetime.now(UTC)
        self.event: Any = None
        self.order: Any = None
        self.customer: Any = None
        self.changes: Any = []
        self.source: Any = None


def compile_part(source: str) -> Fn | None:
    """The part as a function of a Scope (True, False or UNKNOWN), or None if it is not in the subset."""
    tokens = _tokens(source)
    if tokens is None:
        return None
    try:
        parser = _Parser(tokens)
        fn = parser.expr()
        if parser.peek() is not None:
            return None
    except _NotInSubset:
        return None
    return _boolean(fn)


# ---- values as CEL sees them ------------------------------------------------------------------------------------

def _prim(value: Any) -> Any:
    """A value CEL and Python compare alike (null, bool, int within 2^53, float but NaN, string), else UNKNOWN."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -_EXACT <= value <= _EXACT else UNKNOWN
    if isinstance(value, float):
        return UNKNOWN if math.isnan(value) else value
    return UNKNOWN


def _plain(value: Any) -> Any:
    """What `conditions.plain` makes of a field's value, for the types the subset reads (others: UNKNOWN)."""
    if value is None or isinstance(value, bool | int | float | str):
        return _prim(value)
    if isinstance(value, Decimal):
        return _prim(float(value))
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return _prim(value.value)
    return UNKNOWN


_KINDS = {type(None): "null", bool: "bool", int: "num", float: "num", str: "str"}


def _kind(value: Any) -> str | None:
    found = _KINDS.get(type(value))
    if found is not None:
        return found
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "num"
    if isinstance(value, str):
        return "str"
    return None


def _equal(a: Any, b: Any) -> Any:
    ka, kb = _kind(a), _kind(b)
    if ka is None or kb is None:
        return UNKNOWN
    return ka == kb and (ka == "null" or a == b)


_ORDER: dict[str, Callable[[Any, Any], bool]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
                                                  ">=": operator.ge}


def _relation(op: str, left: Fn, right: Fn) -> Fn:
    literal = getattr(right, "literal", UNKNOWN)
    if op in ("==", "!="):
        negate = op == "!="
        if literal is not UNKNOWN:  # `x == "lit"`: the literal's kind known once
            kb = _kind(literal)

            def eq_literal(s: Scope) -> Any:
                a = left(s)
                if a is UNKNOWN:
                    return UNKNOWN
                ka = _kind(a)
                if ka is None:
                    return UNKNOWN
                return (ka == kb and (ka == "null" or a == literal)) != negate
            return _returns_bool(eq_literal)

        def eq(s: Scope) -> Any:
            a = left(s)
            if a is UNKNOWN:
                return UNKNOWN
            b = right(s)
            if b is UNKNOWN:
                return UNKNOWN
            r = _equal(a, b)
            return r if r is UNKNOWN else r != negate
        return _returns_bool(eq)
    compare = _ORDER[op]
    if literal is not UNKNOWN and _kind(literal) == "num":  # `x > 1.0`
        def order_literal(s: Scope) -> Any:
            a = left(s)
            if _KINDS.get(type(a)) == "num" or _kind(a) == "num":
                return compare(a, literal)
            return UNKNOWN
        return _returns_bool(order_literal)

    def order(s: Scope) -> Any:
        a = left(s)
        if a is UNKNOWN or _kind(a) != "num":
            return UNKNOWN
        b = right(s)
        if b is UNKNOWN or _kind(b) != "num":
            return UNKNOWN
        return compare(a, b)
    return _returns_bool(order)


def _returns_bool(fn: Fn) -> Fn:
    """Mark a function that gives only True, False or UNKNOWN (no `_boolean` around it)."""
    fn.boolean = True  # type: ignore[attr-defined]
    return fn


def _boolean(fn: Fn) -> Fn:
    if getattr(fn, "boolean", False):
        return fn

    def part(s: Scope) -> Any:
        r = fn(s)
        return r if isinstance(r, bool) else UNKNOWN
    return part


# ---- the parser ------------------------------------------------------------------------------------------------

class _NotInSubset(Exception):
    pass


def _tokens(source: str) -> list[tuple[str, str]] | None:
    out, pos, end = [], 0, len(source.rstrip())
    while pos < end:
        m = _TOKEN.match(source, pos)
        if m is None or m.end() == pos:
            return None
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self._tokens, self._i = tokens, 0

    def peek(self) -> tuple[str, str] | None:
        return self._tokens[self._i] if self._i < len(self._tokens) else None

    def take(self, text: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (text is not None and tok[1] != text):
            raise _NotInSubset
        self._i += 1
        return tok

    def _at(self, text: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "op" and tok[1] == text

    def expr(self) -> Fn:
        fn = self.conjunction()
        while self._at("||"):
            self.take()
            fn = _junction(fn, self.conjunction(), True)
        return fn

    def conjunction(self) -> Fn:
        fn = self.relation()
        while self._at("&&"):
            self.take()
            fn = _junction(fn, self.relation(), False)
        return fn

    def relation(self) -> Fn:
        left = self.unary()
        tok = self.peek()
        if tok is not None and tok[0] == "op" and tok[1] in _RELATIONS:
            self.take()
            fn = _relation(tok[1], left, self.unary())
            nxt = self.peek()
            if nxt is not None and nxt[0] == "op" and nxt[1] in _RELATIONS:
                raise _NotInSubset  # `a == b == c`: left to CEL
            return fn
        return left

    def unary(self) -> Fn:
        if self._at("!"):
            self.take()
            return _negation(self.unary())
        return self.primary()

    def primary(self) -> Fn:
        kind, text = self.take()
        if kind == "num":
            value = float(text) if "." in text else int(text)
            if _plain(value) is UNKNOWN:
                raise _NotInSubset
            return _literal(value)
        if kind == "str":
            return _literal(text[1:-1])
        if kind == "op":
            if text != "(":
                raise _NotInSubset
            fn = self.expr()
            self.take(")")
            return fn
        if text in ("true", "false", "null"):
            return _literal({"true": True, "false": False, "null": None}[text])
        if self._at("("):
            return self.call(text)
        if text not in ROOTS:
            raise _NotInSubset
        path = []
        while self._at("."):
            self.take()
            kind, name = self.take()
            if kind != "name" or self._at("("):  # a method call (`x.startsWith(...)`): left to CEL
                raise _NotInSubset
            path.append(name)
        if not path:
            raise _NotInSubset  # a bare variable is only read by the helpers that take one
        return _field(text, tuple(path))

    def call(self, name: str) -> Fn:
        self.take("(")
        if name in ("has_tag", "in_status_group"):
            kind, root = self.take()
            if kind != "name" or root not in ("order", "customer") or not self._at(","):
                raise _NotInSubset
            self.take(",")
            literal = self._string()
            self.take(")")
            return (_has_tag if name == "has_tag" else _in_status_group)(root, literal)
        if name in _CHANGE_HELPERS or name in ("source_is", "source_is_not"):
            literal = self._string()
            self.take(")")
            if name in _CHANGE_HELPERS:
                return _CHANGE_HELPERS[name](literal)
            negate = name == "source_is_not"
            return _returns_bool(lambda s: (s.source == literal) != negate)
        if name in _SINCE:
            arg = self.expr()
            self.take(")")
            return _since(arg, _SINCE[name])
        if name == "size":
            kind, root = self.take()
            if kind != "name" or root not in ROOTS or not self._at("."):
                raise _NotInSubset
            path = []
            while self._at("."):
                self.take()
                kind, field = self.take()
                if kind != "name":
                    raise _NotInSubset
                path.append(field)
            self.take(")")
            return _size(root, tuple(path))
        if name == "contains":
            where = self.expr()
            self.take(",")
            what = self.expr()
            self.take(")")
            return _contains(where, what)
        raise _NotInSubset

    def _string(self) -> str:
        kind, text = self.take()
        if kind != "str":
            raise _NotInSubset
        return text[1:-1]


def _literal(value: Any) -> Fn:
    def fn(s: Scope) -> Any:
        return value
    fn.literal = value  # type: ignore[attr-defined]
    return fn


def _junction(a: Fn, b: Fn, decisive: bool) -> Fn:
    """`a || b` (`decisive` True) or `a && b` (False): `a` alone decides when it gives `decisive`."""
    other = not decisive

    def fn(s: Scope) -> Any:
        x = a(s)
        if x is decisive:
            return decisive
        if x is not other:
            return UNKNOWN
        y = b(s)
        return y if isinstance(y, bool) else UNKNOWN
    return _returns_bool(fn)


def _negation(a: Fn) -> Fn:
    def fn(s: Scope) -> Any:
        x = a(s)
        return (not x) if x is True or x is False else UNKNOWN
    return _returns_bool(fn)


def _raw(s: Scope, root: str, path: tuple[str, ...]) -> Any:
    value = getattr(s, root)
    for name in path:
        if not isinstance(value, Mapping) or name not in value:
            return UNKNOWN  # CEL: no such key, or a field of null / of a non-map: an error it words itself
        value = value[name]
    return value


_SIMPLE = frozenset({str, type(None)})  # values `_plain` gives back as they are (floats: NaN is not)


def _field(root: str, path: tuple[str, ...]) -> Fn:
    if len(path) == 1:
        get, name = operator.attrgetter(root), path[0]

        def one(s: Scope) -> Any:
            record = get(s)
            if type(record) is dict or isinstance(record, Mapping):
                if name in record:
                    value = record[name]
                    return value if type(value) in _SIMPLE else _plain(value)
            return UNKNOWN
        return one

    def fn(s: Scope) -> Any:
        value = _raw(s, root, path)
        return UNKNOWN if value is UNKNOWN else _plain(value)
    return fn


def _size(root: str, path: tuple[str, ...]) -> Fn:
    def fn(s: Scope) -> Any:
        value = _raw(s, root, path)
        if isinstance(value, list | tuple):
            return len(value)
        return UNKNOWN  # a string's size is its UTF-8 bytes in CEL; maps, null, ...: CEL decides
    return fn


def _tags_of(entity: Any, name: str) -> Any:
    """`entity.get(name)` as the helper sees the entity CEL hands it (None when the entity is null or empty)."""
    if entity is None:
        return None
    if not isinstance(entity, Mapping):
        return UNKNOWN
    return entity.get(name)


def _has_tag(root: str, tag: str) -> Fn:
    def fn(s: Scope) -> Any:
        tags = _tags_of(getattr(s, root), "tags")
        if tags is UNKNOWN:
            return UNKNOWN
        if not tags:
            return False
        if isinstance(tags, list | tuple):
            return any(isinstance(t, str) and t == tag for t in tags) or (
                UNKNOWN if any(not isinstance(t, str) for t in tags) else False)
        return UNKNOWN
    return _returns_bool(fn)


def _in_status_group(root: str, group: str) -> Fn:
    def fn(s: Scope) -> Any:
        value = _tags_of(getattr(s, root), "status_group")
        if value is UNKNOWN:
            return UNKNOWN
        return value == group if value is None or isinstance(value, str) else UNKNOWN
    return _returns_bool(fn)


def _change(key: str) -> Callable[[str], Fn]:
    def make(name: str) -> Fn:
        def fn(s: Scope) -> Any:
            changes = s.changes
            if not isinstance(changes, list):
                return UNKNOWN
            for c in changes:
                if not isinstance(c, Mapping) or "field" not in c or key not in c:
                    return UNKNOWN
                if c["field"] == name:
                    return _prim(c[key])  # what the helper returns, as CEL takes it
            return None
        return fn
    return make


def _changed(name: str) -> Fn:
    def fn(s: Scope) -> Any:
        changes = s.changes
        if not isinstance(changes, list):
            return UNKNOWN
        for c in changes:
            if not isinstance(c, Mapping) or "field" not in c:
                return UNKNOWN
            if c["field"] == name:
                return True
        return False
    return _returns_bool(fn)


_CHANGE_HELPERS: dict[str, Callable[[str], Fn]] = {"changed": _changed, "old_value": _change("old"),
                                                   "new_value": _change("new")}
_SINCE = {"days_since": 86400, "hours_since": 3600, "minutes_since": 60}


def _since(arg: Fn, unit: int) -> Fn:
    def fn(s: Scope) -> Any:
        value = arg(s)
        if isinstance(value, datetime):
            t = value
        elif isinstance(value, str) and value:
            try:
                t = datetime.fromisoformat(value)
            except ValueError:
                return UNKNOWN
            t = t if t.tzinfo else t.replace(tzinfo=UTC)
        else:
            return UNKNOWN
        try:
            return _prim(int((s.now - t).total_seconds() // unit))
        except (TypeError, ValueError, OverflowError):
            return UNKNOWN
    return fn


def _contains(where: Fn, what: Fn) -> Fn:
    def fn(s: Scope) -> Any:
        w, x = where(s), what(s)  # CEL evaluates both arguments (an error in either is an error)
        if w is None and isinstance(x, str):
            return False
        if not isinstance(x, str) or not isinstance(w, str):
            return UNKNOWN  # lists come through `_field` as UNKNOWN too: CEL decides
        return x in w
    return _returns_bool(fn)
