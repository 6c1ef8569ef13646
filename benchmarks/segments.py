"""`retento bench segments`: 10 typical segments and RFM over generated customers and orders in PostgreSQL,
the same queries in DuckDB over the same data exported to Parquet (same run), and the incremental path.

Data go into a fresh PostgreSQL database with COPY (not timed against anything). Then, timed:
- rollup rebuild (all customers, from orders; with the per-order category facts and per-customer category rollups);
- the live count (what the rule editor shows, `service.preview`: the count and a sample) of each segment,
  `count_runs` times each: p50 and p95;
- per segment: the membership query alone (count of matches) in PostgreSQL and in DuckDB - the same SQL,
  compiled by SQLAlchemy for PostgreSQL with the values inlined - and Retento's full recompute with writes
  (first computation, then a steady-state recompute with nothing to change);
- RFM: the scoring query alone in both engines, and Retento's RFM computation with writes;
- the stored cohort report recomputed (the worker's refresh), beside the lifecycle threshold's query alone;
- the floor: a bare `SELECT count(*)` of `customer_rollups` and of `customers` in both engines, and the same with
  a predicate on the id that forces a read of the column (not in the total): the least any rule that looks at
  every customer (or every buyer) costs in each engine; beside them (not in the total) vip-email spelt as the two
  semi-joins it was before `customers.labels` (SQLite's spelling still), the baseline of that change;
- incremental: new orders go in through the order service (not timed), then the worker's path (event
  dispatch to the segments subscriber, which applies each order to the category rollups as a one-order delta;
  rollups and every segment for the affected customers) is timed, with the bus's other subscribers as a worker
  runs them; their share is reported apart.

Goals (issue 14): every segment's live count p95 < 0.3 s; the membership queries of the ten segments plus the
RFM query (what a full recompute reads) < 3 s; the incremental path >= 1,000 order events/s.
"""

from __future__ import annotations

import io
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, make_url, select, text
from sqlalchemy.dialects import postgresql

from benchmarks.targets import fresh
from retento.bootstrap import bootstrap, settle_process
from retento.core.changes import ActorType, ChangeContext, Source
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.migrate import migrate
from retento.segments import analytics, rollups, rules, service
from retento.segments.compiler import Context, members_query
from retento.segments.events import SUBSCRIBER
from retento.segments.schemas import SegmentCreate

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
CITIES = ["Moscow", "Kazan", "Perm", "Omsk", "Tver"]
CATEGORIES = ["Shoes", "Bags", "Dresses", "Jeans", "Shirts", "Hats", "Socks", "Coats", "Belts", "Gloves"]
ENTRY = ["registration", "purchase", "subscription", "callback", "chat"]
SEGMENTS = {
    "repeat": {"orders": {"metric": "count", "op": "gte", "value": 2}},
    "big-spenders": {"orders": {"metric": "sum", "op": "gte", "value": 50000}},
    "lapsed": {"orders": {"metric": "last_order_days_ago", "op": "gt", "value": 180}},
    "new-this-month": {"orders": {"metric": "first_order_days_ago", "op": "lte", "value": 30}},
    "vip-email": {"all": [{"tags": {"any": ["vip"]}}, {"consent": {"channel": "email"}}]},
    "sleeping": {"lifecycle": {"state": ["sleeping"]}},
    "active": {"lifecycle": {"state": ["active"]}},
    "high-aov-not-recent": {"all": [{"orders": {"metric": "average", "op": "gt", "value": 7000}},
                                    {"orders": {"metric": "last_order_days_ago", "op": "gt", "value": 90}}]},
    "moscow-buyers": {"all": [{"custom_field": {"name": "city", "op": "eq", "value": "Moscow"}},
                              {"orders": {"metric": "count", "op": "gte", "value": 1}}]},
    "shoes-this-year": {"orders": {"metric": "count", "op": "gte", "value": 1, "category": "Shoes",
                                   "within_days": 365}},
}
TABLES = {  # exported to Parquet for DuckDB: table -> columns
    "customers": "id, site_id, email, entry_point, created_at, custom_fields::text AS custom_fields, "
                 "labels::text AS labels",
    "customer_tags": "customer_id, tag",
    "customer_consents": "customer_id, channel, granted",
    "customer_rollups": "*",
    "customer_category_rollups": "*",
    "order_category_facts": "*",
    "orders": "id, site_id, customer_id, status, total, created_at",
    "order_items": "id, order_id, category, price, quantity, discount",
    "statuses": "code, group_code",
}

