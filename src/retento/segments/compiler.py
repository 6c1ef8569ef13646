"""Rule tree -> SQLAlchemy Core: one SELECT of customer ids that runs on SQLite and PostgreSQL.

Leaves over order aggregates read the per-customer rollups (`customer_rollups`), not raw orders; a category
reads the per-customer-and-category rollups, or with a window the per-order category facts; only a status
group asks for order rows. Every leaf is NULL-safe (true or false, never
NULL) so `not` is exact. Other domains add leaf types with `register`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Float, Integer, Select, and_, func, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.util import find_tables

from retento.core.bus import Event
from retento.core.registry import Registry
from retento.customers import labels
from retento.customers.models import Consent, Customer, CustomerInterest, CustomerTag
from retento.orders.models import Order, OrderItem, Status
from retento.segments import rules
from retento.segments.models import CustomerCategoryRollup, CustomerRollup, OrderCategoryFact, RfmScore

C = Customer.__table__
R = CustomerRollup.__table__
O = Order.__table__  # noqa: E741
CR = CustomerCategoryRollup.__table__
F = OrderCategoryFact.__table__


class epoch_day(FunctionElement):  # noqa: N801 - reads as a SQL function
    """Whole days since 1970-01-01 of a UTC timestamp column (an integer on both databases)."""

    type = Integer()
    inherit_cache = True


@compiles(epoch_day, "sqlite")
def _epoch_day_sqlite(element: epoch_day, compiler: Any, **kw: Any) -> str:
    (col,) = list(element.clauses)
    return f"(CAST(strftime('%s', substr({compiler.process(col, **kw)}, 1, 10)) AS INTEGER) / 86400)"


@compiles(epoch_day, "postgresql")
def _epoch_day_pg(element: epoch_day, compiler: Any, **kw: Any) -> str:
    (col,) = list(element.clauses)
    return f"((({compiler.process(col, **kw)}) AT TIME ZONE 'UTC')::date - DATE '1970-01-01')"


class json_number(FunctionElement):  # noqa: N801
    """A custom field's value as a number, NULL when it is absent or not a number."""

    type = Float()
    inherit_cache = True


@compiles(json_number, "sqlite")
def _json_number_sqlite(element: json_number, compiler: Any, **kw: Any) -> str:
    col, key = (compiler.process(c, **kw) for c in element.clauses)
    path = f"'$.' || json_quote({key})"
    return f"(CASE WHEN json_type({col}, {path}) IN ('integer', 'real') THEN json_extract({col}, {path}) END)"


@compiles(json_number, "postgresql")
def _json_number_pg(element: json_number, compiler: Any, **kw: Any) -> str:
    col, key = (compiler.process(c, **kw) for c in element.clauses)
    return (f"(CASE WHEN jsonb_typeof(({col})::jsonb -> ({key})::text) = 'number' "
            f"THEN (({col})::jsonb ->> ({key})::text)::float8 END)")


class json_contains(FunctionElement):  # noqa: N801
    """`column @> document` on PostgreSQL, which a GIN index (`customers.custom_fields`, `customers.labels`)
    answers; true on SQLite. Used only where another spelling says the same on SQLite (`on_postgresql`)."""

    type = Boolean()
    inherit_cache = True


@compiles(json_contains, "postgresql")
def _json_contains_pg(element: json_contains, compiler: Any, **kw: Any) -> str:
    col, doc = (compiler.process(c, **kw) for c in element.clauses)
    return f"(({col})::jsonb @> ({doc})::jsonb)"


@compiles(json_contains)
def _json_contains_other(element: json_contains, compiler: Any, **kw: Any) -> str:
    return "1 = 1"


class on_postgresql(FunctionElement):  # noqa: N801
    """`pg` on PostgreSQL, `other` elsewhere: two spellings of one condition (the PostgreSQL one answered by an
    index there). Each leaf that uses it has tests on both databases."""

    type = Boolean()
    inherit_cache = True


