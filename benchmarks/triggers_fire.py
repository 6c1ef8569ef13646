"""`retento bench triggers`, part (2): fire lag of delayed runs falling due at a fixed rate, the real worker loop
on a clock that advances with wall time (see `benchmarks.triggers`)."""

from __future__ import annotations

import math
import multiprocessing
import threading
import time
from datetime import datetime, timedelta
from queue import Empty
from typing import Any

from sqlalchemy import event as sa_event, select

from benchmarks.targets import Autovacuum, Target
from benchmarks.triggers_setup import (
    FIRE_START,
    TIMER_COLUMNS,
    DriverTime,
    driver_executemany,
    driver_rows,
    insert_sql,
    outcomes_of,
    skip_other_subscribers,
)
from retento.bootstrap import App, bootstrap, configure_process, settle_process
from retento.core.bus import Event
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.triggers import timers
from retento.triggers.models import Timer
from retento.triggers.wiring import engine_of


class WallClock:
    """A clock that reads `at` at the wall time `epoch` (`time.time()`, the same in every worker process) and
    then advances with wall time."""

    def __init__(self, at: datetime, epoch: float) -> None:
        self._at, self._epoch = at, epoch

    def now(self) -> datetime:
        return self._at + timedelta(seconds=time.time() - self._epoch)