# The least a rule that looks at every buyer / customer costs: a bare count(*) of the table (DuckDB answers it
# from the Parquet footer, without reading a column) and a count(*) with a predicate on the id column that no
# statistic decides (both engines read the column).
FLOOR = {"floor: customer_rollups": ("customer_rollups", None), "floor: customers": ("customers", None),
         "floor scan: customer_rollups": ("customer_rollups", "customer_id % 7 <> 7"),
         "floor scan: customers": ("customers", "id % 7 <> 7"),
         # vip-email as it was compiled before customers.labels (and still is on SQLite): two semi-joins
         "before: vip-email as semi-joins": ("customers", "site_id = 1 AND id IN (SELECT customer_id FROM "
                                             "customer_tags WHERE tag IN ('vip')) AND id IN (SELECT customer_id "
                                             "FROM customer_consents WHERE channel = 'email' AND granted IS true)")}


@dataclass
class Timing:
    name: str
    pg_query: float
    duck_query: float
    rows: int
    first: float | None = None  # Retento, first computation with writes
    steady: float | None = None  # Retento, recompute with nothing to change
    count_p50: float | None = None  # the live count (service.preview), seconds
    count_p95: float | None = None

    @property
    def ratio(self) -> float:
        return self.pg_query / self.duck_query if self.duck_query else float("nan")


@dataclass
class Result:
    customers: int
    orders: int
    load_s: float = 0.0
    rollup_s: float = 0.0
    export_s: float = 0.0
    timings: list[Timing] = field(default_factory=list)
    floors: list[Timing] = field(default_factory=list)  # bare scans: not part of the total
    events: int = 0
    incremental_s: float = 0.0
    segment_subscriber_s: float = 0.0  # of incremental_s: the segment subscriber (category rollups, queueing)
    other_subscribers_s: float = 0.0  # of incremental_s: the bus's other subscribers (triggers, journeys, ...)
    versions: dict[str, str] = field(default_factory=dict)
    load_average: list[tuple[float, float, float]] = field(default_factory=list)  # at the start and the end
    rfm_plain_s: float = 0.0  # the scored rows written by one plain INSERT ... SELECT into an empty copy
    rfm_threshold_s: float = 0.0  # the lifecycle threshold's query alone (part of Retento's RFM run)
    rfm_changed_s: float = 0.0  # Retento's RFM run after 1 % of the scores were spoiled (only those rewritten)
    cohort_s: float = 0.0  # the stored cohort report recomputed (what the worker's cohort refresh runs)

    @property
    def recompute_s(self) -> float:
        """The membership queries of the segments plus the RFM query in PostgreSQL."""
        return sum(t.pg_query for t in self.timings)

    @property
    def count_p95(self) -> float:
        return max((t.count_p95 or 0.0) for t in self.timings)

    @property
    def rate(self) -> float:
        return self.events / self.incremental_s if self.incremental_s else 0.0

    @property
    def segment_rate(self) -> float:
        """Events/s of the segments' own work: the timed loop without the bus's other subscribers."""
        own = self.incremental_s - self.other_subscribers_s
        return self.events / own if own > 0 else 0.0


