"""`retento bench triggers`: the trigger engine under 100 active triggers, and delayed runs falling due.

(1) Evaluation: `events` generated events (a mix of order and customer events, custom events and
    subscriptions) are inserted with the plain driver (`sqlite3` / psycopg `executemany`, one transaction per
    bus batch): that insert is the baseline, timed. Then the trigger subscriber of the bus evaluates them,
    timed from the first batch to the last: every listening trigger's condition is checked on fresh data,
    matching immediate triggers act (tags, tasks, through the services, which record history and new events
    that are evaluated in turn), delayed ones schedule a timer, every evaluation leaves a run-log row.
(2) Fire lag: `timers` pending timers with due times spread at `rate` per second, starting two seconds after the
    worker starts: the runs part (1) scheduled (their condition held on the event), the rest inserted with the
    driver for the delayed triggers on events of the types they listen to (not timed). The real worker loop
    (`Worker.run`, every job) runs on a clock that advances with wall time. Lag of a timer = wall-clock
    time of the commit that marked it done / skipped / cancelled minus its due time.
Setup (site, customers, orders with items, triggers) is written before timing and is not timed.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from benchmarks.targets import Autovacuum, Target
from benchmarks.triggers_fire import fire
from benchmarks.triggers_setup import (
    COLUMNS,
    EVAL_NOW,
    WRITTEN,
    DriverTime,
    driver_executemany,
    driver_rows,
    generate_events,
    insert_sql,
    outcomes_of,
    row_counts,
    setup_data,
    skip_other_subscribers,
    trigger_definitions,
)
from retento.bootstrap import App, bootstrap, configure_process, settle_process
from retento.core.bus import Event, SubscriberCursor
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.migrate import migrate
from retento.triggers.wiring import engine_of

__all__ = ["Eval", "Result", "evaluate", "fire", "run", "trigger_definitions"]



@dataclass
class Eval:
    """Evaluation of the generated events by `processes` worker processes (a fresh copy of the data each)."""

    processes: int
    events: int  # generated events evaluated (trigger-caused events come on top: `extra_events`)
    extra_events: int
    eval_s: float
    eval_cpu: float  # summed over the processes
    eval_driver: dict[str, float]  # summed over the processes: inside the database driver (`DriverTime.parts`)
    written: dict[str, int]  # rows the evaluation added, per table (`WRITTEN`)
    outcomes: dict[str, int]
    vacuums: tuple[int, float] = (0, 0.0)  # PostgreSQL, autovacuum off: tables vacuumed / analyzed meanwhile

    @property
    def events_per_s(self) -> float:
        return self.events / self.eval_s

    @property
    def events_per_cpu_s(self) -> float:
        return self.events / self.eval_cpu

    @property
    def rows_per_event(self) -> float:
        return sum(self.written.values()) / self.events

    @property
    def eval_driver_s(self) -> float:
        return sum(self.eval_driver.values())

    @property
    def driver_ceiling(self) -> float:
        """Events/s if everything but the driver's statements took no time (the processes' statements running
        side by side): what the statements alone allow."""
        return self.events * self.processes / self.eval_driver_s if self.eval_driver_s else math.inf

    @property
    def of_ceiling(self) -> float:
        return self.events_per_s / self.driver_ceiling


@dataclass
class Result:
    backend: str
    version: str
    triggers: int
    events: int
    evals: list[Eval]
    insert_s: float
    insert_cpu: float
    timers: int
    rate: int
    fire_workers: int
    fire_s: float
    fire_cpu: float
    fire_driver_s: float  # summed over the worker processes
    lags: list[float] = field(repr=False)
    fire_outcomes: dict[str, int] = field(default_factory=dict)
    fire_vacuums: tuple[int, float] = (0, 0.0)

    def ratio(self, ev: Eval) -> float:
        """Evaluation time against the driver insert of the same events."""
        return ev.eval_s / self.insert_s

    def lag(self, q: float) -> float:
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")



# --- (1) evaluation --------------------------------------------------------------------------------------------

def evaluate(target: Target, *, n_events: int, n_triggers: int, progress: Any,
             processes: tuple[int, ...] = (1,)) -> tuple[dict[str, Any], list[Eval]]:
    """Set up, time the driver insert of the events, then evaluate them with each number of worker `processes`
    on a copy of the same database (the first number on `target` itself, which part (2) then uses)."""
    settings = Settings(database_url=target.url)
    app = bootstrap(settings, clock=FrozenClock(EVAL_NOW))
    try:
        migrate(app)
        setup = progress.add_task(f"{target.backend}: customers, orders, {n_triggers} triggers", total=None)
        site_id, orders = setup_data(app, max(100, n_events // 10), n_triggers)
        progress.update(setup, total=1, completed=1)
        rows = driver_rows(target, generate_events(n_events, site_id, orders), COLUMNS)
        task = progress.add_task(f"{target.backend}: driver insert of {n_events:,} events", total=n_events)
        insert_s, insert_cpu = driver_executemany(target, insert_sql(target, "events", COLUMNS), rows,
                                                   settings.event_batch_size, lambda k: progress.advance(task, k))
        del rows
        skip_other_subscribers(app)
        before = row_counts(app)
    finally:
        app.close()
    target.analyze()  # the copies start from the same statistics
    copies = [target] + [target.clone(f"p{k}") for k in processes[1:]]
    evals = []
    for k, copy in zip(processes, copies, strict=True):
        task = progress.add_task(f"{target.backend}: evaluating {n_events:,} events, {k} worker "
                                 f"process{'es' if k > 1 else ''}", total=n_events)
        with Autovacuum(copy) as autovacuum:
            wall, cpu, driver = _eval_processes(copy.url, k, lambda n, t=task: progress.advance(t, n))
        app = bootstrap(Settings(database_url=copy.url), clock=FrozenClock(EVAL_NOW))
        try:
            after = row_counts(app)
            evals.append(Eval(k, n_events, after["events"] - before["events"], wall, cpu, driver,
                              {t: after[t] - before[t] for t in WRITTEN}, outcomes_of(app, "event"),
                              (autovacuum.count, autovacuum.seconds)))
        finally:
            app.close()
    return {"events": n_events, "insert_s": insert_s, "insert_cpu": insert_cpu, "orders": orders}, evals


def _eval_processes(url: str, processes: int, tick: Any) -> tuple[float, float, dict[str, float]]:
    """`processes` spawned worker processes (each its own engine) dispatch the trigger subscriber's events
    until every partition has caught up with the last event. Returns (wall s from the shared start to the last
    process done, CPU s and the driver's s per part summed over the processes)."""
    ctx = multiprocessing.get_context("spawn")
    queue, go = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_eval_process, args=(url, go, queue), daemon=True) for _ in range(processes)]
    for p in procs:
        p.start()
    ready, finished, cpu, driver = 0, 0, 0.0, Counter()
    try:
        while ready < processes:
            kind, *data = queue.get(timeout=120)
            if kind == "error":
                raise RuntimeError(f"evaluation bench: a worker process failed: {data[0]}")
            ready += kind == "ready"
        start = time.perf_counter()
        go.set()
        while finished < processes:
            kind, *data = queue.get(timeout=600)
            if kind == "done":
                tick(data[0])
            elif kind == "end":
                finished += 1
                cpu += data[0]
                driver.update(data[1])
                wall = time.perf_counter() - start
            elif kind == "error":
                raise RuntimeError(f"evaluation bench: a worker process failed: {data[0]}")
        return wall, cpu, dict(driver)
    finally:
        go.set()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()


