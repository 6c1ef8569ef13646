"""The trigger engine end to end: events in, frozen clock, explicit worker ticks, effects checked through services."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.customers import service as customers
from retento.history import service as history
from retento.orders import service as orders
from retento.tasks import service as tasks
from retento.triggers import service
from retento.triggers.models import Run
from tests import factories as f


def trigger(app, **raw):
    raw.setdefault("name", "t")
    raw.setdefault("events", ["order_status_changed"])
    with transaction(app.sessions) as s:
        return service.create_trigger(s, raw=raw, now=app.clock.now()).id


def order_status(app, oid):
    with transaction(app.sessions) as s:
        return orders.get(s, oid).status


def order_tags(app, oid):
    with transaction(app.sessions) as s:
        return orders.get(s, oid).tags


def customer_tags(app, cid):
    with transaction(app.sessions) as s:
        return customers.snapshot(s, customers.get(s, cid))["tags"]


def task_list(app, **kw):
    with transaction(app.sessions) as s:
        return [(t.title, t.order_id, t.customer_id, t.manager_id) for t in tasks.list_tasks(s, **kw)]


def runs(app, **kw):
    with transaction(app.sessions) as s:
        return [(r.phase, r.outcome, r.reason) for r in service.runs(s, **kw)]


def pending(app, **kw):
    with transaction(app.sessions) as s:
        return service.pending(s, **kw)


def test_immediate_run_changes_through_services_with_trigger_source(app):
    f.site(app)
    tid = trigger(app, events=["order_created"], condition='order.total >= 100.0 && order.status == "new"',
                  actions=[{"type": "set_order_status", "status": "client-confirmed"},
                           {"type": "add_tag", "target": "order", "tag": "big"}])
    small = f.order(app, items=[{"name": "A", "price": "10.00"}])
    big = f.order(app, items=[{"name": "B", "price": "150.00"}])
    app.worker.tick()
    assert order_status(app, small) == "new" and order_status(app, big) == "client-confirmed"
    assert order_tags(app, big) == ["big"]
    with transaction(app.sessions) as s:
        rows = [r for r in history.since(s, entity="order", entity_id=big) if not r.created]
    assert {(r.field, r.source, r.actor_type, r.actor_id) for r in rows} == {
        ("status", "trigger", "trigger", str(tid)), ("tags", "trigger", "trigger", str(tid))}
    assert runs(app, order_id=small) == []  # a false condition on an event writes nothing
    big_runs = runs(app, order_id=big)
    assert big_runs[0][:2] == ("event", "acted")
    app.worker.tick()
    assert order_status(app, big) == "client-confirmed"  # no second run for the same event


def test_delayed_run_fires_once_when_due_and_rechecks_fresh_data(app, clock):
    f.site(app)
    trigger(app, name="courier", condition='new_value("status") == "ready-for-delivery" && '
                                           'order.status == "ready-for-delivery"',
            delay={"minutes": 17}, actions=[{"type": "add_tag", "target": "order", "tag": "late"}])
    stays = f.order(app)
    moves = f.order(app)
    f.edit_order(app, stays, status="ready-for-delivery")
    f.edit_order(app, moves, status="ready-for-delivery")
    app.worker.tick()
    due = pending(app)
    assert [t.order_id for t in due] == [stays, moves]
    assert due[0].due_at == clock.now() + timedelta(minutes=17)
    f.edit_order(app, moves, status="send-to-delivery")
    clock.advance(minutes=16)
    app.worker.tick()
    assert order_tags(app, stays) == [] and len(pending(app)) == 2
    clock.advance(minutes=1)
    app.worker.tick()
    assert order_tags(app, stays) == ["late"]
    assert order_tags(app, moves) == []
    assert pending(app) == []
    fired = runs(app, order_id=moves)
    assert fired[-1][:2] == ("fire", "not_matched")
    assert "re-check at fire time: part 2 of 2 is false: `order.status == \"ready-for-delivery\"`" in fired[-1][2]
    clock.advance(days=1)
    app.worker.tick()
    assert [r[1] for r in runs(app, order_id=stays)].count("acted") == 1


def review_request_for_received(app, *numbers):
    """A review request 3 days after an order is received, cancelled when its status changes; orders with these
    numbers, each just received. Returns the trigger id and the order ids."""
    tid = trigger(app, condition='new_value("status") == "received"', delay={"days": 3},
                  on_change={"policy": "cancel", "fields": ["status"]},
                  actions=[{"type": "create_task", "title": "Ask {order.number} for a review"}])
    ids = [f.order(app, number=n) for n in numbers]
    for oid in ids:
        f.edit_order(app, oid, status="received")
    return tid, ids


def test_cancel_on_change_and_by_hand(app, clock):
    f.site(app)
    tid, (a, b, c) = review_request_for_received(app, "A1", "B1", "C1")
    app.worker.tick()
    f.edit_order(app, a, manager_comment="called")  # another field: the run stays
    f.edit_order(app, b, status="returned")
    app.worker.tick()
    assert [t.order_id for t in pending(app)] == [a, c]
    assert ("cancel", "cancelled") in [r[:2] for r in runs(app, order_id=b)]
    with transaction(app.sessions) as s:
        (timer_c,) = service.pending(s, order_id=c)
        service.cancel_timer(s, timer_id=timer_c.id, now=clock.now())
    clock.advance(days=3)
    app.worker.tick()
    assert task_list(app) == [("Ask A1 for a review", a, None, None)]
    assert pending(app, trigger_id=tid) == []


def test_a_change_in_the_same_batch_cancels_the_run_its_predecessor_scheduled(app, clock):
    """The scheduling event and the change reach the engine in one bus batch: the run is cancelled all the same
    (it was still in the engine's buffer, not yet in the table, when the change came)."""
    f.site(app)
    _, (a, b) = review_request_for_received(app, "A1", "B1")
    f.edit_order(app, b, status="returned")  # before any tick: same batch as the event that schedules
    app.worker.tick()
    assert [t.order_id for t in pending(app)] == [a]
    assert ("cancel", "cancelled") in [r[:2] for r in runs(app, order_id=b)]
    clock.advance(days=3)
    app.worker.tick()
    assert task_list(app) == [("Ask A1 for a review", a, None, None)]


def test_cancel_all_pending_runs_of_a_trigger(app, clock):
    f.site(app)
    tid = trigger(app, events=["order_created"], delay={"hours": 1}, actions=[{"type": "create_task", "title": "x"}])
    for _ in range(3):
        f.order(app)
    app.worker.tick()
    with transaction(app.sessions) as s:
        assert service.cancel_pending(s, trigger=service.get_trigger(s, tid), now=clock.now()) == 3
    clock.advance(hours=2)
    app.worker.tick()
    assert task_list(app) == []


def test_run_limits_per_customer_and_per_period(app, clock):
    f.site(app)
    cid = f.customer(app, email="a@b.ru")
    trigger(app, name="once", events=["order_created"], limits=[{"per": "customer", "max": 1}],
            actions=[{"type": "create_task", "title": "first order of customer", "assignee": None}])
    trigger(app, name="two-a-day", events=["order_created"], limits=[{"per": "trigger", "max": 2, "period_days": 1}],
            actions=[{"type": "create_task", "title": "capped", "assignee": None}])
    for _ in range(3):
        f.order(app, customer={"id": cid})
    app.worker.tick()
    titles = [t[0] for t in task_list(app)]
    assert titles.count("first order of customer") == 1 and titles.count("capped") == 2
    assert any(r[1] == "skipped" and "run limit reached: 2 of 2 per trigger in 1 days" in r[2]
               for r in runs(app, customer_id=cid))
    clock.advance(days=1, minutes=1)
    f.order(app, customer={"id": cid})
    app.worker.tick()
    titles = [t[0] for t in task_list(app)]
    assert titles.count("first order of customer") == 1 and titles.count("capped") == 3


def test_loop_protection_own_changes_and_chain_depth(app):
    f.site(app)
    app.triggers._max_depth = 3
    # Reacts to every status change by moving the order on: without protection this never ends.
    trigger(app, name="ping", condition='order.status == "new" || order.status == "assembling"',
            actions=[{"type": "set_order_status", "status": "client-confirmed"}])
    trigger(app, name="pong", condition='order.status == "client-confirmed"',
            actions=[{"type": "set_order_status", "status": "assembling"}])
    trigger(app, name="self", events=["order_changed"], actions=[{"type": "add_tag", "target": "order", "tag": "seen"}])
    oid = f.order(app)
    f.edit_order(app, oid, status="assembling")
    for _ in range(10):
        app.worker.tick()
    log = runs(app, order_id=oid)
    assert any("reached depth 3 (limit 3)" in (r[2] or "") for r in log)
    assert any("made by this trigger" in (r[2] or "") for r in log)
    with transaction(app.sessions) as s:
        depth_events = s.scalars(select(__import__("retento.core.bus", fromlist=["Event"]).Event.depth)).all()
    assert max(depth_events) == 3
    assert order_tags(app, oid) == ["seen"]


def test_every_action(app, clock):
    f.site(app)
    with transaction(app.sessions) as s:
        from retento.sites.schemas import ManagerCreate
        from retento.sites.service import create_manager

        mid = create_manager(s, data=ManagerCreate(name="Courier boss"), now=clock.now()).id
    cid = f.customer(app, email="a@b.ru", tags=["old", "vip"])
    seen = []
    app.bus.subscribe("custom-events", lambda s, e: seen.append((e.name, e.payload, e.source)), types=["custom"])
    trigger(app, name="all", events=["order_created"], actions=[
        {"type": "set_order_field", "field": "manager_comment", "value": "robot was here"},
        {"type": "set_order_field", "field": "custom_fields.priority", "value": 2},
        {"type": "set_order_status", "status": "assembling"},
        {"type": "add_tag", "tag": "buyer"},
        {"type": "remove_tag", "tag": "old"},
        {"type": "add_tag", "target": "order", "tag": "robot"},
        {"type": "create_task", "title": "Call {customer.email} about {order.number}", "assignee": mid,
         "due_in_minutes": 30},
        {"type": "emit_event", "name": "robot_done", "data": {"k": 1}},
    ])
    oid = f.order(app, customer={"id": cid}, number="N-7")
    app.worker.tick()
    with transaction(app.sessions) as s:
        o = orders.get(s, oid)
        assert (o.manager_comment, o.custom_fields, o.status, o.tags) == (
            "robot was here", {"priority": 2}, "assembling", ["robot"])
        (task,) = tasks.list_tasks(s)
        assert task.due_at == clock.now() + timedelta(minutes=30)
    assert customer_tags(app, cid) == ["buyer", "vip"]
    assert task_list(app) == [("Call a@b.ru about N-7", oid, cid, mid)]
    assert seen == [("robot_done", {"k": 1}, "trigger")]


def test_action_texts_are_templates_of_the_sandbox_and_old_placeholders_keep_working(app):
    """A task's title and text use the messaging template language; `{order.number}` of older definitions is read
    as `{{ order.number }}`; a text that does not compile or escapes the sandbox is refused when saved."""
    f.site(app)
    cid = f.customer(app, email="a@b.ru", first_name="Анна")
    trigger(app, name="old", events=["order_created"], actions=[
        {"type": "create_task", "title": "Call {customer.email} about {order.number}", "assignee": None}])
    trigger(app, name="new", events=["order_created"], actions=[
        {"type": "create_task", "assignee": None,
         "title": "{{ customer.first_name | upper }}: {{ order.number }}{% if order.total > 1000 %} (big){% endif %}",
         "text": "{{ trigger.name }} / {order.status} / [{{ customer.patronymic }}]"}])
    oid = f.order(app, customer={"id": cid}, number="N-8", items=[{"name": "x", "price": "1500.00"}])
    app.worker.tick()
    with transaction(app.sessions) as s:
        got = sorted((t.title, t.text) for t in tasks.list_tasks(s) if t.order_id == oid)
    assert got == [("Call a@b.ru about N-8", None), ("АННА: N-8 (big)", "new / new / []")]
    for title, message in (("{{ order.number", "template error:"),
                           ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "not allowed in a template")):
        with pytest.raises(DomainError) as exc:
            trigger(app, name="bad", events=["order_created"],
                    actions=[{"type": "create_task", "title": title}])
        assert message in exc.value.as_dict()["actions.0.title"]