def main(*, customers: int, orders: int, events: int, pg_dsn: str, seed: int, keep: bool, console: Console,
         count_runs: int = 10, reuse: str | None = None) -> None:
    """`reuse`: the name of a database a run with `keep` left on the same server (its generated data is used
    again, the loading skipped; what the run derived and the orders it added are removed first)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with tempfile.TemporaryDirectory(prefix="retento_seg_") as tmp, Progress(*columns, console=console) as progress:
        if reuse:
            url = make_url(pg_dsn).set(database=reuse).render_as_string(hide_password=False)
            result = run(url, customers=customers, orders=orders, events=events, seed=seed, tmp=Path(tmp),
                         progress=progress, count_runs=count_runs, reuse=True)
        else:
            with fresh("postgres", pg_dsn) as target:
                result = run(target.url, customers=customers, orders=orders, events=events, seed=seed,
                             tmp=Path(tmp), progress=progress, count_runs=count_runs)
                if keep:
                    console.print(f"database kept: {make_url(target.url).database} (--reuse it)")
                    target.made.clear()
    report(result, console)


def run(url: str, *, customers: int, orders: int, events: int, seed: int, tmp: Path, progress: Progress,
        count_runs: int = 10, reuse: bool = False) -> Result:
    import duckdb

    result = Result(customers, orders, versions={"duckdb": duckdb.__version__}, load_average=[os.getloadavg()])
    app = bootstrap(Settings(database_url=url))
    migrate(app)
    t0 = time.perf_counter()
    if reuse:
        reset(app, customers=customers, orders=orders)
    else:
        load(app, customers=customers, orders=orders, seed=seed, progress=progress)
    result.load_s = time.perf_counter() - t0
    with app.engine.connect() as conn:
        result.versions["postgres"] = conn.execute(text("SHOW server_version")).scalar().split()[0]
    result.rollup_s = _timed(lambda: _in_tx(app, lambda s: rollups.refresh(s, site_id=1)))
    with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    t0 = time.perf_counter()
    duck = export(app, tmp, progress)
    result.export_s = time.perf_counter() - t0
    task = progress.add_task("segments", total=len(SEGMENTS) + 1)
    for code, raw in SEGMENTS.items():
        types = app.parts.segment_rules
        q = members_query(rules.parse(raw, types), Context(site_id=1, now=NOW, types=types,
                                                            threshold_days=_threshold(app)))
        timing = _compare(app, duck, code, select(func.count()).select_from(q.subquery()))
        timing.count_p50, timing.count_p95 = live_count(app, raw, count_runs)
        timing.first = _timed(lambda c=code, r=raw: _in_tx(app, lambda s: service.create(
            s, data=SegmentCreate(site="bench", code=c, name=c, rules=r), now=NOW)))
        timing.steady = _timed(lambda c=code: _in_tx(app, lambda s: service.recompute(
            s, segment=_segment(s, c), now=NOW)))
        result.timings.append(timing)
        progress.advance(task)
    v = analytics.rfm_values(rollups.R, (NOW.date() - analytics.EPOCH).days)
    timing = _compare(app, duck, "RFM values", select(func.count(), func.sum(v.c.mc), func.sum(v.c.gap))
                      .where(v.c.site_id == 1))
    timing.first = _timed(lambda: _in_tx(app, lambda s: analytics.compute_rfm(s, site_id=1, now=NOW)))
    timing.steady = _timed(lambda: _in_tx(app, lambda s: analytics.compute_rfm(s, site_id=1, now=NOW)))
    result.rfm_plain_s, result.rfm_threshold_s, result.rfm_changed_s = rfm_baselines(app)
    result.cohort_s = _timed(lambda: _in_tx(app, lambda s: analytics.store_cohort_report(s, site_id=1, now=NOW)))
    result.timings.append(timing)
    progress.advance(task)
    for name, (table, where) in FLOOR.items():
        stmt = select(func.count()).select_from(text(table))
        result.floors.append(_compare(app, duck, name, stmt if where is None else stmt.where(text(where))))
    if events:
        result.events, result.incremental_s, split = incremental(app, events, seed, progress)
        result.segment_subscriber_s, result.other_subscribers_s = split["segments"], split["others"]
    app.close()
    result.load_average.append(os.getloadavg())
    return result


def rfm_baselines(app: Any) -> tuple[float, float, float]:
    """Beside Retento's RFM run: the same scored rows written by one plain INSERT ... SELECT into an empty copy
    of rfm_scores (its indexes included), the lifecycle threshold's query alone, and Retento's run again after
    1 % of the stored rows were spoiled (it rewrites only those)."""
    with app.engine.connect() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE rfm_plain (LIKE rfm_scores INCLUDING ALL)"))
        t0 = time.perf_counter()
        conn.execute(text("INSERT INTO rfm_plain SELECT * FROM rfm_scores"))
        conn.commit()
        plain = time.perf_counter() - t0
        conn.execute(text("DROP TABLE rfm_plain"))
        conn.commit()
    threshold = _timed(lambda: _in_tx(app, lambda s: analytics.median_gap(s, site_id=1)))
    _in_tx(app, lambda s: s.execute(text("UPDATE rfm_scores SET cell = 'spoiled' WHERE customer_id % 100 = 0")))
    changed = _timed(lambda: _in_tx(app, lambda s: analytics.compute_rfm(s, site_id=1, now=NOW)))
    return plain, threshold, changed


def live_count(app: Any, raw: dict[str, Any], runs: int) -> tuple[float, float]:
    """The rule editor's live count and sample (`service.preview`), `runs` times: p50 and p95 in seconds."""
    times = [_timed(lambda: _in_tx(app, lambda s: service.preview(s, site="bench", raw_rules=raw, now=NOW)))
             for _ in range(max(1, runs))]
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def _in_tx(app: Any, fn: Callable[[Any], Any]) -> Any:
    with transaction(app.sessions) as s:
        return fn(s)


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _threshold(app: Any) -> float:
    return _in_tx(app, lambda s: service.threshold_days(s, 1))


