"""The accrual of a batch of completed orders computed in SQL: one `INSERT ... SELECT` of the `accrual` operations
and one of their lots per program, over the batch's events, members, orders and lines, with the program's rule
(`rules.earned`: the level's or the program's percent, per category overrides and fixed points per unit, fixed
points per order, the limited-time multipliers) written as SQL for the batch.

What this writes is what `runs.accrue` (and so `service.sync_order`) writes for the same events, to the cent and
the character: the points are computed in exact integers (cents, thousandths of a unit, the percents and
multipliers scaled to whole numbers) and truncated as `ledger.points` truncates. An order is left to the Python
path (`runs.accrue`) whenever that could differ: a program with a birthday multiplier or more than
`MAX_WINDOWS` limited-time multipliers over the batch's times, an order-level discount spread over several lines
(`rules.paid_lines` divides there), a sum or an intermediate value too large for exact 64-bit integers (and for
`Decimal`'s 28 digits), a stored value not on its column's scale, or an event time not in the stored form. The
caller hands every event this did not accrue to the Python path, which decides it as before."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

import orjson
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from retento.core.db.types import Amount
from retento.loyalty import rules, service
from retento.loyalty.models import Account, Program
from retento.loyalty.schemas import Kind, ProgramSettings

MAX_WINDOWS = 3  # limited-time multipliers over one batch's times the SQL takes (their product's scale grows)
LINE_LIMIT = 10**13  # a line's or an order's sum, in 1e-5 of the currency: below 1e8 (products stay in 28 digits)
TERM_LIMIT = 2**50  # a line's points term: thousands of lines still sum within 64 bits
TOTAL_LIMIT = 2**62  # the order's points times the multipliers, before the division to cents
POISON = "1e30"  # a line's sum or term outside the range: no sum of lines in range brings it back into range


class Accrued(NamedTuple):
    """An accrual made in this batch: the event's id and time, the account and its program, and where it came
    from (None: this module; or the `runs.Due` of the Python path), for the context of a level change."""

    event_id: int
    account_id: int
    program_id: int
    at: datetime
    origin: Any


class Key(NamedTuple):
    """What the set-based accrual reads of an order event (the bus's rows are slow to read by attribute)."""

    id: int
    site_id: int
    customer_id: int
    order_id: int
    at: datetime


def keys(events: Sequence[Any]) -> list[Key]:
    """`Key` of each event: read by position from the bus's rows (a row's attribute costs ~1 µs)."""
    if not events:
        return []
    fields = getattr(events[0], "_fields", None)
    names = ("id", "site_id", "customer_id", "order_id", "occurred_at")
    get = itemgetter(*map(fields.index, names)) if fields is not None else attrgetter(*names)
    return list(map(Key._make, map(get, events)))


def _scale(values: Sequence[Decimal]) -> int:
    """The decimal places the largest-scaled of `values` needs."""
    return max((max(0, -v.normalize().as_tuple().exponent) for v in values), default=0)  # type: ignore[operator]


def _int(value: Decimal, places: int) -> int:
    out = value.scaleb(places)
    assert out == out.to_integral_value()
    return int(out)


class _Sql:
    """Placeholders and the few expressions that differ between SQLite and PostgreSQL."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"
        self.params: dict[str, Any] = {}

    def p(self, name: str, value: Any) -> str:
        if isinstance(value, datetime) and not self.pg:  # as the UTCDateTime column type stores it
            value = value.astimezone(timezone.utc).isoformat(" ", "microseconds")[:-6]
        self.params[name] = value
        return f"%({name})s" if self.pg else f":{name}"

    def t(self, name: str, value: str) -> str:
        """A text parameter where nothing else gives PostgreSQL its type (a JSON value, a CASE's result)."""
        return f"CAST({self.p(name, value)} AS text)" if self.pg else self.p(name, value)

    def in_list(self, name: str, values: Sequence[Any], cast: str) -> str:
        if self.pg:
            return f"= ANY(CAST({self.p(name, list(values))} AS {cast}[]))"
        return f"IN (SELECT value FROM json_each({self.p(name, orjson.dumps(list(values)).decode())}))"

    def whole(self, expr: str, scale: int) -> str:
        """A stored amount as a whole number of 10^-scale (exact: numeric on PostgreSQL, the REAL's nearest
        integer on SQLite, which `_on_scale` checks is the stored decimal's)."""
        return f"round({expr} * {10**scale})" if self.pg else f"CAST(round({expr} * {10**scale}) AS INTEGER)"

    def on_scale(self, expr: str, scale: int) -> str:
        """SQLite: the REAL is a decimal of the column's scale (far from a rounding tie), as the Amount type
        writes it; PostgreSQL's numeric is exact."""
        if self.pg:
            return "TRUE"
        return f"(abs({expr}) < 1e12 AND abs({expr} * {10**scale} - round({expr} * {10**scale})) < 0.25)"

    def exact(self, expr: str, limit: int) -> str:
        """`expr` is an integer below `limit` (SQLite turns an overflowing integer into a REAL)."""
        bound = f"abs({expr}) < {limit}"
        return bound if self.pg else f"(typeof({expr}) = 'integer' AND {bound})"

    def num(self, n: int) -> str:
        """An integer literal that multiplies with others past 32 bits (PostgreSQL types literals as integer)."""
        return f"CAST({n} AS numeric)" if self.pg else str(n)

    def div(self, a: str, b: int) -> str:
        return f"div({a}, {b})" if self.pg else f"({a} / {b})"

    def money(self, c: str) -> str:
        return f"({c} * 0.01)" if self.pg else f"({c} / 100.0)"

    def plus_days(self, at: str, days: int, name: str) -> str:
        """`at` plus `days` days. SQLite (a time in the stored form): the date of the batch's first and last day
        as parameters `<name>0` / `<name>1` for those days (`DAYS`: one `date()` a row cost ~0.4 µs), else
        `date()`; the time of day as it is."""
        if self.pg:  # seconds, not days: a day of the session's time zone may have 23 or 25 hours
            return f"({at} + interval '{days * 86400} seconds')"
        return (f"(CASE substr({at}, 1, 10) WHEN :{DAYS[0]} THEN :{name}0 WHEN :{DAYS[1]} THEN :{name}1 "
                f"ELSE date(substr({at}, 1, 10), '+{days} days') END || substr({at}, 11))")

    def canonical(self, at: str) -> str:
        """SQLite: a time in the stored form (`YYYY-MM-DD HH:MM:SS.ffffff`) the Python path would write back."""
        if self.pg:
            return "TRUE"
        digits = "[0-9]"
        return (f"{at} GLOB '{digits * 4}-{digits * 2}-{digits * 2} {digits * 2}:{digits * 2}:{digits * 2}."
                f"{digits * 6}'")

    def details(self, cents: str, percent: str, level: str, names: str, at: str) -> str:
        """An accrual's details as `json_dumps` writes them (the same text: these keys in this order, no spaces);
        `percent`, `level` and `names` are JSON already. SQLite: one printf, cheaper than a chain of `||`."""
        if self.pg:
            u = f"({at} AT TIME ZONE 'UTC')"  # `datetime.isoformat()` of the UTC time
            iso = (f"to_char({u}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN to_char({u}, 'US') = '000000' "
                   f"THEN '' ELSE '.' || to_char({u}, 'US') END || '+00:00'")
            order_sum = f"CAST(div({cents}, 100) AS text) || '.' || lpad(CAST(mod({cents}, 100) AS text), 2, '0')"
            return (f"""'{{"order_sum":"' || {order_sum} || '","percent":' || {percent} || ',"level":' || {level}"""
                    f"""|| ',"multipliers":' || {names} || ',"at":"' || {iso} || '"}}'""")
        return (f"""printf('{{"order_sum":"%d.%02d","percent":%s,"level":%s,"multipliers":%s,"at":"%sT%s%s+00:00"}}', """
                f"{cents} / 100, {cents} % 100, {percent}, {level}, {names}, substr({at}, 1, 10), substr({at}, 12, 8), "
                f"CASE WHEN substr({at}, 21, 6) = '000000' THEN '' ELSE substr({at}, 20, 7) END)")

    def key(self, event_id: str) -> str:
        """The accrual's idempotency key, `event:<id>:accrual`."""
        if self.pg:
            return f"'event:' || CAST({event_id} AS text) || ':accrual'"
        return f"printf('event:%d:accrual', {event_id})"

    def event_of(self, key: str) -> str:
        """The event id of an accrual's idempotency key (`key`)."""
        if self.pg:
            return f"CAST(substr({key}, 7, length({key}) - 14) AS bigint)"
        return f"CAST(substr({key}, 7, length({key}) - 14) AS INTEGER)"

    def json(self, text: str) -> str:
        return f"CAST({text} AS jsonb)" if self.pg else text


def _case(sql: _Sql, subject: str, cases: Sequence[tuple[Any, Any]], default: str, name: str) -> str:
    if not cases:
        return default
    whens = " ".join(f"WHEN {sql.p(f'{name}_k{n}', k)} THEN {v}" for n, (k, v) in enumerate(cases))
    return f"(CASE {subject} {whens} ELSE {default} END)"


def _operations_sql(sql: _Sql, settings: ProgramSettings, windows: Sequence[Any]) -> str:
    """The `INSERT ... SELECT` of the accrual operations of one program's events (`RETURNING` id, account, key).

    Units: a line's sum `s` (price x quantity - discount) in 1e-5 of the currency; a percent in 10^-kp; the
    points' terms in 10^-e (e = 5 + kp + 2: a sum times a percent, over 100); each multiplier in 10^-km. A line
    outside the exact range counts as POISON, which puts its order's sums out of range (and makes them a REAL on
    SQLite): the order is left to Python."""
    percents = [settings.percent, *(lv.percent for lv in settings.levels),
                *(r.percent for r in settings.categories.values() if r.percent is not None)]
    kp = _scale(percents)
    e = 5 + kp + 2
    km = _scale([w.multiplier for w in windows])
    divisor = 10 ** (e + km * len(windows) - 2)  # to cents
    fixed = {c: _int(r.fixed_per_unit, 2) for c, r in settings.categories.items() if r.fixed_per_unit is not None}
    by_percent = [(c, _int(r.percent, kp)) for c, r in settings.categories.items() if r.percent is not None]
    # a line's sum below `bound` (in the currency) keeps its terms below TERM_LIMIT and its products with the
    # order's sum within Decimal's 28 digits; a fixed-points line's quantity below `units` keeps its term there
    top = max([_int(p, kp) for p in percents] + [1])
    bound = min(LINE_LIMIT // 10**5, TERM_LIMIT // (10**5 * top)) // 2
    units = min(10**6, TERM_LIMIT // (max([*fixed.values(), 1]) * 10 ** (kp + 2 + 3))) // 2
    price, qty, disc = "it.price", "it.quantity", "coalesce(it.discount, 0)"
    line = (f"(CASE WHEN abs({price} * {qty}) + abs({disc}) < {bound} AND abs({qty}) < {units} "
            f"AND {sql.on_scale(price, 2)} AND {sql.on_scale(qty, 3)} AND {sql.on_scale(disc, 2)} "
            f"THEN {sql.whole(price, 2)} * {sql.whole(qty, 3)} - {sql.whole(disc, 2)} * 1000 ELSE {POISON} END)")
    level_pct = _case(sql, "a.level", [(lv.code, _int(lv.percent, kp)) for lv in settings.levels],
                      str(_int(settings.percent, kp)), "lp")
    lines = "FROM order_items it WHERE it.order_id = o.id"
    if settings.categories:  # per line: the category's percent or fixed points, else the level's percent
        # No outer column (the member's level) inside an aggregate of these correlated subqueries: SQLite 3.40
        # then drops rows of the outer query. The lines at the level's percent are summed alone, and the sum
        # multiplied outside (the same integers); the categories as parameters, no `json_each` in them either.
        cat = "coalesce(it.category, '')"
        cat_pct = _case(sql, cat, by_percent, "-1", "cp")  # -1: the level's percent
        fixed_in = ", ".join(sql.p(f"fc{n}", c) for n, c in enumerate(fixed))
        by_percent_in = ", ".join(sql.p(f"pc{n}", c) for n, (c, _) in enumerate(by_percent))
        not_fixed = f"{cat} NOT IN ({fixed_in})" if fixed else "TRUE"
        at_level = f"{not_fixed} AND {cat} NOT IN ({by_percent_in})" if by_percent else not_fixed
        fx = (f"(CASE WHEN {sql.on_scale(qty, 3)} AND abs({qty}) < {units} THEN "
              f"{_case(sql, cat, list(fixed.items()), '0', 'fx')} * {sql.whole(qty, 3)} ELSE {POISON} END)")
        sums = ((f"(SELECT SUM({line} * {cat_pct}) {lines} AND {cat} IN ({by_percent_in})) AS pc, " if by_percent
                 else "0 AS pc, ")
                + f"(SELECT SUM({line}) {lines} AND {at_level}) AS pl, {level_pct} AS lpct, "
                + f"(SELECT MAX({cat_pct}) {lines} AND {not_fixed}) AS pm, "  # of the one line, when one
                + (f"(SELECT SUM({fx}) {lines} AND NOT ({not_fixed})) * {10 ** (kp + 2)} AS fxs" if fixed else
                   "0 AS fxs"))
        exact_sums = (f"AND (pc IS NULL OR {sql.exact('pc', TOTAL_LIMIT)}) "
                      f"AND (pl IS NULL OR {sql.exact('pl', LINE_LIMIT)}) "
                      f"AND (fxs IS NULL OR {sql.exact('fxs', TOTAL_LIMIT)})")
        p_, fxs_ = "coalesce(pc, 0) + lpct * coalesce(pl, 0)", "coalesce(fxs, 0)"
        pmax = "(CASE WHEN pm IS NULL THEN NULL WHEN pm < 0 THEN lpct ELSE pm END)"
    else:  # one percent per order
        sums, exact_sums, p_, fxs_, pmax = f"{level_pct} AS lpct", "", "gross * lpct", "0", "lpct"
    factor = "(" + " * ".join(
        f"(CASE WHEN at >= {sql.p(f'ws{n}', w.starts_at)} AND at < {sql.p(f'we{n}', w.ends_at)} "
        f"THEN {sql.num(_int(w.multiplier, km))} ELSE {sql.num(10**km)} END)" for n, w in enumerate(windows)) + ")" \
        if windows else "1"
    names = "'[]'"
    if windows:
        parts = " || ".join(
            f"(CASE WHEN at >= {sql.p(f'ws{n}', w.starts_at)} AND at < {sql.p(f'we{n}', w.ends_at)} "
            f"THEN {sql.t(f'wn{n}', orjson.dumps(w.name).decode() + ',')} ELSE '' END)"
            for n, w in enumerate(windows))
        names = f"('[' || rtrim({parts}, ',') || ']')"
    # the details as `json_dumps` writes them (the same text: keys in this order, no spaces)
    level_json = _case(sql, "level", [(lv.code, sql.t(f"lj{n}", orjson.dumps(lv.code).decode()))
                                      for n, lv in enumerate(settings.levels)], "'null'", "lk")
    percent_json = _case(sql, "level", [(lv.code, sql.t(f"pj{n}", orjson.dumps(str(lv.percent)).decode()))
                                        for n, lv in enumerate(settings.levels)],
                         sql.t("pj", orjson.dumps(str(settings.percent)).decode()), "lt")
    details = sql.details(sql.div("paid", 1000), percent_json, level_json, names, "at")
    fo = _int(settings.fixed_per_order, 2) * 10 ** (e - 2)
    paid = "(CASE WHEN gross <= 0 OR gross - dtu <= 0 THEN 0 ELSE gross - dtu END)"
    total = (f"(CASE WHEN gross <= 0 THEN 0 WHEN dtu = 0 THEN {p_} ELSE {paid} * coalesce({pmax}, 0) END + {fxs_} "
             f"+ CASE WHEN {paid} > 0 THEN {fo} ELSE 0 END)")
    points = sql.div("x", divisor)
    # `m` materialized: each order's sums read once (a correlated subquery runs again wherever its value is used).
    # PostgreSQL: each event's order by its key (LIMIT: not pulled up into a join), else the planner may hash the
    # whole orders table against the batch on every batch
    orders = ("JOIN LATERAL (SELECT o.id, o.customer_id, o.status, o.discount_total FROM orders o "
              "WHERE o.id = e.order_id LIMIT 1) o ON TRUE") if sql.pg else "JOIN orders o ON o.id = e.order_id"
    return f"""
WITH m AS MATERIALIZED (
  SELECT e.id AS event_id, e.order_id, e.occurred_at AS at, e.source, e.actor_type, e.actor_id,
         a.id AS account_id, a.site_id, a.level, {sql.whole("o.discount_total", 2)} * 1000 AS dtu,
         {sql.on_scale("o.discount_total", 2)} AS dok, (SELECT SUM({line}) {lines}) AS gross, {sums}
  FROM events e
  JOIN loyalty_accounts a ON a.customer_id = e.customer_id AND a.program_id = {sql.p("program", 0)}
  {orders}
  WHERE e.id {sql.in_list("ids", [], "bigint")} AND e.site_id = {sql.p("site", 0)} AND a.status = 'active'
    AND o.customer_id = a.customer_id
    AND o.status IN (SELECT st.code FROM statuses st WHERE st.active AND st.group_code = 'complete')
    AND {sql.canonical("e.occurred_at")}
    AND NOT EXISTS (SELECT 1 FROM loyalty_operations x WHERE x.order_id = e.order_id AND x.account_id = a.id)
), y AS (
  SELECT m.*, {paid} AS paid, {total} * {factor} AS x
  FROM m
  WHERE dok AND {sql.exact("gross", LINE_LIMIT)} AND {sql.exact("dtu", LINE_LIMIT)} {exact_sums}
    AND (dtu = 0 OR {sql.exact(f"{paid} * coalesce({pmax}, 0)", TERM_LIMIT)})
    AND (dtu = 0 OR (SELECT COUNT(*) FROM order_items it WHERE it.order_id = m.order_id) = 1)
)
INSERT INTO loyalty_operations (account_id, site_id, kind, amount, purchase, order_id, reason, details,
                                idempotency_key, source, actor_type, actor_id, created_at)
SELECT account_id, site_id, '{Kind.ACCRUAL.value}', {sql.money(points)}, {sql.money(sql.div("paid", 1000))},
       order_id, NULL, {sql.json(details)}, {sql.key("event_id")}, source, actor_type,
       actor_id, at
FROM y
WHERE {sql.exact("x", TOTAL_LIMIT)} AND {points} > 0
ORDER BY event_id
RETURNING id, account_id, {sql.event_of("idempotency_key")}"""


@lru_cache(maxsize=64)
def _statements(dialect: str, settings_json: str, windows: tuple[int, ...]) -> tuple[str, dict[str, Any], str]:
    """The operations' statement of a program's settings with its fixed parameters, and the lots' statement
    (cached: a program's settings and the multipliers that hold change rarely)."""
    settings = _settings(settings_json)
    sql = _Sql(dialect)
    ops = _operations_sql(sql, settings, [settings.multipliers[i] for i in windows])
    return ops, sql.params, _lots_sql(_Sql(dialect), settings)


DAYS = ("day0", "day1")  # the lots' statement on SQLite: the batch's first and last day (`_days`)


def _days(settings: ProgramSettings, first: datetime, last: datetime) -> dict[str, str]:
    """SQLite: the lots' dates of the batch's first and last day (UTC, as stored), as `rules.lot_times` dates
    them, for `_lots_sql`."""
    out = {}
    for n, at in enumerate((first, last)):
        day = at.astimezone(timezone.utc).date()
        active = day + timedelta(days=settings.activation_days or 0)
        out[DAYS[n]] = day.isoformat()
        out[f"active{n}"] = active.isoformat()
        out[f"expires{n}"] = (active + timedelta(days=settings.expiry_days or 0)).isoformat()
    return out


def _lots_sql(sql: _Sql, settings: ProgramSettings) -> str:
    """The lots of the operations just written, as `rules.lot_times` dates them."""
    activation = settings.activation_days
    active = sql.plus_days("created_at", activation, "active") if activation else "created_at"
    expires = (sql.plus_days("created_at", activation + settings.expiry_days, "expires") if settings.expiry_days
               else "NULL")
    # SQLite: the one statement that wrote the operations, holding the database's write lock, gave them
    # consecutive ids; PostgreSQL's sequence may interleave other writers' ids
    ids = f"id {sql.in_list('ids', [], 'bigint')}" if sql.pg else "id BETWEEN :first AND :last"
    return (f"INSERT INTO loyalty_lots (account_id, site_id, operation_id, order_id, amount, active_from, "
            f"expires_at, created_at) SELECT account_id, site_id, id, order_id, amount, {active}, {expires}, "
            f"created_at FROM loyalty_operations WHERE {ids} ORDER BY id")


@lru_cache(maxsize=64)
def _settings(settings_json: str) -> ProgramSettings:
    """`service.settings_of`, once per program's settings (every batch reads them, twice)."""
    return ProgramSettings.model_validate_json(settings_json)


def takes(settings: ProgramSettings) -> bool:
    """Whether the program's rule can be computed in SQL at all (the birthday multiplier needs each member's
    birthday and the calendar: the Python path)."""
    return settings.birthday_multiplier == 1


def windows_of(settings: ProgramSettings, first: datetime, last: datetime) -> tuple[int, ...] | None:
    """The limited-time multipliers that hold at some time in [first, last]; None if more than SQL takes."""
    out = tuple(n for n, w in enumerate(settings.multipliers) if w.starts_at <= last and w.ends_at > first)
    return out if len(out) <= MAX_WINDOWS else None


def _values(dialect: str, values: list[Any]) -> Any:
    return values if dialect == "postgresql" else orjson.dumps(values).decode()


class Prog(NamedTuple):
    """What a batch reads of a program (its settings as a text `_settings` takes, the key of its statements)."""

    id: int
    site_id: int
    active: bool
    settings: str


_P = Program.__table__
_PROGRAMS = select(_P.c.id, _P.c.site_id, _P.c.active, _P.c.settings).where(
    _P.c.site_id.in_(bindparam("sites", expanding=True)))  # built once; plain rows, no ORM objects


def programs_of(session: Session, sites: set[int]) -> list[Prog]:
    """The programs of `sites`, for `accrue` and `review`."""
    return [Prog(i, site, active, orjson.dumps(settings, option=orjson.OPT_SORT_KEYS).decode())
            for i, site, active, settings in session.execute(_PROGRAMS, {"sites": list(sites)})]


def accrue(session: Session, events: Sequence[Key], programs: Sequence[Prog] | None = None) -> list[Accrued]:
    """The accruals of `events` (order events of members, no two of one member: the caller counts; on
    PostgreSQL their accounts locked) that SQL decides, written: per active program of their sites (`programs`
    when given: `programs_of` them), one insert of operations and one of lots. Returns them in event order;
    every other event is left to `runs.accrue`."""
    if not events:
        return []
    session.flush()  # the statements below go to the connection, past the session
    conn = session.connection()
    dialect = conn.dialect.name
    sites = {k.site_id for k in events}
    if programs is None:
        programs = programs_of(session, sites)
    out: list[Accrued] = []
    for program in programs:
        program_id, site_id = program.id, program.site_id
        if site_id not in sites or not program.active:
            continue
        settings_json = program.settings
        settings = _settings(settings_json)
        mine = events if len(sites) == 1 else [k for k in events if k.site_id == site_id]
        if not takes(settings):
            continue
        times = list(map(itemgetter(4), mine))
        windows = windows_of(settings, min(times), max(times))
        if windows is None:
            continue
        ops_sql, fixed, lots_sql = _statements(dialect, settings_json, windows)
        made = conn.exec_driver_sql(ops_sql, {**fixed, "program": program_id, "site": site_id,
                                              "ids": _values(dialect, list(map(itemgetter(0), mine)))}).all()
        if not made:
            continue
        op_ids = sorted(map(itemgetter(0), made))
        if dialect == "postgresql":
            conn.exec_driver_sql(lots_sql, {"ids": op_ids})
        else:
            assert op_ids[-1] - op_ids[0] == len(op_ids) - 1
            conn.exec_driver_sql(lots_sql, {"first": op_ids[0], "last": op_ids[-1],
                                            **_days(settings, min(times), max(times))})
        at = dict(zip(map(itemgetter(0), mine), times, strict=True)).__getitem__
        out += [Accrued(event_id, account_id, program_id, at(event_id), None) for _, account_id, event_id in made]
    out.sort(key=itemgetter(0))  # (the order of `RETURNING` is not the statement's)
    return out


def review(session: Session, accrued: Sequence[Accrued], ctx_of: Callable[[Accrued], Any],
           programs: Sequence[Prog] = ()) -> None:
    """Levels of the members that just earned (`accrued`, in event order), from their purchases over each
    program's period up to its latest accrual's time, as `rules.level_for` decides: one query per program gives
    back the members whose level may change (the others keep theirs); those that move get `service.change_level`
    (and its event), with their accrual's context (`ctx_of`) and time."""
    for program_id in {a.program_id for a in accrued}:
        settings_json = next((p.settings for p in programs if p.id == program_id), None)
        if settings_json is None:
            program = session.get(Program, program_id)
            assert program is not None
            settings_json = orjson.dumps(program.settings, option=orjson.OPT_SORT_KEYS).decode()
        settings = _settings(settings_json)
        mine = [a for a in accrued if a.program_id == program_id]
        if not settings.levels or not mine:
            continue
        now = max(a.at for a in mine)
        moving = _may_move(session, settings, mine, now - timedelta(days=settings.level_period_days))
        for a in mine:
            if a.account_id not in moving:
                continue
            level, total = moving[a.account_id]
            reached = rules.level_for(settings.levels, PURCHASES.process_result_value(total, session.get_bind().dialect)
                                      or Decimal(0))
            if (reached.code if reached else None) != level:
                account = session.get(Account, a.account_id)
                assert account is not None
                service.change_level(session, account=account, settings=settings,
                                     new=reached.code if reached else None, ctx=ctx_of(a), now=a.at)


PURCHASES = Amount()  # a sum of purchases as the ledger's column type reads it (to the cent)


def _may_move(session: Session, settings: ProgramSettings, accrued: Sequence[Accrued],
              since: datetime) -> dict[int, tuple[str | None, Any]]:
    """Account id -> (level, purchases since `since`) of the accounts whose level by those purchases may not be
    the one they have: the level SQL finds differs, or the sum is within a cent of a threshold (SQLite sums
    REALs, which the column type reads to the cent: the caller decides these exactly)."""
    session.flush()  # the account's level as changed so far (the query goes to the connection)
    conn = session.connection()
    sql = _Sql(conn.dialect.name)
    total = "coalesce(total, 0)"
    reached = "NULL"
    near = []
    for n, lv in enumerate(settings.levels):  # the highest level reached wins, as in `rules.level_for`
        threshold = sql.p(f"t{n}", lv.threshold if sql.pg else float(lv.threshold))
        reached = f"CASE WHEN {total} >= {threshold} THEN {sql.t(f'c{n}', lv.code)} ELSE {reached} END"
        near.append(f"abs({total} - {threshold}) < 0.01")
    ids = [a.account_id for a in accrued]
    # the sums in a materialized CTE: read once, whatever the number of thresholds compared with them
    text = (f"WITH s AS MATERIALIZED (SELECT a.id, a.level, (SELECT SUM(x.purchase) FROM loyalty_operations x "
            f"WHERE x.account_id = a.id AND x.created_at >= {sql.p('since', since)}) AS total FROM loyalty_accounts a "
            f"WHERE a.id {sql.in_list('ids', ids, 'bigint')}) "
            f"SELECT id, level, {total} FROM s WHERE ({reached}) {'IS DISTINCT FROM' if sql.pg else 'IS NOT'} level "
            f"OR {' OR '.join(near)}")
    return {i: (level, total) for i, level, total in conn.exec_driver_sql(text, sql.params).all()}
