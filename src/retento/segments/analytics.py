"""RFM scores (set-based, from the rollups), LTV predictions, the lifecycle threshold, cohort reports and
marketing initiatives: loading and storing around the pure code in rfm.py, ltv.py and cohorts.py."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    Table,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from retento.core.db.types import UTCDateTime
from retento.core.errors import DomainError, NotFound
from retento.core.money import round_money
from retento.segments import cohort_query, cohorts, ltv, rfm, rollups, service
from retento.segments.compiler import epoch_day
from retento.segments.models import CustomerRollup, Initiative, RfmScore, SegmentSettings
from retento.segments.schemas import InitiativeIn, RfmConfig, SegmentCreate
from retento.sites.models import Site
from retento.sites.service import get_site

R = CustomerRollup.__table__
S = RfmScore.__table__
EPOCH = date(1970, 1, 1)


def rfm_config(session: Session, site_id: int, *, now: datetime) -> RfmConfig:
    return RfmConfig.model_validate(service.settings_row(session, site_id, now=now).rfm or {})


def set_rfm_config(session: Session, *, site: str, raw: dict[str, Any], now: datetime) -> RfmConfig:
    try:
        config = RfmConfig.model_validate(raw)
    except ValidationError as exc:
        raise DomainError(DomainError.from_pydantic(exc).errors, status=422) from None
    row = service.settings_row(session, get_site(session, site).id, now=now)
    row.rfm, row.updated_at = config.model_dump(mode="json"), now
    return config


def rfm_values(source: Any, observation_day: int) -> Any:
    """BTYD values per customer from rollup rows (the table, or `rollups.rollup_select` as of a date), in whole
    days and cents (exact on both databases)."""
    freq = source.c.purchase_days - 1
    repeat_cents = cast(func.round((source.c.orders_total - source.c.first_day_total) * 100), BigInteger)
    first, last = epoch_day(source.c.first_order_at), epoch_day(source.c.last_order_at)
    return select(
        source.c.customer_id, source.c.site_id, freq.label("frequency"), (last - first).label("recency"),
        (literal(observation_day, Integer) - first).label("age"),
        (literal(observation_day, Integer) - last).label("gap"),
        case((freq > 0, (2 * repeat_cents + freq) // (2 * freq)), else_=0).label("mc"),
    ).subquery("v")


def _score(col: Any, cuts: list[int], *, recency: bool) -> Any:
    above = sum((case((col > c, 1), else_=0) for c in cuts), literal(0, Integer))
    return (rfm.SCORES - above) if recency else (1 + above)


def _day_end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


def check_as_of(as_of: date | None, *, now: datetime) -> None:
    if as_of is not None and as_of > now.date():
        raise DomainError.one("as_of", f"{as_of.isoformat()} is after today ({now.date().isoformat()})")


BUYERS = Table("rfm_values", MetaData(), Column("customer_id", BigInteger, primary_key=True),
               *(Column(c, BigInteger if c == "mc" else Integer, nullable=False)
                 for c in ("site_id", "frequency", "recency", "age", "gap", "mc")),
               prefixes=["TEMPORARY"])  # each buyer's values, computed once per run
SCORED = ("site_id", "frequency", "recency", "age", "monetary", "r", "f", "m", "cell")


def _score_into(session: Session, table: Any, *, site_id: int, config: RfmConfig, observation: date,
                source: Any, now: datetime) -> dict[str, list[int]]:
    """Values, scores and cells of every buyer of the site into `table` (rfm_scores or a scratch copy), set-based:
    the values go into a temporary table once; the cut points are read from it (the rows at the quintile ranks);
    then one UPDATE ... FROM writes the rows whose values, scores or cell changed, one INSERT ... SELECT the new
    buyers and one DELETE the rows of customers who are no longer buyers. A recompute with nothing changed
    writes nothing. When a customer's row changes, the site's predictions (from a fit on the old values) are
    cleared: they are the last `--ltv` run's."""
    conn = session.connection()
    BUYERS.drop(conn, checkfirst=True)
    BUYERS.create(conn)
    try:
        v = rfm_values(source, (observation - EPOCH).days)
        session.execute(insert(BUYERS).from_select(
            ["customer_id", "site_id", "frequency", "recency", "age", "gap", "mc"],
            select(v.c.customer_id, v.c.site_id, v.c.frequency, v.c.recency, v.c.age, v.c.gap, v.c.mc)))
        n = session.scalar(select(func.count()).select_from(BUYERS))
        if conn.dialect.name == "postgresql":
            session.execute(text(f"ANALYZE {BUYERS.name}"))
        configured = rfm.configured_cuts(config)
        cuts = {dim: configured[dim] if configured[dim] is not None else _cuts(session, BUYERS.c[col], n)
                for dim, col in (("recency", "gap"), ("frequency", "frequency"), ("monetary", "mc"))}
        changed = _merge(session, table, _scored(cuts, config), site_id=site_id, now=now)
        if changed:
            session.execute(update(table).where(table.c.site_id == site_id,
                                                table.c.expected_purchases.is_not(None) | table.c.ltv.is_not(None))
                            .values(expected_purchases=None, ltv=None))
    finally:
        BUYERS.drop(conn, checkfirst=True)
    return cuts