def _segment(s: Any, code: str) -> Any:
    from retento.segments.models import Segment

    return s.scalar(select(Segment).where(Segment.code == code))


def _compare(app: Any, duck: Any, name: str, stmt: Any) -> Timing:
    """The same query in both engines (best of 2 runs each); the answers must agree."""
    sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    pg_times, duck_times = [], []
    for _ in range(2):
        with app.engine.connect() as conn:
            t0 = time.perf_counter()
            pg_row = conn.execute(text(sql.replace("%%", "%"))).first()
            pg_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        duck_row = duck.execute(_duckdb_sql(sql)).fetchone()
        duck_times.append(time.perf_counter() - t0)
    if [float(x or 0) for x in pg_row] != [float(x or 0) for x in duck_row]:
        raise RuntimeError(f"{name}: PostgreSQL {tuple(pg_row)} != DuckDB {tuple(duck_row)}")
    return Timing(name, min(pg_times), min(duck_times), int(pg_row[0]))


def _duckdb_sql(sql: str) -> str:
    """PostgreSQL SQL as DuckDB reads it: integer `/` is float division there, `//` is integer division;
    jsonb containment (`a @> b`) is `json_contains(a, b)`."""
    sql = re.sub(r"\(\((customers\.(?:custom_fields|labels))\)::jsonb @> \(('(?:[^']|'')*')\)::jsonb\)",
                 r"json_contains(\1, \2)", sql)
    return (sql.replace("%%", "%").replace("::jsonb", "::json")
            .replace(") / (2 * (customer_rollups.purchase_days - 1))", ") // (2 * (customer_rollups.purchase_days - 1))"))


# --- data -------------------------------------------------------------------------------------------------

def _copy(app: Any, table: str, columns: str, lines: Any) -> None:
    raw = app.engine.raw_connection()
    try:
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)") as cp:
            for chunk in lines:
                cp.write(chunk)
        raw.commit()
    finally:
        raw.close()


def _csv(*cols: Any) -> bytes:
    buf = io.StringIO()
    np.savetxt(buf, np.column_stack(cols), fmt="%s", delimiter=",")
    return buf.getvalue().encode()


