"""Exactly once under crashes: 4 worker processes on PostgreSQL fire 10,000 due delayed runs while they are
killed with SIGKILL at random moments and restarted; afterwards every effect exists exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from retento import bus
from retento.bootstrap import bootstrap
from retento.clock import FrozenClock
from retento.config import Settings
from retento.db import transaction
from retento.history.schemas import ChangeContext, Source
from retento.tasks.models import Task
from retento.triggers import service
from retento.triggers.models import Firing, Run, Timer
from tests import factories as f
from tests.conftest import _truncate_pg

N = 10_000
CUSTOMERS = 100
WORKERS = 4
DEADLINE = int(os.environ.get("RETENTO_TEST_WORKER_DEADLINE", "900"))  # seconds; ~1-2 min on an idle machine


class _Worker:
    """`retento worker` in a subprocess with the clock frozen at `now`; knows when it has started working."""

    rng = random.Random(5)

    def __init__(self, url: str, now: str, logs: Path) -> None:
        self.env = {**os.environ, "RETENTO_DATABASE_URL": url, "RETENTO_FROZEN_NOW": now,
                    "RETENTO_WORKER_POLL_SECONDS": "0.05", "RETENTO_TRIGGER_TIMER_BATCH": "50",
                    "RETENTO_EVENT_BATCH_SIZE": "100"}
        self.logs, self.spawned = logs, 0
        self.restart(kill=False)

    def restart(self, *, kill: bool) -> None:
        if kill:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.spawned += 1
        self.log = self.logs / f"worker-{id(self)}-{self.spawned}.log"
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "retento.worker"], env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=err)
        self.ready_at: float | None = None
        self.lifetime = self.rng.uniform(1.0, 4.0)

    def working_for(self) -> float:
        if self.ready_at is None:
            if b"worker started" not in self.log.read_bytes():
                return 0.0
            self.ready_at = time.monotonic()
        return time.monotonic() - self.ready_at

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _count(app, q):
    with transaction(app.sessions) as s:
        return s.scalar(q)


@pytest.mark.postgres
@pytest.mark.slow
def test_four_workers_killed_at_random_act_on_every_run_exactly_once(pg_url, tmp_path):
    _truncate_pg(pg_url)
    clock = FrozenClock("2026-03-02T09:00:00+00:00")
    app = bootstrap(Settings(database_url=pg_url), clock=clock)
    try:
        f.site(app)
        ids = [f.customer(app) for _ in range(CUSTOMERS)]
        with transaction(app.sessions) as s:
            service.create_trigger(s, raw={
                "name": "call-back", "events": ["custom"], "event_names": ["callback_requested"],
                "delay": {"minutes": 10},
                "actions": [{"type": "create_task", "title": "Call back (request {event.id})", "assignee": None}]},
                now=clock.now())
        with transaction(app.sessions) as s:  # a shop pushing 10,000 events in batches
            bus.record(s, [bus.event_row("custom", name="callback_requested", ctx=ChangeContext.system(Source.API),
                                         now=clock.now(), site_id=1, customer_id=ids[i % CUSTOMERS],
                                         payload={"n": i}) for i in range(N)])
        app.worker.tick()  # the trigger sees the events and schedules N delayed runs, not yet due
        assert _count(app, select(func.count()).where(Timer.state == "pending")) == N

        now = (clock.now() + timedelta(hours=1)).isoformat()  # for the workers every run is due
        workers = [_Worker(pg_url, now, tmp_path) for _ in range(WORKERS)]
        kills, rng, started = 0, random.Random(5), time.monotonic()
        done_q = select(func.count()).where(Timer.state == "done")
        try:
            while _count(app, done_q) < N:
                assert time.monotonic() - started < DEADLINE, (
                    f"workers did not finish in time: {_count(app, done_q)} of {N} runs done, {kills} kills")
                time.sleep(rng.uniform(1.0, 3.0))
                # SIGKILL one that has worked a random while (so mostly mid-transaction); a process takes
                # seconds to start on a busy machine, and killing it before it works would test nothing.
                ready = [w for w in workers if w.working_for() > w.lifetime]
                if ready:
                    rng.choice(ready).restart(kill=True)
                    kills += 1
        finally:
            for w in workers:
                w.stop()
        assert kills >= 5

        assert _count(app, select(func.count()).select_from(Timer)) == N
        assert _count(app, select(func.count()).select_from(Task)) == N
        assert _count(app, select(func.count(func.distinct(Task.title)))) == N
        assert _count(app, select(func.count()).select_from(Firing)) == N
        assert _count(app, select(func.count()).where(Run.phase == "fire", Run.outcome == "acted")) == N
        assert _count(app, select(func.count()).where(Task.source == "trigger")) == N
    finally:
        app.close()
        _truncate_pg(pg_url)