def test_event_names_narrow_custom_events_only(app):
    f.site(app)
    trigger(app, name="chaos", events=["customer_created", "custom"], event_names=["chaos"],
            actions=[{"type": "create_task", "title": "seen {event.id}", "assignee": None}])
    cid = f.customer(app, email="a@b.ru")
    app.worker.tick()
    assert len(task_list(app)) == 1  # customer_created is not narrowed by event_names
    assert [r[:2] for r in runs(app, customer_id=cid)] == [("event", "acted")]
    with transaction(app.sessions) as s:
        for name in ("other", "chaos"):
            customers.emit_custom_event(s, customer=customers.get(s, cid), name=name, payload={}, ctx=f.API,
                                        now=app.clock.now())
    app.worker.tick()
    assert len(task_list(app)) == 2  # "chaos" acted, "other" did not
    assert [r[:2] for r in runs(app, customer_id=cid)] == [("event", "acted")] * 2
    from retento.triggers.schemas import DryRunIn

    with transaction(app.sessions) as s:
        raw = service.find_trigger(s, "chaos").definition
        dry = service.dry_run(s, raw=raw, options=DryRunIn(over="events"), now=app.clock.now())
    assert (dry.evaluated, dry.matched) == (2, 2)


def test_failed_action_changes_nothing_and_is_logged(app):
    f.site(app)
    trigger(app, name="half", events=["order_created"], actions=[
        {"type": "add_tag", "target": "order", "tag": "first"},
        {"type": "emit_event", "name": "needs_customer"},
    ])
    oid = f.order(app)
    app.worker.tick()
    assert order_tags(app, oid) == []
    (run,) = runs(app, order_id=oid)
    assert run[1] == "failed" and "action 1 (emit_event) failed" in run[2] and "has no customer" in run[2]