def _cuts(session: Session, col: Any, n: int) -> list[int]:
    """rfm.cut_points of a column of the values table, read by the database: only the rows at the ranks."""
    ranks = rfm.cut_ranks(n)
    ranked = select(col.label("x"), func.row_number().over(order_by=col).label("rn")).subquery()
    at = dict(session.execute(select(ranked.c.rn, ranked.c.x).where(ranked.c.rn.in_(sorted(set(ranks))))).all())
    return [int(at[k]) for k in ranks]


def _scored(cuts: dict[str, list[int]], config: RfmConfig) -> Any:
    """The values table's rows with their scores and cell (the cell looked up by r * 10 + f)."""
    t = BUYERS
    r = _score(t.c.gap, cuts["recency"], recency=True)
    f = _score(t.c.frequency, cuts["frequency"], recency=False)
    cells = {10 * ri + fi: rfm.cell_of(ri, fi, config.cells) for ri in range(1, rfm.SCORES + 1)
             for fi in range(1, rfm.SCORES + 1)}
    return select(t.c.customer_id, t.c.site_id, t.c.frequency, t.c.recency, t.c.age,
                  (t.c.mc / literal_column("100.0")).label("monetary"), r.label("r"), f.label("f"),
                  _score(t.c.mc, cuts["monetary"], recency=False).label("m"),
                  case(cells, value=10 * r + f, else_="other").label("cell")).subquery("n")


def _merge(session: Session, table: Any, new: Any, *, site_id: int, now: datetime) -> int:
    """`table`'s rows of the site made equal to `new` (one row per buyer), writing only what differs; returns
    how many rows were written or deleted."""
    at = literal(now, UTCDateTime())
    differs = or_(*(table.c[c] != new.c[c] for c in SCORED))
    updated = session.execute(update(table).where(table.c.customer_id == new.c.customer_id, differs)
                              .values({**{c: new.c[c] for c in SCORED}, "computed_at": at})).rowcount
    cols = ["customer_id", *SCORED, "computed_at"]
    # the new buyers: rows whose key is taken are skipped by the unique index, not by an anti-join with the
    # table being written (planned against an empty table, that was a nested loop re-reading the growing heap
    # for every row: O(n^2), a first run at 1,000,000 buyers that never finished)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    added = session.execute(dialect.insert(table).from_select(cols, select(*(new.c[c] for c in cols[:-1]), at).where(
        new.c.customer_id.is_not(None))).on_conflict_do_nothing(index_elements=["customer_id"]),
        execution_options=service.COUNTED).rowcount
    gone = session.execute(delete(table).where(table.c.site_id == site_id, ~exists().where(
        BUYERS.c.customer_id == table.c.customer_id))).rowcount
    return updated + added + gone