@compiles(on_postgresql, "postgresql")
def _on_postgresql_pg(element: on_postgresql, compiler: Any, **kw: Any) -> str:
    pg, _other = element.clauses
    return f"({compiler.process(pg, **kw)})"  # whole under NOT / AND: the spelling may be a list of conditions


@compiles(on_postgresql)
def _on_postgresql_other(element: on_postgresql, compiler: Any, **kw: Any) -> str:
    _pg, other = element.clauses
    return f"({compiler.process(other, **kw)})"


def has_labels(*wanted: str) -> ColumnElement[bool]:
    """`customers.labels @> [wanted...]` (the customer has every one of these labels; customers.labels)."""
    return json_contains(C.c.labels, json.dumps(sorted(wanted)))


@dataclass
class Context:
    site_id: int
    now: datetime
    types: rules.RuleTypes  # the application's leaf types (App.parts.segment_rules)
    threshold_days: float = 75.0
    uses_rollups: bool = field(default=False)
    scope: Any = None  # a SELECT of customer ids: only these are evaluated (the incremental path)

    def within(self, customer_id: Any) -> list[ColumnElement[bool]]:
        """Conditions that keep a subquery to the scope, so it reads only the affected customers' rows."""
        return [] if self.scope is None else [customer_id.in_(self.scope)]


Compile = Callable[[Any, Context], ColumnElement[bool]]


NoRollup = Callable[[Any], "bool | None"]  # a leaf's value for a customer without orders (None: it depends)


@dataclass(frozen=True)
class LeafType:
    """A kind of rule leaf, as the application registers it (`App.parts.segment_rules`): its parameters, whether
    membership can change with time alone, its SQL, and (`no_rollup`) its value for a customer without purchases
    when that is known (lets the query inner-join the rollups)."""

    name: str
    params: type[rules.Params]
    compile: Compile
    time_dependent: Callable[[Any], bool] = lambda _p: False
    no_rollup: NoRollup = lambda _p: None

    def __post_init__(self) -> None:
        if self.name in ("all", "any", "not"):
            raise ValueError(f"{self.name!r} is a rule tree's own key, not a leaf type")


def compile_node(node: rules.Node, ctx: Context) -> ColumnElement[bool]:
    if isinstance(node, rules.All):
        return and_(*(compile_node(c, ctx) for c in node.children))
    if isinstance(node, rules.AnyOf):
        return or_(*(compile_node(c, ctx) for c in node.children))
    if isinstance(node, rules.Not):
        return not_(compile_node(node.child, ctx))
    return ctx.types[node.type].compile(node.params, ctx)


def without_orders(node: rules.Node, types: rules.RuleTypes) -> bool | None:
    """The tree's value for a customer who has no rollup row (no purchases), in three-valued logic: None when
    it depends on something else. False means only customers with a rollup can match."""
    if isinstance(node, rules.All | rules.AnyOf):
        values = [without_orders(c, types) for c in node.children]
        decisive = isinstance(node, rules.AnyOf)  # any True decides `any`; any False decides `all`
        if decisive in values:
            return decisive
        return None if None in values else not decisive
    if isinstance(node, rules.Not):
        value = without_orders(node.child, types)
        return None if value is None else not value
    return types[node.type].no_rollup(node.params)


