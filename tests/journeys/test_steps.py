"""Every step kind: branches (interest, condition), the A/B split with its holdout, tags, loyalty points, tasks,
webhook calls, a wait until a time of day in the customer's zone, exit; sends under the frequency cap and quiet
hours of the messaging domain."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from retento.bootstrap import bootstrap
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.journeys import engine
from retento.journeys.schemas import Split
from retento.tasks.models import Task
from tests import factories as f
from tests.integration.test_trigger_webhook import Receiver, receiver  # noqa: F401 - fixture
from tests.journeys import helpers as j
from tests.loyalty import helpers as loyalty
from tests.messaging import helpers as h


@pytest.fixture
def app(db_url, clock):
    """The webhook receiver listens on loopback, which only the allow-list lets webhooks reach."""
    a = bootstrap(Settings(database_url=db_url, outgoing_allow="127.0.0.1"), clock=clock)
    yield a
    a.close()


def test_branches_split_tags_points_task_webhook_wait_at_and_exit(app, receiver):  # noqa: F811
    Receiver.fail_first = 0
    f.site(app)
    loyalty.program(app)
    definition = {
        "name": "every-step", "site": "shop", "entry": {"kind": "customer_created"}, "start": "by_interest",
        "steps": [
            {"id": "by_interest", "type": "branch", "branches": [
                {"interest": "crm", "next": "crm"},
                {"condition": 'has_tag(customer, "vip")', "next": "vip"}], "else": "plain"},
            {"id": "crm", "type": "add_tag", "tag": "crm-path", "next": "ab"},
            {"id": "vip", "type": "add_tag", "tag": "vip-path", "next": "ab"},
            {"id": "plain", "type": "remove_tag", "tag": "newbie", "next": "ab"},
            {"id": "ab", "type": "split", "arms": [{"name": "A", "share": 50, "next": "points"}], "holdout": 50},
            {"id": "points", "type": "credit_points", "amount": "100", "reason": "Welcome", "next": "task"},
            {"id": "task", "type": "create_task", "title": "Call {{ customer.first_name }} ({{ journey.name }})",
             "assignee": None, "next": "hook"},
            {"id": "hook", "type": "webhook", "url": receiver, "secret": "s3cret-key", "next": "morning"},
            {"id": "morning", "type": "wait", "at": "10:00", "next": "bye"},
            {"id": "bye", "type": "exit"},
        ]}
    jid = j.save(app, definition)
    crm, _ = loyalty.member(app, first_name="Ivan", interests=["crm"], timezone="Asia/Vladivostok")
    vip = f.customer(app, first_name="Olga", tags=["vip"], timezone="Asia/Vladivostok")
    plain = f.customer(app, first_name="Petr", tags=["newbie", "x"], timezone="Asia/Vladivostok")
    more = [f.customer(app, first_name=f"C{i}", timezone="Asia/Vladivostok") for i in range(8)]
    h.drain(app)

    split = Split.model_validate(definition["steps"][4])
    arm = {c: engine.split_arm(split, journey_id=jid, customer_id=c) for c in [crm, vip, plain, *more]}
    assert set(arm.values()) == {"A", None}  # both the arm and the holdout are taken by someone
    assert j.tags(app, crm) == ["crm-path"] and j.tags(app, vip) == ["vip", "vip-path"]
    assert j.tags(app, plain) == ["x"]
    runs = {r.customer_id: r for r in j.runs(app, jid)}
    for c, a in arm.items():
        if a is None:
            assert (runs[c].state, runs[c].exit_reason) == ("exited", "holdout")
            assert j.path(app, runs[c].id)[-1] == ("ab", "holdout")
        else:
            assert runs[c].state == "active" and runs[c].step == "morning"
            # 09:00 UTC is 19:00 in Vladivostok: the next 10:00 there is 00:00 UTC tomorrow
            assert runs[c].due_at == datetime.fromisoformat("2026-03-03T00:00:00+00:00")
    in_a = [c for c, a in arm.items() if a == "A"]
    with transaction(app.sessions) as s:
        tasks = {t.customer_id: t.title for t in s.scalars(select(Task))}
    assert set(tasks) == set(in_a) and all("(every-step)" in t for t in tasks.values())
    points = dict(j.path(app, runs[in_a[0]].id))["points"]
    assert points == ("credited" if in_a[0] == crm else "skipped")
    got = [r for r in Receiver.got]
    assert sorted(g["body"]["customer"]["id"] for g in got) == sorted(in_a)
    assert all(g["ok"] and g["key"].startswith("journey:") for g in got)

    app.clock.advance(hours=15, minutes=1)
    h.drain(app)
    for c in in_a:
        run = next(r for r in j.runs(app, jid) if r.customer_id == c)
        assert (run.state, run.exit_reason) == ("exited", "step:bye")
        assert [s for s, _ in j.path(app, run.id)][-3:] == ["hook", "morning", "bye"]
    assert len(Receiver.got) == len(in_a)  # each step once


def test_split_shares_hold_over_many_customers():
    split = Split.model_validate({"id": "s", "type": "split", "arms": [{"name": "A", "share": 45, "next": "a"},
                                                                      {"name": "B", "share": 45, "next": "b"}],
                                  "holdout": 10})
    counts = {"A": 0, "B": 0, None: 0}
    for c in range(20000):
        counts[engine.split_arm(split, journey_id=7, customer_id=c)] += 1
    assert abs(counts["A"] / 20000 - 0.45) < 0.015 and abs(counts[None] / 20000 - 0.10) < 0.01


def test_sends_respect_the_frequency_cap_and_quiet_hours(mapp, smtp_server):
    h.setup_site(mapp, policy={"cap_count": 2})
    for name in ("a", "b", "c"):
        h.template(mapp, name, "email")
    cascades = [h.cascade(mapp, [("email", name, 24)]) for name in ("a", "b", "c")]
    j.save(mapp, {"name": "three", "site": "shop",
                  "entry": {"kind": "event", "event": "custom", "event_name": "go"},
                  "steps": [{"id": f"s{i}", "type": "send", "cascade_id": c, "next": f"s{i + 1}" if i < 2 else None}
                            for i, c in enumerate(cascades)]})
    capped = h.customer(mapp, external_id="cap", channels=("email",))
    night = h.customer(mapp, external_id="night", channels=("email",))

    def go(cid: int) -> None:
        with transaction(mapp.sessions) as s:
            customers.emit_custom_event(s, customer=customers.get(s, cid), name="go", payload={}, ctx=f.API,
                                        now=mapp.clock.now(), idempotency_key=f"go-{cid}")
        h.drain(mapp)

    go(capped)  # 12:00 in Moscow
    assert [m.channel for m in h.messages(mapp, customer_id=capped)] == ["email", "email"]  # the cap is 2
    assert len(smtp_server.messages) == 2
    mapp.clock.advance(hours=10)  # 22:00 in Moscow: quiet hours
    go(night)
    (deferred,) = h.messages(mapp, customer_id=night)[:1]
    assert deferred.status == "queued" and len(smtp_server.messages) == 2
    mapp.clock.advance(hours=11, minutes=1)  # 09:01 in Moscow
    h.drain(mapp)
    assert len(smtp_server.messages) == 4