@pytest.mark.parametrize("raw, field, words", [
    ({"condition": "order.status == "}, "condition", "syntax error at line 1, column 17"),
    ({"condition": "ordr.status == 'x'"}, "condition", "unknown variable 'ordr'"),
    ({"condition": "dayz_since(order.created_at) > 3"}, "condition", "unknown function 'dayz_since'"),
    ({"condition": "order.statuss == 'new'"}, "condition", "order has no field 'statuss'"),
    ({"actions": [{"type": "add_tag", "tag": "x"}, {"type": "set_order_status", "status": "nope"}]},
     "actions.1.status", "unknown status 'nope'"),
    ({"actions": [{"type": "send_pigeon"}]}, "actions.0.type", "unknown action 'send_pigeon'"),
    ({"actions": [{"type": "add_tag", "tag": "x", "target": "shop"}]}, "actions.0.target", "customer"),
    ({"actions": [{"type": "set_order_field", "field": "total", "value": 1}]}, "actions.0.field", "cannot set"),
    ({"actions": [{"type": "create_task", "title": "x", "assignee": 999}]}, "actions.0.assignee", "unknown manager"),
    ({"events": ["order_teleported"]}, "events.0", "unknown event type"),
    ({"delay": {"minutes": 5}}, "delay", "at least 10 minutes"),
    ({"delay": {"days": 68 * 366}}, "delay", "at most 68 years"),
    ({"delay": {"days": 1, "at": "25:00"}}, "delay.at", "HH:MM"),
    ({"sites": ["nope"]}, "sites.0", "unknown site"),
])
def test_invalid_definitions_are_rejected_with_a_pointed_message(app, raw, field, words):
    f.site(app)
    base = {"name": "bad", "events": ["order_created"], "actions": [{"type": "add_tag", "tag": "x"}]}
    with pytest.raises(DomainError) as exc, transaction(app.sessions) as s:
        service.create_trigger(s, raw={**base, **raw}, now=app.clock.now())
    assert field in exc.value.as_dict(), exc.value.message
    assert words in exc.value.as_dict()[field], exc.value.message
    with transaction(app.sessions) as s:
        assert service.list_triggers(s) == []