def members_query(node: rules.Node | None, ctx: Context, *, scope: Select | None = None) -> Select:
    """SELECT id FROM customers of the site that match `node` (all of them for None), within `scope`.

    The rollups are joined only when a leaf reads them, and inner-joined when customers without purchases
    cannot match, so the database starts from the (fewer, narrower) rollup rows. When, besides, every leaf reads
    only the rollups, the customers table is left out: a rollup's site is its customer's (an order's customer is
    always of the order's site)."""
    ctx.scope = scope
    cond = compile_node(node, ctx) if node is not None else true()
    inner = ctx.uses_rollups and node is not None and without_orders(node, ctx.types) is False
    if inner and set(find_tables(cond, check_columns=True)) <= {R}:
        q = select(R.c.customer_id.label("id")).where(R.c.site_id == ctx.site_id, cond)
        return q if ctx.scope is None else q.where(R.c.customer_id.in_(ctx.scope))
    source: Any = C
    if ctx.uses_rollups:
        source = C.join(R, R.c.customer_id == C.c.id) if inner else C.outerjoin(R, R.c.customer_id == C.c.id)
    q = select(C.c.id).select_from(source).where(C.c.site_id == ctx.site_id, cond)
    if ctx.scope is not None:
        q = q.where(C.c.id.in_(ctx.scope))
    return q


# --- comparisons ----------------------------------------------------------------------------------------

def compare(col: Any, op: str, value: Any) -> ColumnElement[bool]:
    """col <op> value, false (not NULL) where col is NULL."""
    raw = {
        "eq": lambda: col == value, "ne": lambda: col != value, "gt": lambda: col > value,
        "gte": lambda: col >= value, "lt": lambda: col < value, "lte": lambda: col <= value,
        "between": lambda: col.between(value[0], value[1]),
        "in": lambda: col.in_(value), "not_in": lambda: col.not_in(value),
    }[op]()
    return and_(col.is_not(None), raw)


def holds(op: str, value: Any, x: Any) -> bool:
    """The same comparison in Python (for "does zero satisfy it")."""
    return {
        "eq": lambda: x == value, "ne": lambda: x != value, "gt": lambda: x > value, "gte": lambda: x >= value,
        "lt": lambda: x < value, "lte": lambda: x <= value, "between": lambda: value[0] <= x <= value[1],
    }[op]()


def _start(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=timezone.utc)


def compare_day(col: Any, op: str, value: Any) -> ColumnElement[bool]:
    """A timestamp column against calendar days (UTC): eq means "on that day"."""
    if op == "between":
        lo, hi = value
        return and_(col.is_not(None), col >= _start(lo), col < _start(hi + timedelta(days=1)))
    day, nxt = _start(value), _start(value + timedelta(days=1))
    return and_(col.is_not(None), {
        "eq": and_(col >= day, col < nxt), "ne": or_(col < day, col >= nxt), "gt": col >= nxt,
        "gte": col >= day, "lt": col < day, "lte": col < nxt,
    }[op])


def compare_days_ago(col: Any, op: str, value: Any, now: datetime) -> ColumnElement[bool]:
    """How many days ago `col` was, against a number of days: gt 90 means "more than 90 days ago"."""
    if op == "between":
        return and_(col.is_not(None), col >= now - timedelta(days=value[1]), col <= now - timedelta(days=value[0]))
    at = now - timedelta(days=value)
    return and_(col.is_not(None), {"gt": col < at, "gte": col <= at, "lt": col > at, "lte": col >= at}[op])


# --- built-in leaves --------------------------------------------------------------------------------------

def _customer(p: rules.CustomerRule, ctx: Context) -> ColumnElement[bool]:
    col = C.c[p.field]
    kind = rules.field_kind(p.field)
    if p.op == "is_set":
        return and_(col.is_not(None), col != "") if kind == "string" else col.is_not(None)
    if p.op == "is_not_set":
        return or_(col.is_(None), col == "") if kind == "string" else col.is_(None)
    if p.op == "contains":
        return and_(col.is_not(None), col.icontains(p.value, autoescape=True))
    if p.op == "starts_with":
        return and_(col.is_not(None), col.istartswith(p.value, autoescape=True))
    if p.op in ("within_days", "older_than_days"):
        return compare_days_ago(col, "lte" if p.op == "within_days" else "gt", p.value, ctx.now)
    value = p.value
    if kind == "date":
        value = rules.days(value)
    return compare(col, p.op, value)


