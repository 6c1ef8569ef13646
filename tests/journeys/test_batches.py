"""Runs advanced together in one batch: a step the domain refuses for one run is logged failed for that run only
(the others' effects of the same kind are done, and every run goes on); each step's effect happens once even when
a batch is handled twice (a crash after the work, before the commit, rolls it all back)."""

from __future__ import annotations

from sqlalchemy import func, select

from retento.core.db.transactions import transaction
from retento.journeys.models import JourneyStep
from retento.journeys.wiring import runner_of
from retento.tasks.models import Task
from tests import factories as f
from tests.journeys import helpers as j

JOURNEY = {"name": "batch", "site": "shop", "entry": {"kind": "customer_created"}, "steps": [
    {"id": "call", "type": "create_task", "title": "{{ customer.first_name }}", "assignee": None, "next": "tag"},
    {"id": "tag", "type": "add_tag", "tag": "after-call", "next": "pause"},
    {"id": "pause", "type": "wait", "hours": 1, "next": "again"},
    {"id": "again", "type": "create_task", "title": "Again {{ customer.id }}", "assignee": None}]}


def _count(app, q) -> int:
    with transaction(app.sessions) as s:
        return s.scalar(q)


def test_a_refused_step_fails_for_its_run_only_and_every_run_goes_on(app, clock):
    f.site(app)
    jid = j.save(app, JOURNEY)
    named = [f.customer(app, first_name=f"Name{i}") for i in range(5)]
    nameless = f.customer(app, email="nobody@example.com")  # the task's title renders empty: tasks refuse it
    app.worker.tick()

    runs = j.runs(app, jid)
    assert len(runs) == 6 and {r.state for r in runs} == {"active"} and {r.step for r in runs} == {"pause"}
    by_customer = {r.customer_id: r for r in runs}
    assert j.path(app, by_customer[nameless].id)[:2] == [("call", "failed"), ("tag", "done")]
    for cid in named:
        assert j.path(app, by_customer[cid].id)[:2] == [("call", "created"), ("tag", "done")]
        assert "after-call" in j.tags(app, cid)
    assert "after-call" in j.tags(app, nameless)
    with transaction(app.sessions) as s:
        assert sorted(s.scalars(select(Task.title))) == [f"Name{i}" for i in range(5)]
        failed = s.scalar(select(JourneyStep.detail).where(JourneyStep.run_id == by_customer[nameless].id,
                                                           JourneyStep.step == "call"))
    assert "title" in failed["error"]

    clock.advance(hours=1, minutes=1)
    app.worker.tick()
    assert {r.state for r in j.runs(app, jid)} == {"finished"}
    assert _count(app, select(func.count()).select_from(Task)) == 5 + 6
    assert _count(app, select(func.count()).where(JourneyStep.journey_id == jid)) == 6 * 4


def test_a_batch_handled_again_after_a_rollback_does_each_step_once(app, clock):
    f.site(app)
    jid = j.save(app, JOURNEY)
    ids = [f.customer(app, first_name=f"N{i}") for i in range(3)]
    app.bus.dispatch()  # the customers enter; their runs are due
    runner = runner_of(app)
    handle, calls = runner.handle, []

    def crash_after_work(session, rows, *, now):  # the first batch does all its work, then the worker dies
        handle(session, rows, now=now)
        calls.append(len(rows))
        if len(calls) == 1:
            raise RuntimeError("killed before the commit")

    runner.handle = crash_after_work
    runner.advance_due()
    runner.handle = handle
    runner.advance_due()

    assert _count(app, select(func.count()).select_from(Task)) == 3
    assert _count(app, select(func.count()).where(JourneyStep.journey_id == jid)) == 3 * 3
    assert {r.step for r in j.runs(app, jid)} == {"pause"}
    for cid in ids:
        assert j.tags(app, cid) == ["after-call"]