def test_delay_at_local_time_of_the_customer(app, clock):
    f.site(app, timezone="Europe/Moscow")
    cid = f.customer(app, email="a@b.ru", timezone="Asia/Vladivostok")
    trigger(app, events=["order_created"], delay={"days": 1, "at": "10:00"},
            actions=[{"type": "add_tag", "target": "order", "tag": "morning"}])
    f.order(app, customer={"id": cid})
    app.worker.tick()
    (timer,) = pending(app)
    # now is 2026-03-02 09:00 UTC = 19:00 in Vladivostok; next day 10:00 there is 00:00 UTC on 03-03.
    assert timer.due_at.isoformat() == "2026-03-03T00:00:00+00:00"


def test_dry_run_counts_matches_without_acting(app):
    f.site(app)
    for price in ("10.00", "200.00", "300.00"):
        f.order(app, items=[{"name": "x", "price": price}])
    raw = {"name": "preview", "events": ["order_created"], "condition": "order.total > 100.0",
           "actions": [{"type": "add_tag", "target": "order", "tag": "big"}]}
    from retento.triggers.schemas import DryRunIn

    with transaction(app.sessions) as s:
        by_events = service.dry_run(s, raw=raw, options=DryRunIn(over="events", limit=10), now=app.clock.now())
        by_orders = service.dry_run(s, raw=raw, options=DryRunIn(over="orders"), now=app.clock.now())
    assert (by_events.evaluated, by_events.matched) == (3, 2)
    assert (by_orders.evaluated, by_orders.matched) == (3, 2)
    assert list(by_orders.reasons.values()) == [1]
    app.worker.tick()
    assert runs(app) == []