def _eval_process(url: str, go: Any, queue: Any) -> None:
    try:
        settings = Settings(database_url=url)
        configure_process(settings)  # the process settings of `retento worker` (its GC threshold)
        app = bootstrap(settings, clock=FrozenClock(EVAL_NOW))
        try:
            app.bus.dispatch(names=["triggers"], max_batches=0)  # the cursors exist before the clock starts
            with transaction(app.sessions) as s:  # triggers compiled before too (as a running worker has them)
                engine_of(app).triggers(s)
            settle_process()  # as `retento worker` does once its app is built
            queue.put(("ready",))
            go.wait()
            driver, cpu = DriverTime(app.engine), time.process_time()
            while True:
                done = app.bus.dispatch(names=["triggers"], max_batches=1)
                if done:
                    queue.put(("done", done))
                elif _caught_up(app):
                    break
                else:
                    time.sleep(0.005)  # every partition with work is held by another process
            driver.close()
            queue.put(("end", time.process_time() - cpu, driver.parts))
        finally:
            app.close()
    except BaseException as exc:  # noqa: BLE001 - tell the parent instead of leaving it waiting
        queue.put(("error", repr(exc)))
        raise


def _caught_up(app: App) -> bool:
    """Every cursor of the trigger subscriber is at the last event (no batch is under way that adds more)."""
    with transaction(app.sessions) as s:
        last = s.scalar(select(func.max(Event.id))) or 0
        lowest = s.scalar(select(func.min(SubscriberCursor.position)).where(
            SubscriberCursor.subscriber.in_(app.bus.cursors_of("triggers"))))
        return lowest is not None and lowest >= last


def run(target: Target, *, n_events: int, n_triggers: int, n_timers: int, rate: int, progress: Any,
        fire_workers: int = 1, eval_processes: tuple[int, ...] = (1,)) -> Result:
    ev, evals = evaluate(target, n_events=n_events, n_triggers=n_triggers, progress=progress,
                         processes=eval_processes)
    ev.pop("orders")
    fired = fire(target, n_timers=n_timers, rate=rate, progress=progress, workers=fire_workers) if n_timers else \
        {"timers": 0, "rate": rate, "fire_workers": fire_workers, "fire_s": 0.0, "fire_cpu": 0.0,
         "fire_driver_s": 0.0, "lags": []}
    return Result(target.backend, target.version, n_triggers, evals=evals, **ev, **fired)
