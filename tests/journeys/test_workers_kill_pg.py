"""Each step once under crashes: 10,000 new customers go through a 5-step journey (task, wait an hour, tag, wait an
hour, task) done by 4 `retento worker` processes on PostgreSQL that are killed with SIGKILL at random moments and
started again; afterwards every step's effect exists exactly once per customer.

The workers' frozen clock moves one hour on at each wave, so each wave's steps (the entries and the first task,
the tag, the last task) are interrupted by kills at random points of their progress however fast the machine is.
The worker harness is the trigger engine's kill test's."""

from __future__ import annotations

import random
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from retento.bootstrap import bootstrap
from retento.core.changes import ChangeContext, Source
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.customers.models import CustomerTag
from retento.customers.schemas import CustomerCreate
from retento.history.models import HistoryEntry
from retento.journeys.models import JourneyRun, JourneyStep
from retento.tasks.models import Task
from tests import factories as f
from tests.conftest import _truncate_pg
from tests.integration.test_trigger_workers_pg import DEADLINE, WORKERS, _count, _Worker
from tests.journeys.helpers import save

N = 10_000
KILLS_PER_WAVE = 3
JOURNEY = {"name": "kill-test", "site": "shop", "entry": {"kind": "customer_created"}, "steps": [
    {"id": "first", "type": "create_task", "title": "First call {{ customer.id }}", "assignee": None,
     "next": "pause1"},
    {"id": "pause1", "type": "wait", "hours": 1, "next": "tag"},
    {"id": "tag", "type": "add_tag", "tag": "in-journey", "next": "pause2"},
    {"id": "pause2", "type": "wait", "hours": 1, "next": "last"},
    {"id": "last", "type": "create_task", "title": "Last call {{ customer.id }}", "assignee": None}]}
# step log rows when each wave is through: entered, first task done and waiting; tagged and waiting; last task
GOALS = (2 * N, 4 * N, 5 * N)


@pytest.mark.postgres
@pytest.mark.slow
def test_four_workers_killed_at_random_do_each_journey_step_exactly_once(pg_url, tmp_path):
    _truncate_pg(pg_url)
    clock = FrozenClock("2026-03-02T09:00:00+00:00")
    app = bootstrap(Settings(database_url=pg_url), clock=clock)
    try:
        f.site(app)
        journey_id = save(app, JOURNEY)
        for start in range(0, N, 1000):  # a shop importing its new customers: N customer_created events
            with transaction(app.sessions) as s:
                customers.create_many(s, items=[CustomerCreate(site="shop", first_name=f"C{i}")
                                                for i in range(start, start + 1000)],
                                      ctx=ChangeContext.system(Source.API), now=clock.now())

        kills, rng, started = 0, random.Random(17), time.monotonic()
        steps_q = select(func.count()).select_from(JourneyStep)

        def wait_until(goal: int) -> int:
            while (done := _count(app, steps_q)) < goal:
                assert time.monotonic() - started < DEADLINE, (
                    f"workers did not finish in time: {done} of {GOALS[-1]} steps logged, {kills} kills")
                time.sleep(0.05)
            return done

        for wave, goal in enumerate(GOALS):
            now = (clock.now() + timedelta(hours=wave, minutes=1)).isoformat()
            workers = [_Worker(pg_url, now, tmp_path) for _ in range(WORKERS)]
            before = GOALS[wave - 1] if wave else 0
            try:
                for share in sorted(rng.uniform(0.05, 0.9) for _ in range(KILLS_PER_WAVE)):
                    wait_until(before + int(share * (goal - before)))
                    ready = [w for w in workers if w.working_for() > 0] or workers
                    rng.choice(ready).restart(kill=True)  # mostly mid-transaction
                    kills += 1
                assert wait_until(goal) == goal, "a wait ended early"
                if wave < len(GOALS) - 1:  # nothing more is due until the clock moves on
                    time.sleep(0.5)
                    assert _count(app, steps_q) == goal
            finally:
                for w in workers:
                    w.stop()
        assert kills == len(GOALS) * KILLS_PER_WAVE

        assert _count(app, select(func.count()).select_from(JourneyRun)) == N
        assert _count(app, select(func.count()).where(JourneyRun.state == "finished")) == N
        assert _count(app, select(func.count(func.distinct(JourneyRun.customer_id)))) == N
        assert _count(app, select(func.count()).where(JourneyStep.journey_id == journey_id)) == 5 * N
        assert _count(app, select(func.count()).where(JourneyStep.left_at.is_(None))) == 0
        assert _count(app, select(func.count()).select_from(Task)) == 2 * N
        assert _count(app, select(func.count(func.distinct(Task.title)))) == 2 * N
        assert _count(app, select(func.count()).where(CustomerTag.tag == "in-journey")) == N
        assert _count(app, select(func.count()).where(HistoryEntry.field == "tags",
                                                      HistoryEntry.actor_id == f"journey:{journey_id}")) == N
    finally:
        app.close()
        _truncate_pg(pg_url)