def _ts(seconds: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s").astype(object) + "+00"


def load(app: Any, *, customers: int, orders: int, seed: int, progress: Progress, chunk: int = 250_000) -> None:
    """Generated shop: customers with tags, consents, a city; orders skewed to a minority of customers."""
    rng = np.random.default_rng(seed)
    with transaction(app.sessions) as s:
        s.execute(text("INSERT INTO sites (id, code, name, currency, currencies, timezone, default_region, "
                       "created_at) VALUES (1, 'bench', 'Bench', 'RUB', '[\"RUB\"]', 'UTC', 'RU', now())"))
    end = int(NOW.timestamp())
    start = end - 3 * 365 * 86400
    task = progress.add_task("customers", total=customers)
    for lo in range(1, customers + 1, chunk):
        ids = np.arange(lo, min(customers, lo + chunk - 1) + 1)
        n = len(ids)
        created = _ts(rng.integers(start, end, n))
        city = np.array(['"{""city"": ""%s""}"' % c for c in CITIES], dtype=object)[rng.integers(0, 5, n)]
        entry = np.array(ENTRY, dtype=object)[rng.integers(0, 5, n)]
        is_vip, is_granted = rng.random(n) < 0.1, rng.random(n) < 0.6
        labels = np.array(['"[]"', '"[""tag:vip""]"', '"[""consent:email""]"', '"[""consent:email"", ""tag:vip""]"'],
                          dtype=object)[is_vip * 1 + is_granted * 2]  # customers.labels, as the service keeps it
        _copy(app, "customers", "id, site_id, external_id, email, created_at, updated_at, custom_fields, "
              "personal_dates, entry_point, email_confirmed, labels",
              [_csv(ids, np.ones(n, int), np.char.add("C", ids.astype(str)),
                    np.char.add(np.char.add("c", ids.astype(str)), "@example.com"), created, created, city,
                    np.full(n, "{}"), entry, np.full(n, "f"), labels)])
        vip = ids[is_vip]
        _copy(app, "customer_tags", "customer_id, tag", [_csv(vip, np.full(len(vip), "vip"))])
        granted = ids[is_granted]
        g = len(granted)
        _copy(app, "customer_consents", "customer_id, channel, granted, at, source",
              [_csv(granted, np.full(g, "email"), np.full(g, "t"), np.full(g, "2025-01-01 00:00:00+00"),
                    np.full(g, "bench"))])
        progress.advance(task, n)
    task = progress.add_task("orders + items", total=orders)
    statuses = np.array(["complete", "cancel-other", "new"], dtype=object)
    for lo in range(1, orders + 1, chunk):
        ids = np.arange(lo, min(orders, lo + chunk - 1) + 1)
        n = len(ids)
        cust = (customers * rng.random(n) ** 2.5).astype(int) + 1  # a minority buys often
        at = _ts(rng.integers(start, end, n))
        total = np.round(rng.gamma(2.0, 2500.0, n) + 100, 2)
        totals = np.char.mod("%.2f", total)
        status = statuses[np.searchsorted([0.88, 0.95], rng.random(n))]
        _copy(app, "orders", "id, site_id, number, customer_id, status, status_updated_at, currency, items_total, "
              "discount_total, delivery_cost, total, paid_amount, custom_fields, created_at, updated_at",
              [_csv(ids, np.ones(n, int), np.char.add("N", ids.astype(str)), cust, status, at, np.full(n, "RUB"),
                    totals, np.zeros(n, int), np.zeros(n, int), totals, np.zeros(n, int), np.full(n, "{}"), at, at)])
        _copy(app, "order_items", "id, order_id, name, kind, category, quantity, price, discount",
              [_csv(ids, ids, np.full(n, "Item"), np.full(n, "product"),
                    np.array(CATEGORIES, dtype=object)[rng.integers(0, 10, n)], np.ones(n, int), totals,
                    np.zeros(n, int))])
        progress.advance(task, n)
    with transaction(app.sessions) as s:
        for table in ("customers", "orders", "order_items"):
            s.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))


def reset(app: Any, *, customers: int, orders: int) -> None:
    """A kept database back to the generated data: no segments, scores or queue; the incremental orders gone.
    Refused when someone else is connected to it or it does not hold exactly the generated data."""
    with app.engine.connect() as conn:
        others = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND pid <> pg_backend_pid()")).scalar()
        have = conn.execute(text("SELECT (SELECT count(*) FROM customers), "
                                 "(SELECT count(*) FROM orders WHERE id <= :n)"), {"n": orders}).one()
    if others:
        raise RuntimeError("another session is connected to that database: it is in use, not a kept one")
    if tuple(have) != (customers, orders):
        raise RuntimeError(f"the database holds {have[0]:,} customers and {have[1]:,} generated orders, not "
                           f"{customers:,} and {orders:,}: pass the --customers and --orders of the run that kept it")
    with transaction(app.sessions) as s:
        for stmt in ("DELETE FROM segments", "DELETE FROM rfm_scores", "DELETE FROM segment_settings",
                     "DELETE FROM segment_dirty", "DELETE FROM orders WHERE id > :n"):
            s.execute(text(stmt), {"n": orders})
        s.execute(text("SELECT setval(pg_get_serial_sequence('orders', 'id'), :n)"), {"n": orders})
    app.bus.dispatch()  # the deletions emit nothing, but a kept database may hold undelivered events