def test_a_failing_immediate_trigger_does_not_lose_runs_scheduled_in_the_same_batch(app, clock):
    f.site(app)
    trigger(app, name="later", events=["order_created"], delay={"minutes": 30},
            actions=[{"type": "add_tag", "target": "order", "tag": "later"}])
    trigger(app, name="broken", events=["order_changed"], actions=[{"type": "emit_event", "name": "x"}])
    first = f.order(app)
    second = f.order(app)
    f.edit_order(app, second, manager_comment="no customer: emit_event fails, its savepoint rolls back")
    app.worker.tick()  # one dispatch batch holds all three events
    assert [t.order_id for t in pending(app)] == [first, second]
    clock.advance(minutes=30)
    app.worker.tick()
    assert order_tags(app, first) == ["later"] and order_tags(app, second) == ["later"]


def test_cancelling_never_overwrites_a_run_that_was_fired_meanwhile(app, clock):
    """A change cancels runs it read as pending; one that another worker finished in between keeps its outcome."""
    from retento.triggers import timers
    from retento.triggers.models import Timer

    if app.engine.dialect.name != "postgresql":
        pytest.skip("concurrent workers: PostgreSQL (SQLite runs one worker)")
    f.site(app)
    _, (a, b) = review_request_for_received(app, "A1", "B1")
    app.worker.tick()
    s1 = app.sessions()
    try:
        stale = list(s1.scalars(select(Timer).order_by(Timer.id)))  # both read as pending
        with transaction(app.sessions) as s2:  # meanwhile another worker finished the first
            timers.finish(s2.get(Timer, stale[0].id), state="done", reason="acted", now=clock.now())
        assert timers.cancel(s1, stale, reason="order changed", now=clock.now()) == 1
        s1.commit()
    finally:
        s1.close()
    with transaction(app.sessions) as s:
        assert [(t.order_id, t.state) for t in s.scalars(select(Timer).order_by(Timer.id))] == [
            (a, "done"), (b, "cancelled")]