def compute_rfm(session: Session, *, site_id: int, now: datetime) -> dict[str, Any]:
    """Recompute every customer's RFM values, scores and cell for a site; returns the cuts and the cell table."""
    config = rfm_config(session, site_id, now=now)
    cuts = _score_into(session, S, site_id=site_id, config=config, observation=now.date(),
                       source=R.select().where(R.c.site_id == site_id).subquery("r"), now=now)
    before = service.threshold_days(session, site_id)
    update_threshold(session, site_id=site_id, now=now)
    affected = service.segments_using(session, site_id, "rfm")
    if service.threshold_days(session, site_id) != before:
        affected += service.segments_using(session, site_id, "lifecycle")
    service.recompute_site(session, site_id=site_id, now=now, only=affected)
    service.settings_row(session, site_id, now=now).rfm_computed_at = now
    return {"cuts": cuts, "cells": cell_table(session, site_id=site_id)}


def rfm_report(session: Session, *, site_id: int, now: datetime, as_of: date | None = None, ltv: bool = False,
               customers: bool = False) -> dict[str, Any]:
    """The RFM run of `retento rfm` and the API: scores (and with `ltv` the fitted predictions) and the cell table.

    Without `as_of` the scores are stored (segments read them). With `as_of` everything is computed from the
    orders created up to the end of that UTC day, observed at that day (lifetimes' `observation_period_end`),
    in a temporary table: nothing is stored. `customers`: also every customer's row."""
    check_as_of(as_of, now=now)
    if as_of is None:
        out = compute_rfm(session, site_id=site_id, now=now)
        return _finish(session, out, S, site_id=site_id, now=now, as_of=None, ltv=ltv, customers=customers)
    config = rfm_config(session, site_id, now=now)
    scratch = Table("rfm_as_of", MetaData(), *(c._copy() for c in S.c), prefixes=["TEMPORARY"])
    conn = session.connection()
    scratch.drop(conn, checkfirst=True)
    scratch.create(conn)
    try:
        source = rollups.rollup_select(site_id=site_id, before=_day_end(as_of)).subquery("r")
        out = {"cuts": _score_into(session, scratch, site_id=site_id, config=config, observation=as_of,
                                   source=source, now=now)}
        out = _finish(session, out, scratch, site_id=site_id, now=now, as_of=as_of, ltv=ltv, customers=customers)
    except DomainError:
        scratch.drop(conn)
        raise
    scratch.drop(conn)  # (a database error rolls the transaction back, and the table with it on PostgreSQL;
    return out          # on SQLite the next run drops a leftover: checkfirst above)


def _finish(session: Session, out: dict[str, Any], table: Any, *, site_id: int, now: datetime,
            as_of: date | None, ltv: bool, customers: bool) -> dict[str, Any]:
    config = rfm_config(session, site_id, now=now)
    out["as_of"] = as_of or now.date()
    out["prediction_days"], out["ltv_months"] = config.prediction_days, config.ltv_months
    if ltv:
        out["ltv"] = compute_ltv(session, site_id=site_id, now=now, table=table)
    out["cells"] = cell_table(session, site_id=site_id, table=table)
    if customers:
        cols = [table.c[k] for k in CUSTOMER_COLUMNS]
        out["customers"] = [dict(zip(CUSTOMER_COLUMNS, row, strict=True)) for row in session.execute(
            select(*cols).where(table.c.site_id == site_id).order_by(table.c.customer_id))]
    return out


CUSTOMER_COLUMNS = ("customer_id", "frequency", "recency", "age", "monetary", "r", "f", "m", "cell",
                    "expected_purchases", "ltv")


