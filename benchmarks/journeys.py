"""`retento bench journeys`: step transitions per second of the journeys runner, against a plain driver insert of
the same step log rows in the same run, and the lag of due runs at a fixed rate of customers entering.

The journey has 5 steps: a send (a one-step email cascade), a wait of a minute, a tag, a wait of a minute, a task.
Each customer's run writes one step log row per step (a transition), so a run is 5 transitions, done in three
claims: the entry (send, wait), the end of the first wait (tag, wait), the end of the second (task).

- Throughput: n customers entered at once (their runs written with plain inserts, due now). Worker processes
  (each running only the journeys job: `Runner.advance_due`) advance them on a frozen clock that moves one minute
  on between three phases, so every run takes each of its three claims; transitions/s is 5n over the three
  phases' wall time. The baseline: the same step log rows copied with the driver's executemany into a copy of
  the database made before the run.
- Lag: customers enter at `rate` per second for `lag_seconds` (runs due at their slot), worker processes running
  `retento worker`'s loop (`Worker.run`, with only the journeys job, default settings) on a clock that advances
  with wall time; the lag of a claim is the time from the run's due time to the commit that advanced it. After two minutes the entries and both waits' ends overlap: transitions/s in that stretch are 5 x rate.
"""

from __future__ import annotations

import math
import multiprocessing
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from queue import Empty
from typing import Any

from sqlalchemy import event as sa_event, insert, select

from benchmarks.targets import Target
from benchmarks.triggers_fire import WallClock
from benchmarks.triggers_setup import driver_executemany, driver_rows, insert_sql
from retento.bootstrap import bootstrap, configure_process, settle_process
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.customers.models import Customer
from retento.journeys import service as journeys
from retento.journeys.compiled import Versions
from retento.journeys.models import Journey, JourneyRun, JourneyVersion
from retento.journeys.runner import ACTIVE, CLAIMED, ENTER, LOGGED, QUEUE, Runner
from retento.messaging import service as messaging
from retento.messaging.schemas import CascadeIn, PolicyIn, TemplateIn
from retento.migrate import migrate
from retento.sites import service as sites
from retento.sites.schemas import SiteCreate

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
BATCH = 500  # runs a worker claims per transaction (the default `trigger_timer_batch`)
STEPS = 5
RUN_COLUMNS = ("journey_id", "version_id", "site_id", "customer_id", "active_customer_id", "state", "step", "phase",
               "due_at", "context", "attempts", "entered_at")
STEP_COLUMNS = ("run_id", "journey_id", "version_id", "site_id", "customer_id", "step", "kind", "outcome", "detail",
                "at", "left_at")
WRITTEN = ("journey_steps", "journey_runs", "msg_runs", "tasks", "customer_tags", "history", "events")


def journey(cascade_id: int) -> dict[str, Any]:
    return {"name": "bench", "site": "bench", "entry": {"kind": "customer_created"}, "steps": [
        {"id": "hello", "type": "send", "cascade_id": cascade_id, "next": "pause1"},
        {"id": "pause1", "type": "wait", "minutes": 1, "next": "tag"},
        {"id": "tag", "type": "add_tag", "tag": "welcomed", "next": "pause2"},
        {"id": "pause2", "type": "wait", "minutes": 1, "next": "call"},
        {"id": "call", "type": "create_task", "title": "Call {{ customer.first_name }}", "assignee": None}]}


@dataclass
class Drain:
    workers: int
    transitions: int
    seconds: float
    phases: list[float]
    cpu: float
    written: dict[str, int]

    @property
    def per_s(self) -> float:
        return self.transitions / self.seconds if self.seconds else math.inf


@dataclass
class Lag:
    workers: int
    rate: int
    runs: int
    seconds: float
    lags: list[float]
    steady: float  # transitions/s while entries and both waits' ends overlap
    unfinished: int

    def p(self, q: float) -> float:
        if not self.lags:
            return math.nan
        s = sorted(self.lags)
        return s[min(len(s) - 1, int(q * len(s)))]


@dataclass
class Result:
    backend: str
    version: str
    customers: int
    insert_s: float = 0.0
    drains: list[Drain] = field(default_factory=list)
    lags: list[Lag] = field(default_factory=list)


def run(target: Target, *, n: int, rate: int, lag_seconds: int, workers: tuple[int, ...],
        progress: Any) -> Result:
    """Throughput with each number of `workers` (each on a copy of the same data), the baseline insert, and the
    lag at `rate` with each number of workers (`lag_seconds` 0: no lag part)."""
    build(target, n=n, rate=rate, lag_seconds=lag_seconds, workers=workers, progress=progress)
    return measure(target, n=n, rate=rate, lag_seconds=lag_seconds, workers=workers, progress=progress)


