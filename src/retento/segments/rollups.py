"""Per-customer order rollups kept current from order events; segments and RFM read these, not raw orders.

A purchase is an order outside the `cancel` status group. One statement rebuilds the rollups of a set of
customers (or of everyone) from their orders, so the incremental and the full path give the same rows.

Category rollups (per customer and item category) are kept from one-order deltas instead: each purchase's
contribution per category is stored (`order_category_facts`); an order event compares the order's stored
contribution with its current one (`plan`, pure), replaces the changed facts, adds the additions to the
customers' category rows, and recomputes from the facts only the rows of customers who lost a contribution
(a cancelled, moved or edited order). Applying the same order twice changes nothing.

Gap histograms: each customer's gaps between consecutive purchase days, counted per length (`customer_gaps`, one
row per customer), are rebuilt with their rollup; the site's histogram (`segment_gap_counts`) takes the
difference, so the lifecycle threshold (the median gap) is read from a few hundred rows instead of a pass over
every order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, String, case, cast, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from retento.core.db.bulk import insert_rows, recordset_insert
from retento.orders.models import Order, OrderItem, Status
from retento.segments.compiler import epoch_day
from retento.segments.models import (
    CustomerCategoryRollup,
    CustomerGap,
    CustomerRollup,
    GapCount,
    OrderCategoryFact,
)

R = CustomerRollup.__table__
O = Order.__table__  # noqa: E741
I = OrderItem.__table__  # noqa: E741
F = OrderCategoryFact.__table__
CR = CustomerCategoryRollup.__table__
G = CustomerGap.__table__
GC = GapCount.__table__
FACT_COLUMNS = ("order_id", "category", "customer_id", "site_id", "amount", "at")
CATEGORY_COLUMNS = ("customer_id", "category", "site_id", "orders_count", "amount", "first_order_at", "last_order_at")
CHUNK = 900  # ids per IN list (SQLite's parameter limit)
COLUMNS = ("customer_id", "site_id", "orders_count", "orders_total", "purchase_days", "first_day_total",
           "first_order_at", "last_order_at")


def upsert(session: Session, table: Any, rows: Sequence[dict[str, Any]], *, conflict: str, pg_set: str,
           other: Any) -> None:
    """INSERT the rows (all with the same keys), a row whose key `conflict` exists updating it instead: on
    PostgreSQL one statement (the rows as one JSON array, `recordset_insert`; `pg_set` the SET list, reading
    `excluded`), where an executemany costs a round of the protocol and an executor start per row; elsewhere
    the executemany of `other` (the same upsert in Core). The rows' keys must be distinct (one statement may
    not update a row twice)."""
    if not rows:
        return
    made = recordset_insert(session.get_bind().dialect, table, rows) \
        if session.get_bind().dialect.name == "postgresql" else None
    if made is None:
        session.execute(other, list(rows))
        return
    session.connection().exec_driver_sql(f"{made[0]} ON CONFLICT ({conflict}) DO UPDATE SET {pg_set}", (made[1],))


def _purchases() -> list[Any]:
    st = Status.__table__
    return [O.c.customer_id.is_not(None), O.c.status.in_(select(st.c.code).where(st.c.group_code != "cancel"))]


def rollup_select(customer_ids: Sequence[int] | Select | None = None, *, site_id: int | None = None,
                  before: datetime | None = None) -> Select:
    """The rollup rows (columns named as in the table) from the orders; `before`: only orders created earlier."""
    conds = _purchases()
    if customer_ids is not None:
        conds.append(O.c.customer_id.in_(customer_ids if isinstance(customer_ids, Select) else list(customer_ids)))
    if site_id is not None:
        conds.append(O.c.site_id == site_id)
    if before is not None:
        conds.append(O.c.created_at < before)
    p = select(O.c.customer_id, O.c.site_id, O.c.total, O.c.created_at,
               epoch_day(O.c.created_at).label("day")).where(*conds).cte("purchases")
    first = select(p.c.customer_id, func.min(p.c.day).label("first_day")).group_by(p.c.customer_id).cte("first")
    return (
        select(
            p.c.customer_id, func.min(p.c.site_id).label("site_id"), func.count().label("orders_count"),
            func.sum(p.c.total).label("orders_total"), func.count(p.c.day.distinct()).label("purchase_days"),
            func.sum(case((p.c.day == first.c.first_day, p.c.total), else_=0)).label("first_day_total"),
            func.min(p.c.created_at).label("first_order_at"), func.max(p.c.created_at).label("last_order_at"),
        )
        .select_from(p.join(first, first.c.customer_id == p.c.customer_id))
        .group_by(p.c.customer_id)
    )


def refresh(session: Session, *, customer_ids: Sequence[int] | Select | None = None,
            site_id: int | None = None) -> int:
    """Rebuild the rollups of these customers (a list or a SELECT of ids; all of the site or everyone: None).
    A rebuild of a site or of everyone rebuilds the category rollups too (a scope's are kept by `apply_orders`)."""
    if customer_ids is not None and not isinstance(customer_ids, Select) and not customer_ids:
        return 0
    stmt = delete(R)
    if customer_ids is not None:
        stmt = stmt.where(R.c.customer_id.in_(
            customer_ids if isinstance(customer_ids, Select) else list(customer_ids)))
    if site_id is not None:
        stmt = stmt.where(R.c.site_id == site_id)
    session.execute(stmt)
    result = session.execute(insert(R).from_select(COLUMNS, rollup_select(customer_ids, site_id=site_id)),
                             execution_options={"preserve_rowcount": True})
    if customer_ids is None:
        refresh_categories(session, site_id=site_id)
        refresh_gaps(session, site_id=site_id)
    else:
        _refresh_gaps_of(session, customer_ids)
    return result.rowcount


# --- gap histograms -----------------------------------------------------------------------------------------

def gaps_select(customer_ids: Sequence[int] | Select | None = None, *, site_id: int | None = None,
                before: datetime | None = None) -> Select:
    """(customer_id, site_id, gap, n): how many of each customer's gaps between consecutive purchase days are
    `gap` days long, from the orders; `before`: only orders created earlier."""
    conds = _purchases()
    if customer_ids is not None:
        conds.append(O.c.customer_id.in_(customer_ids if isinstance(customer_ids, Select) else list(customer_ids)))
    if site_id is not None:
        conds.append(O.c.site_id == site_id)
    if before is not None:
        conds.append(O.c.created_at < before)
    day = epoch_day(O.c.created_at)
    days = (select(O.c.customer_id, func.min(O.c.site_id).label("site_id"), day.label("day"))
            .where(*conds).group_by(O.c.customer_id, day).subquery("days"))
    lagged = select(days.c.customer_id, days.c.site_id, (days.c.day - func.lag(days.c.day).over(
        partition_by=days.c.customer_id, order_by=days.c.day)).label("gap")).subquery("lagged")
    return (select(lagged.c.customer_id, func.min(lagged.c.site_id).label("site_id"), lagged.c.gap,
                   func.count().label("n"))
            .where(lagged.c.gap.is_not(None)).group_by(lagged.c.customer_id, lagged.c.gap))


def gap_lists_select(customer_ids: Sequence[int] | Select | None = None, *, site_id: int | None = None) -> Select:
    """(customer_id, site_id, gaps): each customer's gap counts in one text, `gap:n` items joined by commas (in no
    particular order; `gap_counts` reads it), from the orders."""
    g = gaps_select(customer_ids, site_id=site_id).subquery()
    item = cast(g.c.gap, String) + ":" + cast(g.c.n, String)
    return (select(g.c.customer_id, func.min(g.c.site_id), func.aggregate_strings(item, ","))
            .group_by(g.c.customer_id))


GAP_COLUMNS = ("customer_id", "site_id", "gaps")


def gap_counts(text: str) -> dict[int, int]:
    """Pure: a `customer_gaps.gaps` text as {gap in days: how many}."""
    return {int(g): int(n) for g, n in (item.split(":") for item in text.split(",") if item)}


def refresh_gaps(session: Session, *, site_id: int | None = None) -> None:
    """Rebuild every customer's gaps and the site's histogram from the orders (of a site, or everyone)."""
    for table in (G, GC):
        session.execute(delete(table) if site_id is None else delete(table).where(table.c.site_id == site_id))
    session.execute(insert(G).from_select(GAP_COLUMNS, gap_lists_select(site_id=site_id)))
    # the histogram summed from the rows just written (streamed), not from a second pass over every order
    stored = select(G.c.site_id, G.c.gaps).where(*([] if site_id is None else [G.c.site_id == site_id]))
    counts = histogram_change((), session.execute(stored, execution_options={"yield_per": 10_000}))
    insert_rows(session, GC, [{"site_id": site, "gap": gap, "n": n} for (site, gap), n in counts.items()])


def histogram_change(old: Iterable[tuple[int, str]], new: Iterable[tuple[int, str]]) -> dict[tuple[int, int], int]:
    """Pure: the sites' histogram deltas ((site, gap) -> change of n) from some customers' stored gap rows
    (site, gaps text) and the rows rebuilt from their orders; only the changes that are not zero, in (site, gap)
    order."""
    out: dict[tuple[int, int], int] = {}
    for rows, sign in ((old, -1), (new, 1)):
        for site, text in rows:
            for gap, n in gap_counts(text).items():
                out[(site, gap)] = out.get((site, gap), 0) + sign * n
    return {k: d for k, d in sorted(out.items()) if d}


def _refresh_gaps_of(session: Session, customer_ids: Sequence[int] | Select) -> None:
    """These customers' gap rows (one each) rebuilt from their orders: the old rows come back from the DELETE
    that drops them and the new from the INSERT that writes them, and the sites' histograms move by the
    difference (rows taken in (site, gap) order, so two workers never wait on each other in a cycle)."""
    ids = customer_ids if isinstance(customer_ids, Select) else list(customer_ids)
    old = session.execute(delete(G).where(G.c.customer_id.in_(ids)).returning(G.c.site_id, G.c.gaps)).all()
    new = session.execute(insert(G).from_select(GAP_COLUMNS, gap_lists_select(customer_ids))
                          .returning(G.c.site_id, G.c.gaps)).all()
    deltas = [{"site_id": k[0], "gap": k[1], "n": d} for k, d in histogram_change(old, new).items()]
    if not deltas:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(GC)
    upsert(session, GC, deltas, conflict="site_id, gap", pg_set=f"n = {GC.name}.n + excluded.n",
           other=stmt.on_conflict_do_update(index_elements=["site_id", "gap"], set_={"n": GC.c.n + stmt.excluded.n}))
    session.execute(delete(GC).where(GC.c.n == 0, GC.c.site_id.in_(sorted({d["site_id"] for d in deltas}))))


def gap_histogram(session: Session, *, site_id: int) -> list[tuple[int, int]]:
    """The site's kept histogram: (gap in days, how many) pairs."""
    return [(int(g), int(n)) for g, n in session.execute(select(GC.c.gap, GC.c.n).where(GC.c.site_id == site_id))]


# --- category rollups ---------------------------------------------------------------------------------------

def facts_select(order_ids: Sequence[int] | None = None, *, site_id: int | None = None) -> Select:
    """Each purchase's amount per item category (rows of `order_category_facts`), of these orders or all."""
    conds = [*_purchases(), I.c.category.is_not(None)]
    if order_ids is not None:
        conds.append(O.c.id.in_(list(order_ids)))
    if site_id is not None:
        conds.append(O.c.site_id == site_id)
    return (select(O.c.id, I.c.category, func.min(O.c.customer_id), func.min(O.c.site_id),
                   func.sum(I.c.price * I.c.quantity - I.c.discount), func.min(O.c.created_at))
            .select_from(O.join(I, I.c.order_id == O.c.id)).where(*conds).group_by(O.c.id, I.c.category))


def category_select(*conds: Any) -> Select:
    """Category rollup rows from the facts."""
    return (select(F.c.customer_id, F.c.category, func.min(F.c.site_id), func.count(), func.sum(F.c.amount),
                   func.min(F.c.at), func.max(F.c.at))
            .where(*conds).group_by(F.c.customer_id, F.c.category))


def refresh_categories(session: Session, *, site_id: int | None = None) -> None:
    """Rebuild the facts and the category rollups from the orders (of a site, or everyone)."""
    for table in (F, CR):
        session.execute(delete(table) if site_id is None else delete(table).where(table.c.site_id == site_id))
    session.execute(insert(F).from_select(FACT_COLUMNS, facts_select(site_id=site_id)))
    session.execute(insert(CR).from_select(CATEGORY_COLUMNS, category_select(
        *([] if site_id is None else [F.c.site_id == site_id]))))


Key = tuple[int, str]  # order id, category
Fact = tuple[int, int, Decimal, datetime]  # customer id, site id, amount, at


@dataclass
class Plan:
    """What an order batch does to the category rollups."""

    orders: set[int] = field(default_factory=set)  # orders whose facts are replaced
    facts: list[dict[str, Any]] = field(default_factory=list)  # their new facts
    exact: set[int] = field(default_factory=set)  # customers whose category rows are recomputed from the facts
    deltas: list[dict[str, Any]] = field(default_factory=list)  # additions to other customers' category rows


def plan(old: dict[Key, Fact], new: dict[Key, Fact]) -> Plan:
    """Pure: from the stored facts of some orders (`old`) and their current ones (`new`), the changes. A fact
    that is gone or changed makes its customer's rows exact; a new fact of any other customer is a delta."""
    p = Plan()
    gone = [k for k, v in old.items() if new.get(k) != v]
    added = [k for k, v in new.items() if old.get(k) != v]
    p.orders = {k[0] for k in (*gone, *added)}
    p.facts = [_fact_row(k, v) for k, v in sorted(new.items()) if k[0] in p.orders]
    p.exact = {old[k][0] for k in gone}
    sums: dict[tuple[int, str], dict[str, Any]] = {}
    for k in added:
        customer_id, site_id, amount, at = new[k]
        if customer_id in p.exact:
            continue
        row = sums.setdefault((customer_id, k[1]), {
            "customer_id": customer_id, "category": k[1], "site_id": site_id, "orders_count": 0,
            "amount": Decimal(0), "first_order_at": at, "last_order_at": at})
        row["orders_count"] += 1
        row["amount"] += amount
        row["first_order_at"], row["last_order_at"] = min(row["first_order_at"], at), max(row["last_order_at"], at)
    p.deltas = [sums[k] for k in sorted(sums)]
    return p


def _fact_row(key: Key, fact: Fact) -> dict[str, Any]:
    return dict(zip(FACT_COLUMNS, (*key, *fact), strict=True))


def _cents(x: Any) -> Decimal:
    return Decimal(str(x)).quantize(Decimal("0.01"))


def _facts(session: Session, stmt: Select) -> dict[Key, Fact]:
    return {(r[0], r[1]): (r[2], r[3], _cents(r[4]), r[5]) for r in session.execute(stmt)}


def apply_orders(session: Session, order_ids: Iterable[int]) -> int:
    """Bring the category rollups up to date with these orders (one-order deltas). Returns the orders changed."""
    ids = sorted({i for i in order_ids if i is not None})
    changed = 0
    for lo in range(0, len(ids), CHUNK):
        chunk = ids[lo:lo + CHUNK]
        p = plan(_facts(session, select(*(F.c[c] for c in FACT_COLUMNS)).where(F.c.order_id.in_(chunk))),
                 _facts(session, facts_select(chunk)))
        _store(session, p)
        changed += len(p.orders)
    return changed


def _store(session: Session, p: Plan) -> None:
    if p.orders:
        session.execute(delete(F).where(F.c.order_id.in_(sorted(p.orders))))
    insert_rows(session, F, p.facts)
    if p.exact:
        exact = sorted(p.exact)
        session.execute(delete(CR).where(CR.c.customer_id.in_(exact)))
        session.execute(insert(CR).from_select(CATEGORY_COLUMNS, category_select(F.c.customer_id.in_(exact))))
    if p.deltas:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(CR)
        new = stmt.excluded
        upsert(session, CR, p.deltas, conflict="customer_id, category", pg_set=_ADD_DELTA, other=(
            stmt.on_conflict_do_update(index_elements=["customer_id", "category"], set_={
                "orders_count": CR.c.orders_count + new.orders_count, "amount": CR.c.amount + new.amount,
                "first_order_at": case((new.first_order_at < CR.c.first_order_at, new.first_order_at),
                                       else_=CR.c.first_order_at),
                "last_order_at": case((new.last_order_at > CR.c.last_order_at, new.last_order_at),
                                      else_=CR.c.last_order_at)})))


# a delta added to a customer's category row on PostgreSQL (the same as the Core upsert above)
_ADD_DELTA = (f"orders_count = {CR.name}.orders_count + excluded.orders_count, amount = {CR.name}.amount + "
              f"excluded.amount, first_order_at = LEAST({CR.name}.first_order_at, excluded.first_order_at), "
              f"last_order_at = GREATEST({CR.name}.last_order_at, excluded.last_order_at)")
