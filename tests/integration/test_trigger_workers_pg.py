"""Exactly once under crashes: 4 worker processes on PostgreSQL fire 10,000 due delayed runs while they are
killed with SIGKILL at random moments and restarted; afterwards every effect exists exactly once.

The runs fall due in waves (the workers' frozen clock moves one wave on at each restart), so every wave is
interrupted by kills at random points of its progress however fast the machine is."""

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

from retento.bootstrap import bootstrap
from retento.core import bus
from retento.core.changes import ChangeContext, Source
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.tasks.models import Task
from retento.triggers import service
from retento.triggers.models import Firing, Run, Timer
from tests import factories as f
from tests.conftest import _truncate_pg

N = 10_000
CUSTOMERS = 100
WORKERS = 4
WAVES = 5
KILLS_PER_WAVE = 2
DEADLINE = int(os.environ.get("RETENTO_TEST_WORKER_DEADLINE", "900"))  # seconds; ~1-2 min on an idle machine


class _Worker:
    """`retento worker` in a subprocess with the clock frozen at `now`; knows when it has started working."""

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
        per_wave = N // WAVES
        with transaction(app.sessions) as s:  # a shop pushing 10,000 events in batches, a wave an hour
            bus.record(s, [bus.event_row("custom", name="callback_requested", ctx=ChangeContext.system(Source.API),
                                         now=clock.now() + timedelta(hours=i // per_wave), site_id=1,
                                         customer_id=ids[i % CUSTOMERS], payload={"n": i}) for i in range(N)])
        app.worker.tick()  # the trigger sees the events and schedules N delayed runs, not yet due
        assert _count(app, select(func.count()).where(Timer.state == "pending")) == N

        kills, rng, started = 0, random.Random(5), time.monotonic()
        done_q = select(func.count()).where(Timer.state == "done")

        def wait_until(goal: int) -> int:
            while (done := _count(app, done_q)) < goal:
                assert time.monotonic() - started < DEADLINE, (
                    f"workers did not finish in time: {done} of {N} runs done, {kills} kills")
                time.sleep(0.02)
            return done

        for wave in range(WAVES):  # for the workers, this wave's runs (and the earlier ones) are due
            now = (clock.now() + timedelta(hours=wave, minutes=30)).isoformat()
            workers = [_Worker(pg_url, now, tmp_path) for _ in range(WORKERS)]
            try:
                for share in sorted(rng.uniform(0.05, 0.9) for _ in range(KILLS_PER_WAVE)):
                    wait_until(wave * per_wave + int(share * per_wave))
                    # SIGKILL one that has started working (so mostly mid-transaction) and start it again
                    ready = [w for w in workers if w.working_for() > 0] or workers
                    rng.choice(ready).restart(kill=True)
                    kills += 1
                assert wait_until((wave + 1) * per_wave) == (wave + 1) * per_wave, "a later wave fired early"
            finally:
                for w in workers:
                    w.stop()
        assert kills == WAVES * KILLS_PER_WAVE

        assert _count(app, select(func.count()).select_from(Timer)) == N
        assert _count(app, select(func.count()).select_from(Task)) == N
        assert _count(app, select(func.count(func.distinct(Task.title)))) == N
        assert _count(app, select(func.count()).select_from(Firing)) == N
        assert _count(app, select(func.count()).where(Run.phase == "fire", Run.outcome == "acted")) == N
        assert _count(app, select(func.count()).where(Task.source == "trigger")) == N
    finally:
        app.close()
        _truncate_pg(pg_url)