def _plain_string(value: Any) -> bool:
    """A string that `custom_fields ->> name` returns only for a JSON string of that text: not the text of a
    number, true / false / null, an array or an object (for those `@>` with the string would miss a match)."""
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return True
    return False


def custom_field_prefilter(p: rules.CustomFieldRule) -> ColumnElement[bool] | None:
    """For `eq` / `in` of plain strings: containment of {name: value} (any of the values), the same customers as
    the exact text comparison (only a JSON string of that text gives it under `->>`; an array or object holding
    it does not contain it), for the GIN index on PostgreSQL. None for other rules (numbers compare as float8,
    which containment's exact numeric equality could miss; booleans and JSON-looking strings match other
    kinds)."""
    values = p.value if p.op == "in" else [p.value] if p.op == "eq" else None
    if not values or not all(_plain_string(v) for v in values):
        return None
    return or_(*(json_contains(C.c.custom_fields, json.dumps({p.name: v})) for v in values))


def _custom_field(p: rules.CustomFieldRule, _ctx: Context) -> ColumnElement[bool]:
    """On PostgreSQL an `eq` / `in` of plain strings is the containment alone: the planner estimates it from the
    column's statistics, where the exact comparison beside it (a selectivity it cannot know) made the estimate
    hundreds of times too small (a nested loop over the rollups for 200,000 Moscow customers at 1,000,000)."""
    exact = custom_field_exact(p)
    prefilter = custom_field_prefilter(p)
    return exact if prefilter is None else on_postgresql(prefilter, exact)


def custom_field_exact(p: rules.CustomFieldRule) -> ColumnElement[bool]:
    """The rule's meaning: the field's text (`->>`), or its number when every value is one."""
    text = C.c.custom_fields[p.name].as_string()
    numeric = json_number(C.c.custom_fields, p.name)
    if p.op == "is_set":
        return text.is_not(None)
    if p.op == "is_not_set":
        return text.is_(None)
    if p.op == "contains":
        return and_(text.is_not(None), text.icontains(str(p.value), autoescape=True))
    values = p.value if isinstance(p.value, list) else [p.value]
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return compare(numeric, p.op, p.value)
    return compare(text, p.op, [str(v) for v in p.value] if isinstance(p.value, list) else str(p.value))


def _labels(table: Any, column: str, kind: str) -> Compile:
    """Tags or interests: on PostgreSQL containment in `customers.labels` (its GIN index answers it: the database
    reads only the labelled customers), elsewhere semi-joins with the label table; the same members."""
    def fn(p: rules.LabelRule, ctx: Context) -> ColumnElement[bool]:
        mode, values = p.mode_values
        wanted = [labels.label(kind, v) for v in dict.fromkeys(values)]
        col = table.c[column]
        having = select(table.c.customer_id).where(col.in_(values), *ctx.within(table.c.customer_id))
        if mode == "all":
            return on_postgresql(has_labels(*wanted), C.c.id.in_(
                having.group_by(table.c.customer_id).having(func.count(col.distinct()) == len(set(values)))))
        some = on_postgresql(or_(*(has_labels(w) for w in wanted)), C.c.id.in_(having))
        return some if mode == "any" else not_(some)
    return fn


def _entry_point(p: rules.EntryPointRule, _ctx: Context) -> ColumnElement[bool]:
    return compare(C.c.entry_point, "in", p.in_)


def _consent(p: rules.ConsentRule, ctx: Context) -> ColumnElement[bool]:
    t = Consent.__table__
    granted = select(t.c.customer_id).where(t.c.channel == p.channel, t.c.granted.is_(True),
                                            *ctx.within(t.c.customer_id))
    has = on_postgresql(has_labels(labels.label("consent", p.channel)), C.c.id.in_(granted))
    return has if p.granted else not_(has)