def cell_table(session: Session, *, site_id: int, table: Any = S) -> list[dict[str, Any]]:
    """One row per cell. Each column says what it is: a mean over the cell's customers, or a total of the cell
    (expected purchases and LTV are given both ways)."""
    t = table
    rows = session.execute(
        select(t.c.cell, func.count(), func.avg(t.c.age - t.c.recency), func.avg(t.c.frequency),
               func.avg(t.c.monetary), func.sum(t.c.expected_purchases), func.sum(t.c.ltv))
        .where(t.c.site_id == site_id).group_by(t.c.cell).order_by(func.count().desc(), t.c.cell))
    total = 0
    out = []
    for cell, n, days, freq, money, expected, value in rows:
        total += n
        out.append({
            "cell": cell, "customers": n, "days_since_last_purchase_mean": round(float(days), 1),
            "repeat_purchases_mean": round(float(freq), 2),
            "repeat_purchase_value_mean": round_money(Decimal(str(money))),
            "expected_purchases_mean": None if expected is None else round(float(expected) / n, 2),
            "expected_purchases_total": None if expected is None else round(float(expected), 1),
            "ltv_mean": None if value is None else round_money(Decimal(str(value)) / n),
            "ltv_total": None if value is None else round_money(Decimal(str(value)))})
    for row in out:
        row["share"] = round(row["customers"] / total, 4)
    return out


def score_grid(session: Session, *, site_id: int) -> list[dict[str, Any]]:
    """The stored scores as an R x F grid: customers and their purchase revenue (orders outside `cancel`) per
    (r, f) pair that has customers."""
    rows = session.execute(
        select(S.c.r, S.c.f, func.count(), func.coalesce(func.sum(R.c.orders_total), 0))
        .select_from(S.outerjoin(R, R.c.customer_id == S.c.customer_id))
        .where(S.c.site_id == site_id).group_by(S.c.r, S.c.f).order_by(S.c.r, S.c.f))
    return [{"r": r, "f": f, "customers": n, "revenue": round_money(Decimal(str(total)))}
            for r, f, n, total in rows]


def grid_member_ids(session: Session, *, site_id: int, r: int, f: int, after_id: int = 0, limit: int = 50
                    ) -> list[int]:
    """Customer ids with stored scores (r, f) on the site, above `after_id` (pages by key)."""
    return list(session.scalars(select(S.c.customer_id).where(
        S.c.site_id == site_id, S.c.r == r, S.c.f == f, S.c.customer_id > after_id)
        .order_by(S.c.customer_id).limit(limit)))


def compute_ltv(session: Session, *, site_id: int, now: datetime, table: Any = S) -> dict[str, Any]:
    """Fit BG/NBD + Gamma-Gamma on the site's RFM values and store expected purchases and LTV per customer."""
    config = rfm_config(session, site_id, now=now)
    rows = session.execute(select(table.c.customer_id, table.c.frequency, table.c.recency, table.c.age,
                                  table.c.monetary)
                           .where(table.c.site_id == site_id).order_by(table.c.customer_id)).all()
    if not rows:
        raise DomainError.one("site", "no RFM scores for this site: it has no purchases (orders outside the "
                                      "cancel group), or they were not scored yet (`retento rfm SITE`, "
                                      "POST /api/v1/rfm/recompute)")
    ids, f, r, t, m = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    try:
        pred = ltv.fit_predict(f, r, t, m, days=config.prediction_days, months=config.ltv_months,
                               discount_rate=config.discount_rate)
    except ltv.NotEnoughData as exc:
        raise DomainError.one("site", str(exc)) from None
    values = [{"b_id": int(i), "b_e": float(e),
               "b_l": None if pred.ltv is None else round_money(Decimal(repr(float(v))))}
              for i, e, v in zip(ids, pred.expected_purchases,
                                 pred.ltv if pred.ltv is not None else np.zeros(len(ids)), strict=True)]
    stmt = update(table).where(table.c.customer_id == bindparam("b_id")).values(
        expected_purchases=bindparam("b_e"), ltv=bindparam("b_l"))
    for i in range(0, len(values), 5000):
        session.connection().execute(stmt, values[i:i + 5000])
    return {"customers": len(values), "params": pred.params, "prediction_days": config.prediction_days,
            "ltv_months": config.ltv_months}