def build(target: Target, *, n: int, rate: int, lag_seconds: int, workers: tuple[int, ...], progress: Any) -> None:
    """The data every part starts from (untimed; `--keep` stops here): the customers, a copy before any run
    (`empty`, for the baseline), each throughput copy's n runs due at once, each lag copy's runs due at their
    slots. Copies are named after `target` (`_empty`, `_w2`, `_lag1`, ...), so `measure` finds them again."""
    journey_id, version_id = setup(target, max(n, rate * lag_seconds), progress)
    target.clone("empty")
    drains = [target] + [target.clone(f"w{w}") for w in workers[1:]]
    lags = [target.clone(f"lag{w}") for w in workers] if lag_seconds else []
    for tgt in drains:
        enter(tgt, journey_id, version_id, [START] * n, progress)
    first = START + timedelta(seconds=3)
    for tgt in lags:
        enter(tgt, journey_id, version_id, [first + timedelta(seconds=k / rate) for k in range(rate * lag_seconds)],
              progress)


def measure(target: Target, *, n: int, rate: int, lag_seconds: int, workers: tuple[int, ...],
            progress: Any) -> Result:
    """The measured parts on the copies `build` made (the bench lock is held for this part only)."""
    result = Result(target.backend, target.version, n)
    for w in workers:
        result.drains.append(drain(target if w == workers[0] else target.named(f"w{w}"), w, n, progress))
    result.insert_s = baseline(target, target.named("empty"))
    for w in workers if lag_seconds else ():
        result.lags.append(lag(target.named(f"lag{w}"), w, rate, lag_seconds, progress))
    return result


# --- data -------------------------------------------------------------------------------------------------------

def setup(target: Target, n: int, progress: Any) -> tuple[int, int]:
    """A site, an email template and cascade, the journey and n customers (plain inserts). Returns (journey id,
    version id)."""
    app = bootstrap(Settings(database_url=target.url), clock=FrozenClock(START - timedelta(days=1)))
    try:
        now = START - timedelta(days=1)
        migrate(app)
        with transaction(app.sessions) as s:
            site_id = sites.create_site(s, data=SiteCreate(code="bench", name="Bench"), now=now).id
            messaging.set_policy(s, site="bench", data=PolicyIn(), now=now)
            messaging.save_template(s, data=TemplateIn(site="bench", name="hello", channel="email", subject="Hi",
                                                       body="{{ customer.first_name }}, welcome"), now=now)
            cascade = messaging.create_cascade(s, data=CascadeIn(site="bench", name="hello", steps=[
                {"channel": "email", "template": "hello"}]), now=now)
            j, _ = journeys.apply(s, raw=journey(cascade.id), now=now)
            journey_id = j.id
            version_id = s.scalar(select(JourneyVersion.id).where(JourneyVersion.journey_id == journey_id))
        task = progress.add_task(f"{target.backend}: customers ({n:,})", total=n)
        cols = {"site_id": site_id, "first_name": "Анна", "created_at": now, "updated_at": now,
                "personal_dates": {}, "custom_fields": {}, "email_confirmed": False}
        for start in range(0, n, 20_000):
            with transaction(app.sessions) as s:
                s.execute(insert(Customer), [{**cols, "email": f"c{i}@example.com"}
                                             for i in range(start, min(n, start + 20_000))])
            progress.advance(task, min(n, start + 20_000) - start)
        return journey_id, version_id
    finally:
        app.close()


def enter(target: Target, journey_id: int, version_id: int, due: list[datetime], progress: Any) -> None:
    """A run per customer (the first len(due) customers), at the journey's first step, due at `due[k]`."""
    app = bootstrap(Settings(database_url=target.url), clock=FrozenClock(START))
    try:
        with transaction(app.sessions) as s:
            site_id = s.scalar(select(Journey.site_id).where(Journey.id == journey_id))
            ids = list(s.scalars(select(Customer.id).order_by(Customer.id).limit(len(due))))
    finally:
        app.close()
    rows = [{"journey_id": journey_id, "version_id": version_id, "site_id": site_id, "customer_id": cid,
             "active_customer_id": cid, "state": ACTIVE, "step": "hello", "phase": ENTER, "due_at": at,
             "context": {"entry": {"type": "customer_created", "name": None}}, "attempts": 0, "entered_at": at}
            for cid, at in zip(ids, due, strict=True)]
    task = progress.add_task(f"{target.backend}: {len(rows):,} customers entering", total=len(rows))
    driver_executemany(target, insert_sql(target, "journey_runs", RUN_COLUMNS), driver_rows(target, rows, RUN_COLUMNS),
                       20_000, lambda k: progress.advance(task, k))