def _orders(p: rules.OrdersRule, ctx: Context) -> ColumnElement[bool]:
    if p.filtered:
        return _orders_filtered(p, ctx)
    ctx.uses_rollups = True
    if p.metric in ("first_order_date", "last_order_date"):
        col = R.c.first_order_at if p.metric.startswith("first") else R.c.last_order_at
        return compare_day(col, p.op, p.value)
    if p.metric.endswith("days_ago"):
        col = R.c.first_order_at if p.metric.startswith("first") else R.c.last_order_at
        return compare_days_ago(col, p.op, p.value, ctx.now)
    col = {
        "count": func.coalesce(R.c.orders_count, 0),
        "sum": func.coalesce(R.c.orders_total, 0),
        "average": R.c.orders_total / func.nullif(R.c.orders_count, 0),
    }[p.metric]
    return compare(col, p.op, p.value)


def _at_least_one(p: rules.OrdersRule) -> bool:
    return p.metric == "count" and (p.op, p.value) in (("gte", 1), ("gt", 0))


def _category(p: rules.OrdersRule, ctx: Context) -> ColumnElement[bool]:
    """A category's purchases from the category rollups (all time, or "at least one within N days" as the last
    one within N days), else from the per-order category facts in the window."""
    assert p.category is not None
    cutoff = None if p.within_days is None else ctx.now - timedelta(days=p.within_days)
    rows = [CR.c.site_id == ctx.site_id, CR.c.category == p.category, *ctx.within(CR.c.customer_id)]
    if _at_least_one(p):
        return C.c.id.in_(select(CR.c.customer_id).where(*rows, *([] if cutoff is None
                                                                   else [CR.c.last_order_at >= cutoff])))
    if cutoff is None:
        matching = select(CR.c.customer_id).where(*rows)
        count, amount = CR.c.orders_count, CR.c.amount
        agg = {"count": count, "sum": amount, "average": amount / func.nullif(count, 0)}[p.metric]
        expr = C.c.id.in_(matching.where(compare(agg, p.op, p.value)))
    else:
        matching = select(F.c.customer_id).where(F.c.site_id == ctx.site_id, F.c.category == p.category,
                                                 F.c.at >= cutoff, *ctx.within(F.c.customer_id))
        count, amount = func.count(), func.sum(F.c.amount)
        agg = {"count": count, "sum": amount, "average": amount / func.nullif(count, 0)}[p.metric]
        expr = C.c.id.in_(matching.group_by(F.c.customer_id).having(compare(agg, p.op, p.value)))
    if p.metric != "average" and holds(p.op, p.value, 0):  # customers without such purchases have 0
        expr = or_(expr, C.c.id.not_in(matching))
    return expr


def _orders_filtered(p: rules.OrdersRule, ctx: Context) -> ColumnElement[bool]:
    if p.category is not None and p.status_group is None:
        return _category(p, ctx)
    st = Status.__table__
    groups = select(st.c.code).where(st.c.group_code == p.status_group if p.status_group
                                     else st.c.group_code != "cancel")
    conds = [O.c.customer_id.is_not(None), O.c.site_id == ctx.site_id, O.c.status.in_(groups),
             *ctx.within(O.c.customer_id)]
    if p.within_days is not None:
        conds.append(O.c.created_at >= ctx.now - timedelta(days=p.within_days))
    source: Any = O
    count, amount = func.count(O.c.id), func.sum(O.c.total)
    if p.category is not None:
        it = OrderItem.__table__
        source = O.join(it, it.c.order_id == O.c.id)
        conds.append(it.c.category == p.category)
        count, amount = func.count(O.c.id.distinct()), func.sum(it.c.price * it.c.quantity - it.c.discount)
    agg = {"count": count, "sum": amount, "average": amount / func.nullif(count, 0)}[p.metric]
    matching = select(O.c.customer_id).select_from(source).where(*conds)
    if _at_least_one(p):
        return C.c.id.in_(matching)  # "at least one such order": no grouping needed
    expr = C.c.id.in_(matching.group_by(O.c.customer_id).having(compare(agg, p.op, p.value)))
    if p.metric != "average" and holds(p.op, p.value, 0):  # customers without such orders have 0
        expr = or_(expr, C.c.id.not_in(select(O.c.customer_id).select_from(source).where(*conds)))
    return expr