def export(app: Any, tmp: Path, progress: Progress) -> Any:
    """Tables to Parquet (via CSV from PostgreSQL COPY), opened in DuckDB as views with the same names."""
    import duckdb

    duck = duckdb.connect()
    duck.execute(f"SET threads TO {os.cpu_count() or 1}")
    task = progress.add_task("export to Parquet", total=len(TABLES))
    raw = app.engine.raw_connection()
    try:
        for table, cols in TABLES.items():
            csv_path, parquet = tmp / f"{table}.csv", tmp / f"{table}.parquet"
            with raw.cursor() as cur, open(csv_path, "wb") as out, \
                    cur.copy(f"COPY (SELECT {cols} FROM {table}) TO STDOUT WITH (FORMAT csv, HEADER)") as cp:
                for data in cp:
                    out.write(data)
            types = {"custom_fields": "JSON", "labels": "JSON"} if table == "customers" else {}
            duck.execute(f"COPY (SELECT * FROM read_csv('{csv_path}', header=true, types={types!r})) "
                         f"TO '{parquet}' (FORMAT parquet)")
            duck.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{parquet}')")
            csv_path.unlink()
            progress.advance(task)
    finally:
        raw.close()
    return duck


def incremental(app: Any, n: int, seed: int, progress: Progress) -> tuple[int, float]:
    """New orders through the order service (untimed), then the worker's incremental path (timed)."""
    from retento.orders import service as orders

    rng = np.random.default_rng(seed + 1)
    ctx = ChangeContext(Source.API, ActorType.API_KEY, "bench")
    with app.engine.connect() as conn:
        top = conn.execute(text("SELECT max(id) FROM customers")).scalar()
    # what autovacuum (off on the bench's server) does after the segments' and RFM's millions of rows: without it
    # the statements of the incremental path are planned on the statistics of those tables when they were empty
    # (after --reuse: a scan of every member of a segment per statement, ~200 events/s)
    with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE segment_members, segment_changes, segment_sizes, rfm_scores, events"))
    _drain(app)  # the segment events of the full recomputes above are not part of this measurement
    task = progress.add_task("incremental: new orders", total=n)
    for lo in range(0, n, 500):
        size = min(500, n - lo)
        raw = [{"site": "bench", "customer": {"id": int(c)}, "status": "complete",
                "items": [{"name": "x", "category": CATEGORIES[k], "price": f"{p:.2f}", "quantity": 1}]}
               for c, p, k in zip(rng.integers(1, top + 1, size), rng.gamma(2.0, 2500.0, size) + 100,
                                  rng.integers(0, len(CATEGORIES), size), strict=True)]
        with transaction(app.sessions) as s:
            orders.create_many(s, items=[orders.parse_create(r) for r in raw], ctx=ctx, now=NOW + timedelta(hours=1))
        progress.advance(task, size)
    task = progress.add_task("incremental: worker", total=n)
    settle_process()  # as `retento worker` does once its app is built (a full collection walks only new objects)
    split = {"segments": 0.0, "others": 0.0}  # the segment subscriber; every other subscriber of the bus
    t0 = time.perf_counter()
    done = 0
    while True:
        t = time.perf_counter()
        delivered = app.bus.dispatch(names=[SUBSCRIBER])
        split["segments"] += time.perf_counter() - t
        t = time.perf_counter()
        delivered += app.bus.dispatch()
        split["others"] += time.perf_counter() - t
        with transaction(app.sessions) as s:
            handled = service.process_dirty(s, now=NOW + timedelta(hours=1), limit=app.settings.segment_batch_size)
        done += handled
        progress.update(task, completed=min(n, done))
        if not delivered and not handled:
            break
    return n, time.perf_counter() - t0, split


def _drain(app: Any) -> None:
    while app.bus.dispatch():
        pass
    while True:
        with transaction(app.sessions) as s:
            if not service.process_dirty(s, now=NOW + timedelta(hours=1), limit=app.settings.segment_batch_size):
                return


