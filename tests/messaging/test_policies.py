"""Policies through the worker: consent, quiet hours (deferred, not dropped), caps, transactional class,
cheapest-read order, scheduled campaigns, template checks over the API."""

from datetime import datetime, timezone

from retento.core.db.transactions import transaction
from retento.messaging import campaigns, service
from retento.messaging.schemas import CampaignIn
from tests import factories as f
from tests.messaging import helpers as h


def fields(r) -> dict[str, str]:
    return {e["field"]: e["reason"] for e in r.json()["errors"]}

UTC = timezone.utc


def _email_cascade(app, **policy):
    h.setup_site(app, policy=policy or None)
    h.template(app, "t", "email")
    return h.cascade(app, [("email", "t", 24)])


def test_quiet_hours_defer_in_the_customers_zone(mapp, smtp_server):
    cid = _email_cascade(mapp)
    mapp.clock.set(datetime(2026, 3, 2, 12, 30, tzinfo=UTC))  # 22:30 in Vladivostok, 15:30 in Moscow
    far = h.customer(mapp, timezone="Asia/Vladivostok")
    near = h.customer(mapp, external_id="m", timezone="Europe/Moscow")
    h.start(mapp, cid, far)
    h.start(mapp, cid, near)
    h.drain(mapp)
    assert [m["to"] for m in smtp_server.messages] == [["annam@example.com"]]
    deferred = h.messages(mapp, customer_id=far)[0]
    assert deferred.status == "queued" and deferred.not_before == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    mapp.clock.set(datetime(2026, 3, 2, 23, 0, tzinfo=UTC))
    h.drain(mapp)
    assert len(smtp_server.messages) == 2 and h.messages(mapp, customer_id=far)[0].status == "sent"


def test_frequency_cap_across_channels_and_transactional_skips_it(mapp, smtp_server):
    cid = _email_cascade(mapp, cap_count=1)
    anna = h.customer(mapp)
    h.start(mapp, cid, anna, idempotency_key="a")
    h.start(mapp, cid, anna, idempotency_key="b")
    r3 = h.start(mapp, cid, anna, idempotency_key="c", message_class="transactional")
    h.drain(mapp)
    assert len(smtp_server.messages) == 2
    outcomes = sorted(str(h.run(mapp, r).outcome) for r in (1, 2))
    assert "frequency_cap" in outcomes
    assert h.messages(mapp)[-1].message_class == "transactional" and h.run(mapp, r3).pos == 0


def test_no_consent_no_message_even_transactional(mapp, smtp_server):
    cid = _email_cascade(mapp)
    nope = h.customer(mapp, channels=("whatsapp",))
    r1 = h.start(mapp, cid, nope)
    r2 = h.start(mapp, cid, nope, idempotency_key="tx", message_class="transactional")
    h.drain(mapp)
    assert smtp_server.messages == [] and h.messages(mapp) == []
    assert h.run(mapp, r1).outcome == h.run(mapp, r2).outcome == "unreachable"


def test_consent_withdrawn_between_planning_and_sending(mapp, smtp_server):
    cid = _email_cascade(mapp)
    anna = h.customer(mapp)
    h.start(mapp, cid, anna)
    from retento.messaging import planner
    with transaction(mapp.sessions) as s:
        planner.advance_due(s, now=mapp.clock.now(), limit=10)
    f.edit_customer(mapp, anna, consents={"email": {"granted": False, "source": "preferences"}})
    h.drain(mapp)
    assert smtp_server.messages == []
    (msg,) = h.messages(mapp)
    assert msg.status == "failed" and msg.reason.startswith("no_consent")


def test_cheapest_read_mode_puts_the_cheap_channel_first(mapp, http_providers, smtp_server):
    h.setup_site(mapp)
    h.template(mapp, "t", "email")
    h.template(mapp, "t", "whatsapp")
    cid = h.cascade(mapp, [("whatsapp", "t", 24), ("email", "t", 24)], mode="cheapest_read")
    h.start(mapp, cid, h.customer(mapp))
    h.drain(mapp)
    assert [m.channel for m in h.messages(mapp)] == ["email"] and http_providers.sent("whatsapp") == []


def test_campaign_at_a_time(mapp, client, smtp_server):
    cid = _email_cascade(mapp)
    ids = [h.customer(mapp, external_id=str(i)) for i in range(3)]
    r = client.post("/api/v1/messaging/campaigns", json={"cascade_id": cid, "name": "Later", "customer_ids": ids,
                                                      "start_at": "2026-03-03T10:00:00+03:00"})
    assert r.status_code == 201 and r.json()["members"] == 3
    h.drain(mapp)
    assert smtp_server.messages == []
    mapp.clock.set(datetime(2026, 3, 3, 7, 0, tzinfo=UTC))
    h.drain(mapp)
    assert len(smtp_server.messages) == 3
    bad = client.post("/api/v1/messaging/campaigns", json={"cascade_id": cid, "name": "x", "customer_ids": [999]})
    assert bad.status_code == 404 and "customer_ids" in fields(bad)


def test_templates_over_the_api(mapp, client):
    h.setup_site(mapp)
    r = client.post("/api/v1/messaging/templates", json={"site": "shop", "name": "x", "channel": "sms",
                                                      "body": "{{ ''.__class__.__mro__ }}"})
    assert r.status_code == 422 and "body" in fields(r)
    r = client.post("/api/v1/messaging/templates", json={"site": "shop", "name": "x", "channel": "sms",
                                                      "body": "{{ customer.first_nam }}"})
    assert r.status_code == 422 and "first_nam" in fields(r)["body"]
    r = client.post("/api/v1/messaging/templates", json={"site": "shop", "name": "hi", "channel": "sms",
                                                      "language": "en", "body": "Hi {{ customer.first_name }}"})
    assert r.status_code == 201
    anna = h.customer(mapp, first_name="Ann")
    prev = client.post(f"/api/v1/messaging/templates/{r.json()['id']}/preview", params={"customer_id": anna}).json()
    assert prev["text"] == "Hi Ann"
    r = client.post("/api/v1/messaging/cascades", json={"site": "shop", "name": "c", "steps": [
        {"channel": "email", "template": "hi"}]})
    assert r.status_code == 400 and "steps.0.template" in fields(r)


def test_start_cascade_is_idempotent(mapp):
    cid = _email_cascade(mapp)
    anna = h.customer(mapp)
    assert h.start(mapp, cid, anna, idempotency_key="k") == h.start(mapp, cid, anna, idempotency_key="k")
    with transaction(mapp.sessions) as s:
        service.create_campaign(s, data=CampaignIn(cascade_id=cid, name="n", customer_ids=[anna, anna]),
                                now=mapp.clock.now())
        assert campaigns.start_due_campaigns(s, now=mapp.clock.now()) == 1


def test_management_needs_a_key_with_the_scope(mapp, client):
    h.setup_site(mapp)
    anonymous = client.get("/api/v1/messaging/templates", params={"site": "shop"}, headers={"X-API-Key": ""})
    assert anonymous.status_code == 401
    assert client.get("/api/v1/messaging/templates", params={"site": "shop"}).status_code == 200
