"""PostgreSQL writers of history and events hold no global lock: writers of different customers do not wait for
each other, and still no reader paging by id (history `since_id`, v5 `sinceId`, bus cursors) skips a change
that commits after one with a higher id. Run limits hold across concurrent fire workers without it."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select, text

from retento.bootstrap import bootstrap
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.history import queries as history_q, service as history
from retento.history.models import HistoryEntry
from retento.tasks.models import Task
from retento.triggers import service as triggers
from retento.triggers.models import Firing, Run
from tests import factories as f
from tests.api.conftest import Server, make_key

pytestmark = pytest.mark.postgres
on_postgres = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


def edit(session, customer_id: int, now, **raw: Any) -> None:
    c = customers.get(session, customer_id)
    customers.edit(session, customer=c, data=customers.parse_edit(session, raw, site_id=c.site_id), ctx=f.API,
                   now=now)


def last_history_id(app) -> int:
    with transaction(app.sessions) as s:
        return s.scalar(select(func.max(HistoryEntry.id))) or 0


@on_postgres
def test_writers_of_different_customers_do_not_wait_for_each_other(app, clock):
    f.site(app)
    a, b = f.customer(app, first_name="Anna"), f.customer(app, first_name="Boris")
    with transaction(app.sessions) as first:
        edit(first, a, clock.now(), first_name="Anya")  # history and an event written, not committed
        with transaction(app.sessions) as second:
            second.execute(text("SET LOCAL lock_timeout = '5s'"))  # waiting for `first` would fail here
            edit(second, b, clock.now(), first_name="Borya")
        with transaction(app.sessions) as s:  # committed while `first` is still open
            assert customers.get(s, b).first_name == "Borya"
            assert customers.get(s, a).first_name == "Anna"
    with transaction(app.sessions) as s:
        assert customers.get(s, a).first_name == "Anya"
        assert [h.field for h in history.since(s, entity="customer", entity_id=a)][-1] == "first_name"


@on_postgres
def test_a_lower_id_committed_after_a_higher_one_is_never_skipped(app, clock):
    f.site(app)
    a, b = f.customer(app, first_name="Anna"), f.customer(app, first_name="Boris")
    seen_events: list[int] = []
    app.bus.subscribe("probe", lambda s, ev: seen_events.append(ev.id))
    app.bus.dispatch(names=["probe"])
    seen_events.clear()
    cursor = last_history_id(app)
    _, key = make_key(app)
    with Server(app) as server, httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=30) as http:
        def readers() -> dict[str, list[int]]:
            """What each reader returns after `cursor` now."""
            with transaction(app.sessions) as s:
                out = {"since": [h.id for h in history.since(s, since_id=cursor)],
                       "v5 page": [h.id for h in history_q.page(s, entity="customer", since_id=cursor)[0]]}
            out["v1"] = [h["id"] for h in http.get("/api/v1/history", params={"since_id": cursor}).json()["items"]]
            out["v5"] = [h["id"] for h in http.get("/api/v5/customers/history",
                                                   params={"filter[sinceId]": cursor}).json()["history"]]
            app.bus.dispatch(names=["probe"])
            return out

        with transaction(app.sessions) as late:
            edit(late, a, clock.now(), first_name="Anya", last_name="Late")
            late_ids = late.scalars(select(HistoryEntry.id).where(HistoryEntry.id > cursor)).all()
            f.edit_customer(app, b, first_name="Borya")  # takes higher ids and commits first
            with transaction(app.sessions) as s:
                early_ids = s.scalars(select(HistoryEntry.id).where(HistoryEntry.id > cursor)).all()
            assert late_ids and early_ids and max(late_ids) < min(early_ids)
            assert readers() == {"since": [], "v5 page": [], "v1": [], "v5": []}  # nothing past the open one
            assert seen_events == []
        everything = sorted(late_ids + early_ids)
        assert readers() == {"since": everything, "v5 page": everything, "v1": everything, "v5": everything}
    assert len(seen_events) == 2 and seen_events == sorted(seen_events)  # both events, in id order


@on_postgres
def test_a_reader_is_held_back_only_by_open_writers(app, clock):
    """A transaction that has not written history yet does not hold readers back; one that rolls back frees them."""
    f.site(app)
    a, b = f.customer(app), f.customer(app)
    cursor = last_history_id(app)
    with transaction(app.sessions) as idle:
        customers.get(idle, a)  # open, nothing written
        f.edit_customer(app, b, first_name="Boris")
        with transaction(app.sessions) as s:
            assert len(history.since(s, since_id=cursor)) == 1
    with pytest.raises(RuntimeError), transaction(app.sessions) as failed:
        edit(failed, a, clock.now(), first_name="Never")
        raise RuntimeError("rolled back")
    f.edit_customer(app, b, first_name="Borya")
    with transaction(app.sessions) as s:
        assert [h.new_value for h in history.since(s, since_id=cursor)] == ["Boris", "Borya"]
    cursor = last_history_id(app)
    with transaction(app.sessions) as late:
        with pytest.raises(RuntimeError), late.begin_nested():  # its writes, and what it held, go back
            edit(late, a, clock.now(), first_name="Never")
            raise RuntimeError("savepoint rolled back")
        edit(late, a, clock.now(), first_name="Anya")  # the transaction holds back readers again
        f.edit_customer(app, b, first_name="Bob")
        with transaction(app.sessions) as s:
            assert history.since(s, since_id=cursor) == []
    with transaction(app.sessions) as s:
        assert [h.new_value for h in history.since(s, since_id=cursor)] == ["Anya", "Bob"]


@on_postgres
@pytest.mark.parametrize("per", ["customer", "trigger"])
def test_run_limit_holds_across_concurrent_fire_workers(db_url, clock, per):
    """Two fire workers each act on a due run under a limit of one: the second waits for the first to commit,
    counts its firing and skips (a count taken while the first is open would see none and act too)."""
    app = bootstrap(Settings(database_url=db_url, trigger_timer_batch=1), clock=clock)
    try:
        f.site(app)
        people = [f.customer(app), f.customer(app)]
        with transaction(app.sessions) as s:
            triggers.create_trigger(s, raw={
                "name": "call once", "events": ["custom"], "event_names": ["ping"], "delay": {"minutes": 10},
                "limits": [{"per": per, "max": 1}],
                "actions": [{"type": "create_task", "title": "Call (event {event.id})", "assignee": None}]},
                now=clock.now())
        with transaction(app.sessions) as s:
            for n in range(2):
                who = customers.get(s, people[0] if per == "customer" else people[n])
                customers.emit_custom_event(s, customer=who, name="ping", payload={"n": n}, ctx=f.API, now=clock.now())
        app.worker.tick()
        clock.advance(timedelta(minutes=11))

        first_done, gate = threading.Event(), threading.Event()
        first = threading.Thread(target=app.triggers.fire_due)
        second = threading.Thread(target=app.triggers.fire_due)

        def hold_first(session) -> None:
            if threading.current_thread() is first and not first_done.is_set():
                first_done.set()  # acted, about to commit
                assert gate.wait(30)

        event.listen(app.sessions, "before_commit", hold_first)
        first.start()
        assert first_done.wait(30)
        second.start()
        deadline = time.monotonic() + 30
        while second.is_alive() and not _waiting_for_advisory_lock(app):  # blocked, or done (acting wrongly)
            assert time.monotonic() < deadline
            second.join(0.01)
        gate.set()
        first.join(30)
        second.join(30)
        assert not first.is_alive() and not second.is_alive()
        with transaction(app.sessions) as s:
            assert s.scalar(select(func.count()).select_from(Firing)) == 1
            assert s.scalar(select(func.count()).select_from(Task)) == 1
            outcomes = sorted((r.outcome, r.reason or "") for r in s.scalars(select(Run).where(Run.phase == "fire")))
        assert [o for o, _ in outcomes] == ["acted", "skipped"]
        assert outcomes[1][1].startswith("run limit reached: 1 of 1")
    finally:
        app.close()


def _waiting_for_advisory_lock(app) -> bool:
    with transaction(app.sessions) as s:
        return bool(s.scalar(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")))
