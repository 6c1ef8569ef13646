"""The durable-work primitive (retento.core.work) over a table of its own, on both databases: claims, leases
and their fencing, attempts, backoff, dead letters and what operators do with them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, insert, select

from retento.bootstrap import bootstrap
from retento.core import work
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.core.db.types import UTCDateTime
from retento.orders import service as orders
from retento.triggers import service as triggers
from retento.triggers.actions import ActionContext, action
from retento.triggers.models import Run, Timer
from retento.triggers.wiring import engine_of
from tests import factories as f

META = MetaData()
JOBS = Table("work_test_jobs", META,
             Column("id", Integer, primary_key=True), Column("state", String(16), nullable=False),
             Column("due_at", UTCDateTime(), nullable=False), Column("attempts", Integer, nullable=False, default=0),
             Column("last_error", Text), Column("lease_token", String(32)), Column("lease_owner", String(64)),
             Column("lease_until", UTCDateTime()), Column("payload", String(32)))
QUEUE = work.Queue(name="jobs", table=JOBS, label="test jobs", in_flight=("calling",), also_dead=("unsure",),
                   max_attempts=3, backoff=work.Backoff(base=10, cap=25), lease=timedelta(seconds=60))


@pytest.fixture
def jobs(app):
    META.drop_all(app.engine)
    META.create_all(app.engine)
    yield app
    META.drop_all(app.engine)


def _add(app, n: int, **kw) -> None:
    now = app.clock.now()
    with transaction(app.sessions) as s:
        s.execute(insert(JOBS), [{"state": "pending", "due_at": now, "attempts": 0, "payload": f"p{i}", **kw}
                                 for i in range(n)])


def _claim(app, limit: int = 10, owner: str = "w1") -> work.Lease:
    with transaction(app.sessions) as s:
        return work.claim(s, QUEUE, now=app.clock.now(), limit=limit, owner=owner, columns=["payload"])


def _rows(app) -> dict[int, dict]:
    with transaction(app.sessions) as s:
        return {r.id: dict(r._mapping) for r in s.execute(select(JOBS))}


def test_a_claim_leases_due_rows_with_a_token_and_others_skip_them(jobs):
    app = jobs
    _add(app, 3)
    _add(app, 1, due_at=app.clock.now() + timedelta(hours=1))
    first = _claim(app, limit=2)
    assert first.ids == [1, 2] and [r.payload for r in first.rows] == ["p0", "p1"]
    second = _claim(app, owner="w2")
    assert second.ids == [3] and second.token != first.token
    assert _claim(app).ids == []  # the fourth is not due yet
    row = _rows(app)[1]
    assert (row["state"], row["attempts"], row["lease_token"], row["lease_owner"]) == ("running", 1, first.token, "w1")
    assert row["lease_until"] == app.clock.now() + timedelta(seconds=60)


def test_a_lease_that_ran_out_is_taken_over_and_the_old_holder_changes_nothing(jobs):
    app = jobs
    _add(app, 2)
    old = _claim(app)
    app.clock.advance(seconds=61)
    new = _claim(app, owner="w2")
    assert new.ids == [1, 2]
    with transaction(app.sessions) as s:
        assert work.renew(s, old, now=app.clock.now()) == set()
        assert work.move(s, old, [1], state="calling") == set()
        assert work.complete(s, old, [1, 2]) == set()
        assert work.fail(s, old, {1: work.Failure("late")}, now=app.clock.now()) == work.Failed()
    rows = _rows(app)
    assert {r["state"] for r in rows.values()} == {"running"} and rows[1]["attempts"] == 2
    with transaction(app.sessions) as s:
        assert work.complete(s, new, [1, 2]) == {1, 2}
    assert {(r["state"], r["lease_token"]) for r in _rows(app).values()} == {("done", None)}


def test_a_renewed_lease_is_not_taken_over(jobs):
    app = jobs
    _add(app, 2)
    lease = _claim(app)
    app.clock.advance(seconds=15)
    assert not lease.due_for_renewal(app.clock.now())
    app.clock.advance(seconds=10)
    assert lease.due_for_renewal(app.clock.now())
    with transaction(app.sessions) as s:
        assert work.renew(s, lease, now=app.clock.now()) == {1, 2}
    app.clock.advance(seconds=50)  # 75 s after the claim, 50 s after the renewal
    assert _claim(app, owner="w2").ids == []
    with transaction(app.sessions) as s:
        assert work.complete(s, lease, [1]) == {1}


def test_failures_back_off_then_go_dead_with_the_last_error(jobs):
    app = jobs
    _add(app, 1)
    waits = []
    for attempt in range(1, 4):
        lease = _claim(app)
        assert lease.ids == [1]
        with transaction(app.sessions) as s:
            failed = work.fail(s, lease, {1: work.Failure(f"boom {attempt}")}, now=app.clock.now())
        row = _rows(app)[1]
        if attempt < 3:
            assert failed.retried == {1} and row["state"] == "pending" and row["lease_token"] is None
            waits.append((row["due_at"] - app.clock.now()).total_seconds())
            assert _claim(app).ids == []  # not before its time
            app.clock.set(row["due_at"])
        else:
            assert failed.dead == {1}
    assert waits == [10, 20]  # base, doubled; the cap (25) would hold the next
    assert work.Backoff(base=10, cap=25).delay(3) == timedelta(seconds=25)
    row = _rows(app)[1]
    assert (row["state"], row["attempts"], row["last_error"]) == ("dead", 3, "boom 3")


def test_a_permanent_error_is_dead_at_once_and_retry_after_is_honoured(jobs):
    app = jobs
    _add(app, 2)
    lease = _claim(app)
    with transaction(app.sessions) as s:
        failed = work.fail(s, lease, {1: work.Failure("400 bad", permanent=True),
                                      2: work.Failure("429", retry_after=7)}, now=app.clock.now())
    assert (failed.dead, failed.retried) == ({1}, {2})
    rows = _rows(app)
    assert rows[1]["state"] == "dead" and rows[2]["due_at"] == app.clock.now() + timedelta(seconds=7)


def test_in_flight_rows_of_a_lost_lease_are_reaped_and_the_holder_may_still_settle_them(jobs):
    app = jobs
    _add(app, 3)
    lease = _claim(app)
    with transaction(app.sessions) as s:
        assert work.move(s, lease, [1, 2], state="calling") == {1, 2}
    with transaction(app.sessions) as s:
        assert work.reap(s, QUEUE, now=app.clock.now(), state="calling", to="unsure", release=False) == []
    app.clock.advance(seconds=61)
    with transaction(app.sessions) as s:
        assert work.reap(s, QUEUE, now=app.clock.now(), state="calling", to="unsure", release=False,
                         where=JOBS.c.id == 1) == [1]
        assert work.reap(s, QUEUE, now=app.clock.now(), state="calling", to="pending", release=True) == [2]
    assert sorted(_claim(app, owner="w2").ids) == [2, 3]  # the released one, the one never started
    with transaction(app.sessions) as s:  # the first holder comes back with the answer of the unsure one
        assert work.complete(s, lease, [1, 2], also_from=("unsure",)) == {1}
    rows = _rows(app)
    assert [rows[i]["state"] for i in (1, 2, 3)] == ["done", "running", "running"]


def test_operators_see_queues_and_retry_or_drop_dead_letters(jobs):
    app = jobs
    _add(app, 4)
    _add(app, 1, due_at=app.clock.now() + timedelta(days=1))
    lease = _claim(app, limit=3)
    with transaction(app.sessions) as s:
        work.fail(s, lease, {1: work.Failure("gone", permanent=True)}, now=app.clock.now())
        work.move(s, lease, [2], state="calling")
    app.clock.advance(seconds=30)
    with transaction(app.sessions) as s:
        st = work.stats(s, QUEUE, now=app.clock.now())
    assert (st.due, st.later, st.leased, st.expired, st.dead) == (1, 1, 2, 0, 1)
    assert st.oldest_due == app.clock.now() - timedelta(seconds=30)
    app.clock.advance(seconds=60)
    with transaction(app.sessions) as s:
        st = work.stats(s, QUEUE, now=app.clock.now())
        work.reap(s, QUEUE, now=app.clock.now(), state="calling", to="unsure", release=False)
        letters = work.dead_letters(s, QUEUE)
    assert (st.leased, st.expired) == (0, 2)
    assert [(d["id"], d["state"], d["error"]) for d in letters] == [(1, "dead", "gone"), (2, "unsure", None)]
    with transaction(app.sessions) as s:
        assert work.retry(s, QUEUE, [1, 3], now=app.clock.now()) == [1]  # 3 is not dead: left alone
        assert work.drop(s, QUEUE, [2], now=app.clock.now()) == [2]
    rows = _rows(app)
    assert 2 not in rows and (rows[1]["state"], rows[1]["attempts"], rows[1]["lease_token"]) == ("pending", 0, None)


def test_locked_rows_are_skipped_by_another_transaction(jobs, db_url):
    app = jobs
    _add(app, 3)
    with transaction(app.sessions) as s:
        first = work.locked(s, QUEUE, now=app.clock.now(), limit=2, columns=["payload"])
        assert [(r.id, r.payload) for r in first] == [(1, "p0"), (2, "p1")]
        if db_url.startswith("postgresql"):  # SQLite has one writer: the other transaction would wait
            with app.sessions() as other, other.begin():
                assert [r.id for r in work.locked(other, QUEUE, now=app.clock.now(), limit=5)] == [3]


def test_drain_runs_batches_until_one_comes_back_short():
    sizes = iter([5, 5, 2, 5])
    calls = []

    def step() -> int:
        calls.append(1)
        return next(sizes)

    assert work.drain(step, batch=5) == 12 and len(calls) == 3


class _Ticking(FrozenClock):
    """A frozen clock that, once armed, moves one second each time it is read (work takes time)."""

    armed = False

    def now(self):
        if self.armed:
            self.advance(seconds=1)
        return super().now()


def test_a_delayed_run_stores_when_it_was_finished_not_when_it_was_claimed(db_url):
    clock = _Ticking("2026-03-02T09:00:00+00:00")
    app = bootstrap(Settings(database_url=db_url), clock=clock)
    try:
        f.site(app)
        with transaction(app.sessions) as s:
            triggers.create_trigger(s, raw={"name": "later", "events": ["order_created"], "delay": {"minutes": 17},
                                            "actions": [{"type": "add_tag", "target": "order", "tag": "late"}]},
                                    now=clock.now())
        f.order(app)
        app.worker.tick()
        clock.advance(minutes=17)
        clock.armed = True
        assert engine_of(app).fire_due() == 1
        clock.armed = False
        with transaction(app.sessions) as s:
            (timer,) = s.scalars(select(Timer)).all()
            fired = s.scalars(select(Run).where(Run.phase == "fire")).one()
        assert timer.state == "done" and timer.finished_at > fired.at  # not the batch's claim time
    finally:
        app.close()


class _Explode(BaseModel):
    """A test action that breaks (not a refusal: an error no action expects) for one order number."""

    model_config = ConfigDict(extra="forbid")
    number: str


def _explode(a: ActionContext, p: _Explode) -> dict:
    if a.need_order().number == p.number:
        raise RuntimeError(f"order {p.number} broke the action")
    return {}


def test_a_delayed_run_that_breaks_its_batch_goes_alone_then_is_retried_and_failed(app, clock):
    """The batch breaks: each run goes again on its own, so the others fire; the broken one is retried after
    1, 2, 4, 8 minutes and then failed with the error, a dead letter an operator can retry."""
    app.parts.actions.add("explode", action("explode", _Explode, _explode), replace=True)
    f.site(app)
    with transaction(app.sessions) as s:
        triggers.create_trigger(s, raw={"name": "later", "events": ["order_created"], "delay": {"minutes": 10},
                                        "actions": [{"type": "explode", "number": "BAD"},
                                                    {"type": "add_tag", "target": "order", "tag": "late"}]},
                                now=clock.now())
    ids = [f.order(app, number=n) for n in ("A-1", "BAD", "A-3")]
    app.worker.tick()
    clock.advance(minutes=10)
    assert engine_of(app).fire_due() == 3

    def timers():
        with transaction(app.sessions) as s:
            return {t.order_id: t for t in s.scalars(select(Timer))}

    def tags(order_id):
        with transaction(app.sessions) as s:
            return orders.get(s, order_id).tags

    assert [tags(i) for i in ids] == [["late"], [], ["late"]]
    bad = timers()[ids[1]]
    assert (bad.state, bad.attempts, bad.reason) == ("pending", 1, "RuntimeError: order BAD broke the action")
    waits = []
    while timers()[ids[1]].state == "pending":
        waits.append((timers()[ids[1]].due_at - clock.now()).total_seconds())
        clock.set(timers()[ids[1]].due_at)
        engine_of(app).fire_due()
    assert waits == [60, 120, 240, 480]
    bad = timers()[ids[1]]
    assert (bad.state, bad.attempts, bad.finished_at) == ("failed", 5, clock.now())
    with transaction(app.sessions) as s:
        q = app.work["trigger_timers"]
        assert work.stats(s, q, now=clock.now()).dead == 1
        assert [d["id"] for d in work.dead_letters(s, q)] == [bad.id]
        assert work.retry(s, q, [bad.id], now=clock.now()) == [bad.id]
    assert (timers()[ids[1]].state, timers()[ids[1]].attempts) == ("pending", 0)


def test_due_in_is_the_wait_until_the_earliest_waiting_row_falls_due(jobs):
    app = jobs
    now = app.clock.now()
    assert work.due_in(app.sessions, QUEUE, now=now) is None  # nothing waits
    _add(app, 1, due_at=now + timedelta(seconds=90))
    _add(app, 1, due_at=now + timedelta(seconds=30), state="done")  # finished work is not waited for
    assert work.due_in(app.sessions, QUEUE, now=now) == 90.0
    _add(app, 1, due_at=now - timedelta(seconds=5))
    assert work.due_in(app.sessions, QUEUE, now=now) == -5.0  # due now: an idle worker looks again at once