def customer_scores(session: Session, *, customer_id: int) -> dict[str, Any] | None:
    row = session.get(RfmScore, customer_id)
    return {c.key: getattr(row, c.key) for c in S.c} if row else None


def refresh_rfm_due(session: Session, *, now: datetime, every: timedelta) -> int:
    """Recompute RFM for sites with purchases whose scores are older than `every`."""
    done = 0
    site_ids = list(session.scalars(select(R.c.site_id.distinct())))  # read out first: SQLite cannot drop the
    for site_id in site_ids:  # RFM values' temporary table while a statement of the connection is still open
        row = service.settings_row(session, site_id, now=now)
        if row.rfm_computed_at is None or row.rfm_computed_at <= now - every:
            compute_rfm(session, site_id=site_id, now=now)
            done += 1
    return done


# --- lifecycle --------------------------------------------------------------------------------------------

def median_gap(session: Session, *, site_id: int, until: date | None = None) -> float | None:
    """cohorts.median_gap in SQL: the median of the days between consecutive purchase days of each customer, from
    the site's histogram of the gaps kept with the rollups (`rollups.gap_histogram`: no read of the orders).
    `until`: only the orders up to the end of that day (a histogram computed from the orders, one pass)."""
    if until is None:
        return cohorts.median_of_counts(rollups.gap_histogram(session, site_id=site_id))
    g = rollups.gaps_select(site_id=site_id, before=_day_end(until)).subquery()
    counts = session.execute(select(g.c.gap, func.sum(g.c.n)).group_by(g.c.gap)).all()
    return cohorts.median_of_counts((int(gap), int(n)) for gap, n in counts)


def update_threshold(session: Session, *, site_id: int, now: datetime) -> float | None:
    """Store the median days between purchases across the site's base (shown beside any override)."""
    gap = median_gap(session, site_id=site_id)
    row = service.settings_row(session, site_id, now=now)
    row.computed_threshold_days, row.updated_at = gap, now
    return gap


def set_threshold(session: Session, *, site: str, days: int | None, now: datetime) -> dict[str, Any]:
    site_id = get_site(session, site).id
    row = service.settings_row(session, site_id, now=now)
    row.threshold_days, row.updated_at = days, now
    lifecycle_segments = service.segments_using(session, site_id, "lifecycle")
    service.recompute_site(session, site_id=site_id, now=now, only=lifecycle_segments)
    return threshold_info(session, site_id=site_id)


def threshold_info(session: Session, *, site_id: int) -> dict[str, Any]:
    row = session.get(SegmentSettings, site_id)
    return {"threshold_days": service.threshold_days(session, site_id),
            "override": row.threshold_days if row else None,
            "computed_median_days": row.computed_threshold_days if row else None}


def cohort_report(session: Session, *, site: str, now: datetime, as_of: date | None = None,
                  first: date | None = None, last: date | None = None) -> dict[str, Any]:
    """Monthly lifecycle table (the migration counts, the four figures and the initiatives on each month's row)
    and acquisition cohorts. `as_of`: observed at the end of that day, from the orders up to it (the median
    gap is then computed, not stored); `first` / `last`: only the rows of those months (states still follow
    the whole history)."""
    check_as_of(as_of, now=now)
    _check_range(first, last)
    site_row = get_site(session, site)
    return _shaped(session, _computed(session, site_row, now=now, as_of=as_of), first=first, last=last)


def stored_cohort_report(session: Session, *, site: str, now: datetime, inline_buyers: int,
                         first: date | None = None, last: date | None = None) -> dict[str, Any] | None:
    """The cohort report as last stored (`computed_at`: when), for the console: reading it costs one row, not a
    read of every purchase. Stored by `refresh_cohorts_due` (the worker, on each turn for a site that has none
    yet). When none is stored yet: computed and stored here for a site of at most `inline_buyers` buyers (a
    fraction of a second at 5,000); None for a larger one (the computation reads every purchase: over a minute at a
    million buyers), whose report the worker computes on its next turn."""
    _check_range(first, last)
    site_row = get_site(session, site)
    row = service.settings_row(session, site_row.id, now=now)
    if row.cohort_report is None or row.cohort_computed_at is None:
        if not few_buyers(session, site_id=site_row.id, limit=inline_buyers):
            return None
        store_cohort_report(session, site_id=site_row.id, now=now)
    return {**_shaped(session, row.cohort_report, first=first, last=last), "computed_at": row.cohort_computed_at}