def report(r: Result, console: Console) -> None:
    table = Table("query", "matches", "PostgreSQL s", "DuckDB s", "ratio", "live count p50 s", "p95 s",
                  "Retento first s", "Retento steady s",
                  title=f"segments: {r.customers:,} customers, {r.orders:,} orders")
    for t in r.timings:
        table.add_row(t.name, f"{t.rows:,}", f"{t.pg_query:.3f}", f"{t.duck_query:.3f}", f"{t.ratio:.1f}x",
                      _f(t.count_p50, 3), _f(t.count_p95, 3), _f(t.first), _f(t.steady))
    pg = r.recompute_s
    dk = sum(t.duck_query for t in r.timings)
    table.add_row("total", "", f"{pg:.2f}", f"{dk:.2f}", f"{pg / dk:.1f}x", "", "",
                  _f(sum(t.first or 0 for t in r.timings)), _f(sum(t.steady or 0 for t in r.timings)))
    for t in r.floors:
        table.add_row(t.name, f"{t.rows:,}", f"{t.pg_query:.3f}", f"{t.duck_query:.3f}", f"{t.ratio:.1f}x",
                      "", "", "", "")
    console.print(table)
    for line in goals(r) + rfm_lines(r):
        console.print(line)
    console.print(f"load {r.load_s:.0f} s, rollup rebuild {r.rollup_s:.1f} s, export {r.export_s:.0f} s; "
                  f"load average {_loads(r)}")
    print("\nMarkdown for docs/benchmarks.md:\n")
    print(f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, PostgreSQL {r.versions.get('postgres')}, DuckDB {r.versions.get('duckdb')}: "
          f"{r.customers:,} customers, {r.orders:,} orders, load average {_loads(r)}\n")
    print("| query | matches | PostgreSQL s | DuckDB s | ratio | live count p50 s | p95 s | Retento first s "
          "| Retento steady s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for t in r.timings:
        print(f"| {t.name} | {t.rows:,} | {t.pg_query:.3f} | {t.duck_query:.3f} | {t.ratio:.1f}x "
              f"| {_f(t.count_p50, 3)} | {_f(t.count_p95, 3)} | {_f(t.first)} | {_f(t.steady)} |")
    print(f"| **total** | | {pg:.2f} | {dk:.2f} | {pg / dk:.1f}x | | | {_f(sum(t.first or 0 for t in r.timings))} "
          f"| {_f(sum(t.steady or 0 for t in r.timings))} |")
    for t in r.floors:
        print(f"| {t.name} | {t.rows:,} | {t.pg_query:.3f} | {t.duck_query:.3f} | {t.ratio:.1f}x | | | | |")
    print(f"\nRollup rebuild from orders (with category rollups): {r.rollup_s:.1f} s.\n")
    for line in rfm_lines(r):
        print(f"- {line}")
    for line in goals(r):
        print(f"- {line}")


def goals(r: Result) -> list[str]:
    """The issue's goals against this run's figures."""
    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"
    worst = max(r.timings, key=lambda t: t.count_p95 or 0.0)
    return [
        f"live count p95 (worst segment, {worst.name}): {r.count_p95:.3f} s, goal < 0.3 s: {met(r.count_p95 < 0.3)}",
        f"membership queries of the segments + RFM query: {r.recompute_s:.2f} s, goal < 3 s: "
        f"{met(r.recompute_s < 3)}",
        f"incremental: {r.events:,} order events in {r.incremental_s:.1f} s = {r.rate:,.0f} events/s, goal >= 1,000: "
        f"{met(r.rate >= 1000)}; of which the segment subscriber {r.segment_subscriber_s:.1f} s, the re-evaluation "
        f"{r.incremental_s - r.segment_subscriber_s - r.other_subscribers_s:.1f} s, the bus's other subscribers "
        f"(journeys, triggers, webhooks, revenue, loyalty) {r.other_subscribers_s:.1f} s: the segment path alone "
        f"{r.segment_rate:,.0f} events/s",
    ]


def rfm_lines(r: Result) -> list[str]:
    """Retento's RFM run with writes against the plain statement of the same rows, from this run."""
    rfm_row = next((t for t in r.timings if t.name == "RFM values"), None)
    if rfm_row is None or not r.rfm_plain_s:
        return []
    first, steady = rfm_row.first or 0.0, rfm_row.steady or 0.0
    return [
        f"RFM with writes, first run (every row new): {first:.2f} s; one plain INSERT ... SELECT of the same "
        f"{rfm_row.rows:,} rows {r.rfm_plain_s:.2f} s: {first / r.rfm_plain_s:.1f}x",
        f"RFM with writes, steady (nothing changed): {steady:.2f} s, of which the lifecycle threshold's query "
        f"{r.rfm_threshold_s:.2f} s; with 1 % of the rows changed {r.rfm_changed_s:.2f} s",
        f"cohort report recomputed and stored (the worker's refresh): {r.cohort_s:.2f} s, "
        f"{r.cohort_s / r.rfm_threshold_s:.1f}x the lifecycle threshold's query alone (one pass over the orders)",
    ]


def _loads(r: Result) -> str:
    return " -> ".join(f"{a:.1f}/{b:.1f}/{c:.1f}" for a, b, c in r.load_average)


def _f(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"