def counts(target: Target) -> dict[str, int]:
    with target.raw() as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in WRITTEN}


# --- throughput -------------------------------------------------------------------------------------------------

def drain(target: Target, workers: int, n: int, progress: Any) -> Drain:
    """Three phases (the clock at the entry, then a minute on, then two): `workers` processes advance every due
    run. Returns the transitions and the phases' wall time."""
    before = counts(target)
    task = progress.add_task(f"{target.backend}: {STEPS * n:,} transitions, {workers} worker process"
                             f"{'es' if workers > 1 else ''}", total=STEPS * n)
    phases, cpu = [], 0.0
    for k in range(3):
        at = START + timedelta(minutes=k, seconds=30 if k else 0)
        wall, spent = _processes(target.url, workers, _drain_worker, (at,), lambda d: progress.advance(task, d))
        phases.append(wall)
        cpu += spent
    after = counts(target)
    written = {t: after[t] - before[t] for t in WRITTEN}
    return Drain(workers, written["journey_steps"], sum(phases), phases, cpu, written)


def _worker_app(url: str, clock: Any, **settings_: Any) -> Any:
    """An app as `retento worker` builds it in its process (its GC threshold, what bootstrap built frozen)."""
    settings = Settings(database_url=url, **settings_)
    configure_process(settings)
    app = bootstrap(settings, clock=clock)
    settle_process()
    return app


def _drain_worker(url: str, report: Any, at: datetime) -> float:
    app = _worker_app(url, FrozenClock(at))
    try:
        runner = Runner(app.sessions, app.clock, batch=BATCH, versions=Versions())
        _Watch(app.clock, lambda lags, logged, at: report(logged), 0.0).listen(app.sessions)
        cpu = time.process_time()
        while True:
            if runner.advance_due() == 0 and not _any(app, QUEUE.waiting(at)):  # another worker may hold the last
                break
        return time.process_time() - cpu
    finally:
        app.close()


def _any(app: Any, where: Any) -> bool:
    with transaction(app.sessions) as s:
        return s.scalar(select(JourneyRun.id).where(where).limit(1)) is not None


class _Watch:
    """Session hooks: after each commit, the lags of the runs it advanced (from their due time to the commit, on
    `clock`), the transitions it logged, and the wall time since `epoch`."""

    def __init__(self, clock: Any, report: Any, epoch: float) -> None:
        self.clock, self.report, self.epoch = clock, report, epoch
        self.pending: dict[int, tuple[list[tuple[int, datetime]], int]] = {}

    def listen(self, sessions: Any) -> None:
        sa_event.listen(sessions, "before_commit", self.before)
        sa_event.listen(sessions, "after_commit", self.after)
        sa_event.listen(sessions, "after_rollback", self.rollback)

    def before(self, session: Any) -> None:
        self.pending[id(session)] = (session.info.pop(CLAIMED, []), session.info.pop(LOGGED, 0))

    def after(self, session: Any) -> None:
        claimed, logged = self.pending.pop(id(session), ([], 0))
        if claimed or logged:
            now = self.clock.now()
            self.report([(now - due).total_seconds() for _, due in claimed], logged, time.time() - self.epoch)

    def rollback(self, session: Any) -> None:
        self.pending.pop(id(session), None)
        session.info.pop(CLAIMED, None)
        session.info.pop(LOGGED, None)


def baseline(target: Target, copy: Target) -> float:
    """The step log rows the run wrote, copied with the driver's executemany into `copy` (the database before the
    run): the plain insert of the same rows, read in chunks (a million customers' rows do not fit in memory at
    once; the reads are not timed). Returns its wall seconds."""
    wall, sql = 0.0, insert_sql(copy, "journey_steps", STEP_COLUMNS)
    with target.raw() as conn:
        cur = conn.cursor(name="steps") if target.backend == "postgres" else conn.cursor()
        cur.execute(f"SELECT {', '.join(STEP_COLUMNS)} FROM journey_steps ORDER BY id")
        while rows := cur.fetchmany(200_000):
            wall += driver_executemany(copy, sql, [tuple(r) for r in rows], 20_000, lambda k: None)[0]
    return wall