def few_buyers(session: Session, *, site_id: int, limit: int) -> bool:
    """Whether the site has at most `limit` buyers (reads at most `limit` + 1 rollup ids)."""
    some = select(R.c.customer_id).where(R.c.site_id == site_id).limit(limit + 1).subquery()
    return (session.scalar(select(func.count()).select_from(some)) or 0) <= limit


def store_cohort_report(session: Session, *, site_id: int, now: datetime) -> dict[str, Any]:
    """Compute the site's cohort report from every purchase (and its sleeping threshold) and store it."""
    report = _computed(session, session.get(Site, site_id), now=now, as_of=None)
    row = service.settings_row(session, site_id, now=now)
    row.cohort_report = {**report, "as_of": report["as_of"].isoformat()}
    row.cohort_computed_at = now
    return row.cohort_report


def refresh_cohorts_due(session: Session, *, now: datetime, every: timedelta) -> int:
    """Recompute the stored cohort report of sites with purchases whose report is older than `every`."""
    done = 0
    site_ids = list(session.scalars(select(R.c.site_id.distinct())))  # read out first: SQLite cannot drop the
    for site_id in site_ids:  # report's temporary table while a statement of the connection is still open
        row = service.settings_row(session, site_id, now=now)
        if row.cohort_computed_at is None or row.cohort_computed_at <= now - every:
            store_cohort_report(session, site_id=site_id, now=now)
            done += 1
    return done


def _check_range(first: date | None, last: date | None) -> None:
    if first is not None and last is not None and first > last:
        raise DomainError.one("from", f"{first.isoformat()[:7]} is after `to` ({last.isoformat()[:7]})")


def _computed(session: Session, site_row: Site, *, now: datetime, as_of: date | None) -> dict[str, Any]:
    """The report of every month and cohort, without initiatives (they are added when it is shown)."""
    if as_of is None:
        update_threshold(session, site_id=site_row.id, now=now)
        info = threshold_info(session, site_id=site_row.id)
    else:
        row = session.get(SegmentSettings, site_row.id)
        override = row.threshold_days if row else None
        gap = median_gap(session, site_id=site_row.id, until=as_of)
        info = {"threshold_days": float(override) if override is not None else
                gap if gap is not None else service.DEFAULT_THRESHOLD_DAYS,
                "override": override, "computed_median_days": gap}
    today = as_of or now.date()
    report = cohort_query.report(session, site_id=site_row.id, threshold=info["threshold_days"], today=today,
                                 day_over=as_of is not None)
    return {
        "site": site_row.code, "as_of": today,
        "threshold": info,
        "months": [_month(m, []) for m in report.months],
        "cohorts": [{"month": c.month.isoformat()[:7], "customers": c.size, "became_active": c.became_active,
                     "conversion": round(c.became_active / c.size, 4) if c.size else None,
                     "provisional": c.provisional} for c in report.cohorts],
    }


def _shaped(session: Session, report: dict[str, Any], *, first: date | None, last: date | None) -> dict[str, Any]:
    """The months and cohorts from `first` to `last`, each month with the site's initiatives started in it."""
    lo = first.isoformat()[:7] if first else ""
    hi = last.isoformat()[:7] if last else "9999-12"
    site_id = session.scalar(select(Site.id).where(Site.code == report["site"]))
    by_month: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for i in list_initiatives(session, site_id=site_id):
        by_month[i["started_at"].date().isoformat()[:7]].append(
            {"id": i["id"], "kind": i["kind"], "name": i["name"]})
    as_of = report["as_of"]
    return {**report, "as_of": date.fromisoformat(as_of) if isinstance(as_of, str) else as_of,
            "months": [{**m, "initiatives": by_month.get(m["month"], [])} for m in report["months"]
                       if lo <= m["month"] <= hi],
            "cohorts": [c for c in report["cohorts"] if lo <= c["month"] <= hi]}