def test_the_run_log_keeps_runs_that_matched_not_conditions_found_false(app, clock):
    """A trigger whose condition is false on an event (by its guard or when run) leaves nothing in the run log;
    the triggers that scheduled a run on an event share one stored row, read as one entry per trigger with the
    timer of its run; an evaluation error keeps a row with the error."""
    f.site(app)
    done = trigger(app, name="done", condition='new_value("status") == "complete" && order.total > 1.0',
                   actions=[{"type": "add_tag", "target": "order", "tag": "done"}])
    big = trigger(app, name="big", condition='new_value("status") == "assembling" && order.total > 1000000.0',
                  actions=[{"type": "add_tag", "target": "order", "tag": "big"}])
    later = trigger(app, name="later", condition='new_value("status") == "assembling"', delay={"hours": 2},
                    actions=[{"type": "add_tag", "target": "order", "tag": "late"}])
    later2 = trigger(app, name="later2", condition='new_value("status") == "assembling"', delay={"hours": 3},
                     actions=[{"type": "add_tag", "target": "order", "tag": "later"}])
    broken = trigger(app, name="broken", condition='new_value("status") == "assembling" && event.data.x > 1',
                     actions=[{"type": "add_tag", "target": "order", "tag": "x"}])
    oid = f.order(app)
    f.edit_order(app, oid, status="assembling")
    app.worker.tick()
    with transaction(app.sessions) as s:
        log = service.runs(s, order_id=oid)
        stored = s.scalars(select(Run).where(Run.order_id == oid).order_by(Run.id)).all()
    assert [(r.trigger_id, r.outcome) for r in stored] == [(broken, "not_matched"), (None, "evaluated")]
    assert "could not be evaluated" in stored[0].reason
    assert stored[1].misses is None
    at = clock.now()
    assert [(r.trigger_id, r.outcome, r.reason) for r in log] == [
        (broken, "not_matched", stored[0].reason),
        (later, "scheduled", f"condition holds; fires at {(at + timedelta(hours=2)).isoformat()}"),
        (later2, "scheduled", f"condition holds; fires at {(at + timedelta(hours=3)).isoformat()}")]
    assert {log[1].timer_id, log[2].timer_id} == {p.id for p in pending(app)}
    assert runs_of(app, trigger_id=done, order_id=oid) == runs_of(app, trigger_id=big, order_id=oid) == []
    assert [r.trigger_id for r in runs_of(app, trigger_id=later2, order_id=oid)] == [later2]


def runs_of(app, **kw):
    with transaction(app.sessions) as s:
        return service.runs(s, **kw)


def test_a_trigger_behind_an_order_guard_reads_the_customer_too(app):
    f.site(app)
    cid = f.customer(app, tags=["vip"])
    tid = trigger(app, events=["order_created"], condition='order.status == "new" && has_tag(customer, "vip")',
                  actions=[{"type": "add_tag", "target": "order", "tag": "vip-order"}])
    oid = f.order(app, customer={"id": cid})
    app.worker.tick()
    assert order_tags(app, oid) == ["vip-order"]
    assert [(r.trigger_id, r.outcome) for r in runs_of(app, order_id=oid)] == [(tid, "acted")]


def test_a_trigger_behind_an_order_guard_reads_the_event(app):
    f.site(app)
    trigger(app, events=["order_created"], condition='order.status == "new" && event.type != "other"',
            actions=[{"type": "add_tag", "target": "order", "tag": "seen"}])
    oid = f.order(app)
    app.worker.tick()
    assert order_tags(app, oid) == ["seen"]


def test_a_condition_on_the_change_source_alone_reads_the_event(app):
    """`source_is` / `source_is_not` read the event's source, though the condition names no `event.` field."""
    f.site(app)
    trigger(app, name="from the api", events=["order_created"], condition='source_is("api")',
            actions=[{"type": "add_tag", "target": "order", "tag": "api"}])
    trigger(app, name="not by hand", events=["order_created"], condition='source_is_not("user")',
            actions=[{"type": "add_tag", "target": "order", "tag": "not-user"}])
    oid = f.order(app)
    app.worker.tick()
    assert sorted(order_tags(app, oid)) == ["api", "not-user"]