# --- lag --------------------------------------------------------------------------------------------------------

def lag(target: Target, workers: int, rate: int, seconds: int, progress: Any) -> Lag:
    n = rate * seconds
    task = progress.add_task(f"{target.backend}: {n:,} customers entering at {rate:,}/s, {workers} worker "
                             f"process{'es' if workers > 1 else ''}", total=STEPS * n)
    lags: list[float] = []
    stamps: list[tuple[float, int]] = []

    def got(data: tuple[list[float], int, float]) -> None:
        lags.extend(data[0])
        stamps.append((data[2], data[1]))
        progress.advance(task, data[1])

    guard = seconds + 2 * 60 + 600  # never hang: give up 10 minutes after the last run's last due time
    wall, _ = _processes(target.url, workers, _lag_worker, (START, guard), got, shared_epoch=True)
    with target.raw() as conn:
        left = conn.execute("SELECT count(*) FROM journey_runs WHERE state = 'active'").fetchone()[0]
    lo, hi = 2 * 60 + 3, seconds + 3  # entries and both waits' ends overlap: the steady stretch
    steady = sum(k for at, k in stamps if lo <= at <= hi) / (hi - lo) if hi > lo else math.nan
    return Lag(workers, rate, n, wall, lags + [math.inf] * (3 * left), steady, left)


def _lag_worker(url: str, report: Any, at: datetime, guard: float, epoch: float) -> float:
    """`retento worker`'s loop (`core.worker.Worker.run`: each round the journeys job's fair slice, a round that
    found nothing waits for the wakeup, the next run's due time or the poll interval, at the default settings)
    with only the journeys job as the app installed it; it stops once no run is active (checked twice a second
    outside the worker's sessions)."""
    clock = WallClock(at, epoch)
    app = _worker_app(url, clock)
    try:
        _Watch(clock, lambda lags, logged, at: report((lags, logged, at)), epoch).listen(app.sessions)
        worker = app.worker.only("journeys")
        stop = threading.Event()

        def until_done() -> None:
            active = select(JourneyRun.id).where(JourneyRun.state == ACTIVE).limit(1)
            while not stop.wait(0.5):
                with app.engine.connect() as conn:
                    if time.time() - epoch >= guard or conn.execute(active).first() is None:
                        stop.set()
                        app.bus.wakeup.set()

        watcher = threading.Thread(target=until_done, daemon=True)
        cpu = time.process_time()
        watcher.start()
        worker.run(stop)
        watcher.join()
        return time.process_time() - cpu
    finally:
        app.close()


# --- processes --------------------------------------------------------------------------------------------------

def _processes(url: str, workers: int, target: Any, args: tuple, report: Any, *,
               shared_epoch: bool = False) -> tuple[float, float]:
    """`workers` spawned processes running `target(url, report, *args[, epoch])`, started together; their reports
    come back through a queue. Returns (wall s from the start to the last one done, CPU s of all)."""
    ctx = multiprocessing.get_context("spawn")
    queue, go = ctx.Queue(), ctx.Event()
    epoch = ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_process, args=(url, target, args, shared_epoch, epoch, go, queue), daemon=True)
             for _ in range(workers)]
    for p in procs:
        p.start()
    ready, cpu, finished = 0, 0.0, 0
    try:
        while ready < workers:
            kind, *data = queue.get(timeout=300)
            if kind == "error":
                raise RuntimeError(f"bench journeys: a worker process failed: {data[0]}")
            ready += kind == "ready"
        epoch.value = time.time()
        go.set()
        while finished < workers:
            try:
                kind, *data = queue.get(timeout=0.5)
            except Empty:
                if not any(p.is_alive() for p in procs):
                    raise RuntimeError("bench journeys: the worker processes died") from None
                continue
            if kind == "report":
                report(data[0])
            elif kind == "cpu":
                cpu += data[0]
                finished += 1
                wall = time.time() - epoch.value
            elif kind == "error":
                raise RuntimeError(f"bench journeys: a worker process failed: {data[0]}")
        return wall, cpu
    finally:
        go.set()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()


def _process(url: str, target: Any, args: tuple, shared_epoch: bool, epoch: Any, go: Any, queue: Any) -> None:
    try:
        queue.put(("ready",))
        go.wait()
        extra = (epoch.value,) if shared_epoch else ()
        queue.put(("cpu", target(url, lambda d: queue.put(("report", d)), *args, *extra)))
    except BaseException as exc:  # noqa: BLE001 - tell the parent instead of leaving it waiting
        queue.put(("error", repr(exc)))
        raise
