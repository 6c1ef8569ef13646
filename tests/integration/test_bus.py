"""Domain events: atomic with their change, dispatched after commit, at least once per subscriber."""

import pytest
from sqlalchemy import func, select

from retento.core.bus import DeadLetter, Event
from retento.core.db.transactions import transaction
from retento.customers.models import Customer
from retento.history.models import HistoryEntry
from tests import factories as f


def count(app, model):
    with transaction(app.sessions) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_failed_transaction_leaves_neither_change_nor_event(app):
    f.site(app)
    with pytest.raises(RuntimeError):
        with transaction(app.sessions) as s:
            from retento.customers import service

            service.create(s, data=service.parse_create(s, {"site": "shop", "email": "a@b.ru"}), ctx=f.API,
                           now=app.clock.now())
            raise RuntimeError("crash after the write, before commit")
    assert count(app, Customer) == 0
    assert count(app, Event) == 0
    assert count(app, HistoryEntry) == 0


def test_events_are_recorded_with_their_change(app):
    f.site(app)
    cid = f.customer(app, email="a@b.ru", consents={"email": {"granted": True, "source": "checkout"}})
    oid = f.order(app, customer={"id": cid})
    f.edit_order(app, oid, status="assembling")
    f.edit_customer(app, cid, email_confirmed=True)
    with transaction(app.sessions) as s:
        types = [e.type for e in s.scalars(select(Event).order_by(Event.id))]
    assert types == ["customer_created", "subscribed", "order_created", "order_changed", "order_status_changed",
                     "customer_changed", "email_confirmed"]


def test_each_subscriber_has_its_own_cursor_and_sees_each_event(app):
    f.site(app)
    got: dict[str, list[int]] = {"a": [], "b": []}
    app.bus.subscribe("a", lambda s, e: got["a"].append(e.id))
    app.bus.subscribe("b", lambda s, e: got["b"].append(e.id), types=["order_created"])
    f.order(app)
    f.customer(app)
    app.worker.tick()  # installed domains subscribe too: count only this test's deliveries
    assert len(got["a"]) == 2 and len(got["b"]) == 1
    app.worker.tick()
    assert len(got["a"]) == 2 and len(got["b"]) == 1  # nothing is delivered twice
    f.order(app)
    app.worker.tick()
    assert len(got["a"]) == 3 and len(got["b"]) == 2


def test_a_subscriber_that_raises_gets_the_event_again(app):
    f.site(app)
    calls: list[int] = []
    effects: list[int] = []

    def flaky(session, event):
        calls.append(event.id)
        if len(calls) == 1:
            session.add(Customer(site_id=1, created_at=app.clock.now(), updated_at=app.clock.now(),
                                 personal_dates={}, custom_fields={}, email_confirmed=False))
            raise ConnectionError("downstream unavailable")
        effects.append(event.id)

    app.bus.subscribe("flaky", flaky)
    f.order(app)
    app.worker.tick()
    assert calls == [1] and effects == []
    assert count(app, Customer) == 0  # the failed attempt's writes were rolled back
    app.worker.tick()
    assert calls == [1, 1] and effects == [1]
    app.worker.tick()
    assert calls == [1, 1]


def test_poison_event_is_dead_lettered_after_max_attempts(app):
    f.site(app)
    app.bus._max_attempts = 3
    seen: list[int] = []

    def picky(session, event):
        if event.type == "order_created" and event.payload["order"]["external_id"] == "bad":
            raise ValueError("cannot handle")
        seen.append(event.id)

    app.bus.subscribe("picky", picky)
    f.order(app, external_id="bad")
    f.order(app, external_id="good")
    for _ in range(3):
        app.worker.tick()
    assert seen == [2]
    with transaction(app.sessions) as s:
        (dl,) = s.scalars(select(DeadLetter))
        assert (dl.subscriber, dl.event_id, dl.attempts) == ("picky", 1, 3)


def test_subscriber_starting_at_latest_skips_the_past(app):
    f.site(app)
    f.order(app)
    got: list[int] = []
    app.bus.subscribe("new", lambda s, e: got.append(e.id), start="latest")
    app.worker.tick()
    f.order(app)
    app.worker.tick()
    assert got == [2]