def _event(p: rules.EventRule, ctx: Context) -> ColumnElement[bool]:
    e = Event.__table__
    conds = [e.c.customer_id.is_not(None), e.c.type == p.type, *ctx.within(e.c.customer_id)]
    if p.name is not None:
        conds.append(e.c.name == p.name)
    if p.within_days is not None:
        conds.append(e.c.occurred_at >= ctx.now - timedelta(days=p.within_days))
    q = select(e.c.customer_id).where(*conds)
    if p.min_count > 1:
        q = q.group_by(e.c.customer_id).having(func.count() >= p.min_count)
    return C.c.id.in_(q) if p.did else C.c.id.not_in(q)


def _rfm(p: rules.RfmRule, ctx: Context) -> ColumnElement[bool]:
    t = RfmScore.__table__
    conds = [t.c.site_id == ctx.site_id, *ctx.within(t.c.customer_id)]
    if p.cell:
        conds.append(t.c.cell.in_(p.cell))
    for name in ("r", "f", "m"):
        if (scores := getattr(p, name)) is not None:
            conds.append(t.c[name].in_(scores))
    return C.c.id.in_(select(t.c.customer_id).where(*conds))


def _lifecycle(p: rules.LifecycleRule, ctx: Context) -> ColumnElement[bool]:
    """The customer's current state (none: no purchase; sleeping: the last one more than the threshold ago;
    active: recent and on two or more days; new: recent, one day) as range conditions on the rollup columns;
    NULL-safe, since a rollup row's columns are never NULL."""
    ctx.uses_rollups = True
    cutoff = ctx.now - timedelta(days=ctx.threshold_days)
    has, recent = R.c.customer_id.is_not(None), R.c.last_order_at > cutoff
    states = {
        "none": R.c.customer_id.is_(None),
        "sleeping": and_(has, R.c.last_order_at <= cutoff),
        "active": and_(has, recent, R.c.purchase_days > 1),
        "new": and_(has, recent, R.c.purchase_days <= 1),
    }
    return or_(*(states[state] for state in dict.fromkeys(p.state)))


def _orders_without(p: rules.OrdersRule) -> bool | None:
    if p.filtered:
        return None  # reads order rows, not the rollup
    if p.metric in ("count", "sum") and p.op in ("eq", "ne", "gt", "gte", "lt", "lte", "between"):
        return holds(p.op, p.value, 0)
    return False if p.metric not in ("count", "sum") else None  # NULL average or date: never true


BUILT_IN = (
    LeafType("customer", rules.CustomerRule, _customer, lambda p: p.op in ("within_days", "older_than_days")),
    LeafType("custom_field", rules.CustomFieldRule, _custom_field),
    LeafType("tags", rules.LabelRule, _labels(CustomerTag.__table__, "tag", "tag")),
    LeafType("interests", rules.LabelRule, _labels(CustomerInterest.__table__, "interest", "interest")),
    LeafType("entry_point", rules.EntryPointRule, _entry_point),
    LeafType("consent", rules.ConsentRule, _consent),
    LeafType("orders", rules.OrdersRule, _orders,
             lambda p: p.within_days is not None or p.metric.endswith("days_ago"), no_rollup=_orders_without),
    LeafType("event", rules.EventRule, _event, lambda p: p.within_days is not None),
    LeafType("rfm", rules.RfmRule, _rfm),
    LeafType("lifecycle", rules.LifecycleRule, _lifecycle, lambda p: True, no_rollup=lambda p: "none" in p.state),
)  # registered in `bootstrap.assemble`


def builtin_types() -> rules.RuleTypes:
    """A registry of the built-in leaf types only (pure tests, tools without an App)."""
    types: rules.RuleTypes = Registry("segment rule type")
    types.extend(BUILT_IN)
    return types