def _timer_rows(app: App, n: int, rate: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """n timers due at `rate` per second: the pending runs part (1) scheduled (moved to their slots; their
    condition held on the event, so many act when they fire), and more of the delayed triggers, each on an event
    of a type its trigger listens to. Returns (new rows, moved rows {id, due_at, created_at})."""
    with transaction(app.sessions) as s:
        delayed = [(t.id, t.spec.events[0], t.spec.event_names) for t in engine_of(app).triggers(s).values()
                   if t.spec.delay is not None]
        by_type: dict[tuple[str, str | None], list[tuple[int, int | None, int | None]]] = {}
        for ev_id, typ, name, order_id, customer_id in s.execute(
                select(Event.id, Event.type, Event.name, Event.order_id, Event.customer_id).where(Event.depth == 0)):
            by_type.setdefault((typ, name), []).append((ev_id, order_id, customer_id))
        seen = set(s.execute(select(Timer.trigger_id, Timer.event_id)).tuples())  # scheduled by part (1)
        existing = list(s.scalars(select(Timer.id).where(Timer.state == "pending").order_by(Timer.id).limit(n)))
    start = FIRE_START + timedelta(seconds=2)
    slots = [start + timedelta(seconds=k / rate) for k in range(n)]
    taken = {j * n // len(existing) for j in range(len(existing))} if existing else set()
    moved = [{"due_at": slots[j * n // len(existing)], "created_at": FIRE_START, "id": timer_id}
             for j, timer_id in enumerate(existing)]
    free = [slots[k] for k in range(n) if k not in taken]
    rows: list[dict[str, Any]] = []
    i = 0
    while len(rows) < len(free) and i < 3 * n:
        trigger_id, typ, names = delayed[i % len(delayed)]
        pool = by_type.get((typ, names[0] if names else None)) or []
        i += 1
        if not pool:
            continue
        ev_id, order_id, customer_id = pool[(i // len(delayed)) % len(pool)]
        if (trigger_id, ev_id) in seen:
            continue
        seen.add((trigger_id, ev_id))
        entity, entity_id = ("order", order_id) if order_id is not None else ("customer", customer_id)
        rows.append({"trigger_id": trigger_id, "entity": entity, "entity_id": entity_id, "customer_id": customer_id,
                     "order_id": order_id, "event_id": ev_id, "state": "pending", "created_at": FIRE_START,
                     "due_at": free[len(rows)]})
    return rows, moved


def fire(target: Target, *, n_timers: int, rate: int, progress: Any, workers: int = 1) -> dict[str, Any]:
    """Part (2): `workers` processes (1: this one) each run the real worker loop until every timer is done."""
    setup = bootstrap(Settings(database_url=target.url), clock=FrozenClock(FIRE_START))
    try:
        new, moved = _timer_rows(setup, n_timers, rate)
        skip_other_subscribers(setup)
    finally:
        setup.close()
    task = progress.add_task(f"{target.backend}: {len(new) + len(moved):,} pending timers ({len(moved):,} "
                             "scheduled by the events)", total=len(new) + len(moved))
    mark = "?" if target.backend == "sqlite" else "%s"
    driver_executemany(target, insert_sql(target, "trigger_timers", TIMER_COLUMNS),
                        driver_rows(target, new, TIMER_COLUMNS), 20_000, lambda k: progress.advance(task, k))
    driver_executemany(target, f"UPDATE trigger_timers SET due_at = {mark}, created_at = {mark} WHERE id = {mark}",
                        driver_rows(target, moved, ("due_at", "created_at", "id")), 20_000,
                        lambda k: progress.advance(task, k))
    target.analyze()  # as autovacuum would have, once the pending runs were in
    total = len(new) + len(moved)
    window = (FIRE_START + timedelta(seconds=2), FIRE_START + timedelta(seconds=2 + n_timers / rate))
    task = progress.add_task(f"{target.backend}: firing {total:,} timers at {rate:,}/s, {workers} worker "
                             f"process{'es' if workers > 1 else ''}", total=total)
    tally = _Tally(total, lambda k: progress.advance(task, k))
    guard_s = total / rate + 600  # never hang: give up 10 minutes after the last due time
    with Autovacuum(target) as autovacuum:
        fire_s, fire_cpu, fire_driver_s = _fire_all(target, window, workers, tally, guard_s)
    report = bootstrap(Settings(database_url=target.url), clock=FrozenClock(FIRE_START))
    try:
        outcomes = outcomes_of(report, "fire")
        if tally.done < total:  # the run gave up (10 minutes after the last due time): their lag is unbounded
            outcomes["not fired when the run gave up"] = total - tally.done
        return {"timers": total, "rate": rate, "fire_workers": workers, "fire_s": fire_s, "fire_cpu": fire_cpu,
                "fire_driver_s": fire_driver_s, "lags": tally.lags + [math.inf] * (total - tally.done),
                "fire_outcomes": outcomes, "fire_vacuums": (autovacuum.count, autovacuum.seconds)}
    finally:
        report.close()


def _fire_all(target: Target, window: tuple[datetime, datetime], workers: int, tally: _Tally,
              guard_s: float) -> tuple[float, float, float]:
    """(wall s, CPU s, driver s) of `workers` worker processes (1: this one) firing until every timer is done."""
    if workers == 1:
        stop = threading.Event()
        tally.on_done = stop.set
        guard = threading.Timer(guard_s, stop.set)
        guard.start()
        try:
            epoch = time.time()
            fire_cpu, fire_driver_s = _fire_worker(target.url, window, epoch, stop, tally.add)
            fire_s = time.time() - epoch
        finally:
            guard.cancel()
        return fire_s, fire_cpu, fire_driver_s
    return _fire_processes(target.url, window, workers, tally, guard_s)


class _Tally:
    """Timers done and their lags, from one worker or reported by several."""

    def __init__(self, total: int, tick: Any) -> None:
        self.total, self.tick, self.done, self.lags = total, tick, 0, []
        self.on_done: Any = None

    def add(self, done: int, lags: list[float]) -> None:
        self.done += done
        self.lags += lags
        self.tick(done)
        if self.done >= self.total and self.on_done is not None:
            self.on_done()


def _fire_worker(url: str, window: tuple[datetime, datetime], epoch: float, stop: Any,
                 report: Any) -> tuple[float, float]:
    """One worker (`Worker.run`, every job) on a wall clock that reads FIRE_START at `epoch` (shared by all the
    worker processes); reports (timers done, lags) after each commit that finished some. Returns its (CPU s,
    driver s)."""
    clock = WallClock(FIRE_START, epoch)
    settings = Settings(database_url=url)  # the defaults of `retento worker`
    configure_process(settings)  # as `retento worker`: its GC threshold, and what is built so far frozen
    app = bootstrap(settings, clock=clock)
    settle_process()
    try:
        watch = _LagWatch(clock, window, report)
        sa_event.listen(app.sessions, "before_commit", watch.before_commit)
        sa_event.listen(app.sessions, "after_commit", watch.after_commit)
        sa_event.listen(app.sessions, "after_rollback", watch.after_rollback)
        driver, cpu = DriverTime(app.engine), time.process_time()
        try:
            app.worker.run(stop)
        finally:
            driver.close()
        return time.process_time() - cpu, driver.seconds
    finally:
        app.close()


def _fire_processes(url: str, window: tuple[datetime, datetime], workers: int, tally: _Tally,
                    guard_s: float) -> tuple[float, float, float]:
    """`workers` worker processes (spawned, each with its own engine) started together; their reports come back
    through a queue. Returns (wall s from the shared start to the last timer done, CPU s and driver s of all
    workers)."""
    ctx = multiprocessing.get_context("spawn")
    queue, stop, go = ctx.Queue(), ctx.Event(), ctx.Event()
    epoch = ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_worker_process, args=(url, window, epoch, go, stop, queue), daemon=True)
             for _ in range(workers)]
    for p in procs:
        p.start()
    ready, cpu, driver_s, finished = 0, 0.0, 0.0, 0
    try:
        while ready < workers:
            kind, *data = queue.get(timeout=120)
            if kind == "ready":
                ready += 1
        epoch.value = time.time()
        go.set()
        deadline = epoch.value + guard_s
        while finished < workers:
            try:
                kind, *data = queue.get(timeout=0.5)
            except Empty:
                kind = None
            if kind == "lags":
                tally.add(*data)
                if tally.done >= tally.total:
                    stop.set()
                    fire_s = time.time() - epoch.value
            elif kind == "cpu":
                cpu += data[0]
                driver_s += data[1]
                finished += 1
            elif kind == "error":
                stop.set()
                raise RuntimeError(f"fire-lag bench: a worker process failed: {data[0]}")
            if time.time() > deadline or not any(p.is_alive() for p in procs):
                stop.set()
        if tally.done < tally.total:
            fire_s = time.time() - epoch.value
        return fire_s, cpu, driver_s
    finally:
        stop.set()
        go.set()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()


def _worker_process(url: str, window: tuple[datetime, datetime], epoch: Any, go: Any, stop: Any,
                    queue: Any) -> None:
    try:
        queue.put(("ready",))
        go.wait()
        queue.put(("cpu", *_fire_worker(url, window, epoch.value, stop,
                                        lambda done, lags: queue.put(("lags", done, lags)))))
    except BaseException as exc:  # noqa: BLE001 - tell the parent instead of leaving it waiting
        queue.put(("error", repr(exc)))
        raise


class _LagWatch:
    """Session hooks: the bench's timers (due within `window`) a transaction finished (`timers.FINISHED`),
    stamped with the commit's wall time. A timer cancelled before it was due (its order changed) counts as done
    but has no lag."""

    def __init__(self, clock: WallClock, window: tuple[datetime, datetime], report: Any) -> None:
        self._clock, (self._lo, self._hi), self._report = clock, window, report
        self._pending: dict[int, dict[int, tuple[datetime, datetime]]] = {}
        self._seen: set[int] = set()

    def before_commit(self, session: Any) -> None:
        finished = {i: (due, at) for i, due, at in session.info.pop(timers.FINISHED, ())
                    if self._lo <= due <= self._hi and i not in self._seen}
        if finished:
            self._pending[id(session)] = finished

    def after_commit(self, session: Any) -> None:
        finished = self._pending.pop(id(session), None)
        if not finished:
            return
        now = self._clock.now()
        self._seen.update(finished)
        self._report(len(finished), [(now - due).total_seconds() for due, at in finished.values() if at >= due])

    def after_rollback(self, session: Any) -> None:
        self._pending.pop(id(session), None)
        session.info.pop(timers.FINISHED, None)