def _month(m: cohorts.Month, initiatives: list[dict[str, Any]]) -> dict[str, Any]:
    def pct(x: float | None) -> float | None:
        return None if x is None else round(x, 4)

    return {
        "month": m.month.isoformat()[:7], "provisional": m.provisional, **m.counts, "orders": m.orders,
        **{f"{a}_to_{b}": m.migrations.get((a, b), 0) for a, b in MIGRATIONS},
        "conversion_new_active": pct(m.conversion_new_active), "new_base": m.new_base,
        "orders_per_active": pct(m.orders_per_active), "active_base": m.active_base,
        "reactivated_orders": m.reactivated_orders, "reactivated": m.reactivated,
        "churn_active": pct(m.churn_active),
        "migrations": [{"from": a, "to": b, "customers": n} for (a, b), n in sorted(m.migrations.items())],
        "initiatives": [{"id": i["id"], "kind": i["kind"], "name": i["name"]} for i in initiatives],
    }


MIGRATIONS = (("new", "active"), ("new", "sleeping"), ("sleeping", "active"), ("active", "sleeping"))


# --- marketing initiatives --------------------------------------------------------------------------------

def record_initiative(session: Session, *, data: InitiativeIn, source: str, now: datetime) -> Initiative:
    """Put an initiative on the cohort timeline (by hand, or called by another domain when it launches one).

    With an idempotency key, recording the same initiative twice returns the first one."""
    if data.idempotency_key:
        existing = session.scalar(select(Initiative).where(Initiative.idempotency_key == data.idempotency_key))
        if existing is not None:
            return existing
    if data.ended_at is not None and data.ended_at < data.started_at:
        raise DomainError.one("ended_at", "ends before it starts")
    site = get_site(session, data.site)
    item = Initiative(site_id=site.id, kind=data.kind, name=data.name, started_at=data.started_at,
                      ended_at=data.ended_at, source=source, idempotency_key=data.idempotency_key, created_at=now)
    session.add(item)
    session.flush()
    return item


def edit_initiative(session: Session, *, initiative_id: int, data: InitiativeIn) -> Initiative:
    """Rename, re-date or re-kind an initiative (its site stays)."""
    item = session.get(Initiative, initiative_id)
    if item is None:
        raise NotFound("id", f"initiative {initiative_id} not found")
    if data.ended_at is not None and data.ended_at < data.started_at:
        raise DomainError.one("ended_at", "ends before it starts")
    item.kind, item.name, item.started_at, item.ended_at = data.kind, data.name, data.started_at, data.ended_at
    session.flush()
    return item


def list_initiatives(session: Session, *, site_id: int) -> list[dict[str, Any]]:
    q = select(Initiative).where(Initiative.site_id == site_id).order_by(Initiative.started_at, Initiative.id)
    return [{"id": i.id, "kind": i.kind, "name": i.name, "started_at": i.started_at, "ended_at": i.ended_at,
             "source": i.source} for i in session.scalars(q)]


def site_ids(session: Session) -> list[int]:
    return list(session.scalars(select(Site.id).order_by(Site.id)))


def ensure_cell_segments(session: Session, *, site: str, now: datetime) -> list[str]:
    """One dynamic segment per configured RFM cell (`rfm-<cell>`), so cells work like any segment."""
    site_row = get_site(session, site)
    made = []
    for cell in rfm_config(session, site_row.id, now=now).cells:
        code = f"rfm-{cell.name}".replace("_", "-")
        if not any(s.code == code for s in service.list_segments(session, site=site)):
            service.create(session, data=SegmentCreate(site=site, code=code, name=f"RFM: {cell.name}",
                                                       rules={"rfm": {"cell": [cell.name]}}), now=now)
            made.append(code)
    return made
