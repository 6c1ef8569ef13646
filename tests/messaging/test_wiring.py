"""Messaging plugged into the rest: the `start_cascade` trigger action, campaigns to a segment, App.close."""

import pytest
from sqlalchemy import select

from retento.bootstrap import bootstrap
from retento.core.bus import Event
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.messaging import service
from retento.messaging.models import Run
from retento.messaging.schemas import CampaignIn
from retento.messaging.wiring import configure
from retento.segments import service as segments
from retento.segments.schemas import MembersIn, SegmentCreate
from retento.triggers import service as triggers
from tests import factories as f
from tests.messaging import helpers as h
from tests.messaging.conftest import settings_for


def _trigger(app, cascade_id, **params):
    raw = {"name": "thanks", "events": ["order_created"],
           "actions": [{"type": "start_cascade", "cascade_id": cascade_id, **params}]}
    with transaction(app.sessions) as s:
        return triggers.create_trigger(s, raw=raw, now=app.clock.now()).id


def test_trigger_action_starts_the_cascade_once_for_the_events_customer(mapp, http_providers):
    h.setup_site(mapp)
    h.template(mapp, "thanks", "whatsapp", body="Спасибо за заказ {{ order.number }}")
    cascade = h.cascade(mapp, [("whatsapp", "thanks", 24)])
    _trigger(mapp, cascade, message_class="transactional")
    anna = h.customer(mapp, channels=("whatsapp",))
    f.order(mapp, customer={"id": anna}, number="A-17")
    h.drain(mapp)
    h.drain(mapp)
    (msg,) = h.messages(mapp)
    assert (msg.customer_id, msg.channel, msg.message_class, msg.status) == (anna, "whatsapp", "transactional", "sent")
    (sent,) = http_providers.state.sent["whatsapp"]
    assert "Спасибо за заказ A-17" in str(sent)
    with transaction(mapp.sessions) as s:
        (run,) = s.scalars(select(Run)).all()
        assert run.idempotency_key.startswith("trigger:") and run.idempotency_key.endswith(f":cascade:{cascade}")
        (log,) = triggers.runs(s)
    assert log.outcome == "acted" and log.actions[0]["result"] == {"run_id": run.id}


def test_a_trigger_on_segment_entered_sends_a_message(mapp, http_providers):
    """Entering a segment is an event like any other: a trigger listening to it sends the customer a message."""
    h.setup_site(mapp)
    h.template(mapp, "welcome", "whatsapp", body="{{ customer.first_name }}, вы теперь VIP")
    cascade = h.cascade(mapp, [("whatsapp", "welcome", 24)])
    with transaction(mapp.sessions) as s:
        segments.create(s, data=SegmentCreate(site="shop", code="vip", name="VIP", rules={"tags": {"any": ["vip"]}}),
                        now=mapp.clock.now())
        triggers.create_trigger(s, raw={
            "name": "vip-welcome", "events": ["segment_entered"], "condition": 'event.data.segment_code == "vip"',
            "actions": [{"type": "start_cascade", "cascade_id": cascade}]}, now=mapp.clock.now())
    anna = h.customer(mapp, channels=("whatsapp",))
    boris = h.customer(mapp, channels=("whatsapp",), first_name="Борис", email="boris@example.com")
    h.drain(mapp)
    assert h.messages(mapp) == []
    f.edit_customer(mapp, anna, tags=["vip"])
    h.drain(mapp)
    (msg,) = h.messages(mapp)
    assert (msg.customer_id, msg.channel, msg.status) == (anna, "whatsapp", "sent")
    (sent,) = http_providers.state.sent["whatsapp"]
    assert "Анна, вы теперь VIP" in str(sent)
    with transaction(mapp.sessions) as s:
        (log,) = [r for r in triggers.runs(s) if r.outcome == "acted"]
        assert (log.customer_id, s.get(Event, log.event_id).type) == (anna, "segment_entered")
    assert boris not in {m.customer_id for m in h.messages(mapp)}


def test_triggers_listen_to_every_event_type_about_an_order_or_a_customer(app):
    with transaction(app.sessions) as s:
        assert {"order_created", "customer_changed", "custom", "segment_entered", "segment_left"} <= set(
            triggers.event_types(s))
        for name, message in (("nope", "unknown event type 'nope'; known: "),
                              ("campaign_started", "'campaign_started' events are about no order or customer")):
            with pytest.raises(DomainError) as exc:
                triggers.create_trigger(s, raw={"name": "t", "events": ["order_created", name], "condition": "true",
                                                "actions": [{"type": "add_tag", "tag": "x"}]}, now=app.clock.now())
            assert exc.value.as_dict()["events.1"].startswith(message)


def test_trigger_action_with_an_unknown_cascade_is_refused_when_saved(app):
    h.setup_site(app)
    with pytest.raises(DomainError) as exc:
        _trigger(app, 999)
    assert exc.value.as_dict() == {"actions.0.cascade_id": "unknown cascade 999"}
    with pytest.raises(DomainError) as exc:
        _trigger(app, 1, message_class="bulk")
    assert "actions.0.message_class" in exc.value.as_dict()
    with transaction(app.sessions) as s:
        assert triggers.list_triggers(s) == []


def _static_segment(app, code, members):
    with transaction(app.sessions) as s:
        seg = segments.create(s, data=SegmentCreate(site="shop", code=code, name=code, kind="static"),
                              now=app.clock.now())
        segments.change_members(s, segment=seg, data=MembersIn(customer_ids=members), add=True, now=app.clock.now())
        return seg.id


def _campaign(app, **audience):
    data = CampaignIn(cascade_id=audience.pop("cascade_id"), name="nov", **audience)
    with transaction(app.sessions) as s:
        return service.create_campaign(s, data=data, now=app.clock.now()).id


def test_campaign_to_a_segment_reaches_its_members_at_start_time(mapp):
    h.setup_site(mapp)
    h.template(mapp, "bonus", "email")
    cascade = h.cascade(mapp, [("email", "bonus", 24)])
    a, b, c = (h.customer(mapp, external_id=str(i), email=f"c{i}@example.com") for i in range(3))
    seg = _static_segment(mapp, "vip", [a, b])
    by_code = _campaign(mapp, cascade_id=cascade, segment="vip", start_at=mapp.clock.now().replace(year=2099))
    by_id = _campaign(mapp, cascade_id=cascade, segment=seg)
    with transaction(mapp.sessions) as s:  # joins after the first campaign was created, before it starts
        segments.change_members(s, segment=segments.get(s, seg), data=MembersIn(customer_ids=[c]), add=True,
                                now=mapp.clock.now())
    h.drain(mapp)
    assert sorted(m.customer_id for m in h.messages(mapp, campaign_id=by_id)) == [a, b, c]
    assert h.messages(mapp, campaign_id=by_code) == []
    with transaction(mapp.sessions) as s:
        assert (service.get_campaign(s, by_id).members, service.get_campaign(s, by_id).segment_id) == (3, seg)
        from retento.segments.analytics import list_initiatives

        # the started campaign is on the cohort timeline (recorded automatically, once); the later one is not
        assert [(i["kind"], i["name"], i["source"]) for i in list_initiatives(s, site_id=1)] == [
            ("campaign", "nov", "automatic")]


def test_campaign_audience_is_a_list_or_a_segment_that_exists(app, client):
    h.setup_site(app)
    h.template(app, "bonus", "email")
    cascade = h.cascade(app, [("email", "bonus", 24)])
    anna = h.customer(app)
    r = client.post("/api/v1/messaging/campaigns", json={"cascade_id": cascade, "name": "x"})
    assert r.status_code == 422 and "exactly one of customer_ids, segment, everyone and rules" in r.text
    r = client.post("/api/v1/messaging/campaigns", json={"cascade_id": cascade, "name": "x", "customer_ids": [anna],
                                                      "segment": "vip"})
    assert r.status_code == 422
    r = client.post("/api/v1/messaging/campaigns", json={"cascade_id": cascade, "name": "x", "segment": "nope"})
    assert r.status_code == 404 and "segment 'nope' not found" in r.text
    _static_segment(app, "vip", [anna])
    r = client.post("/api/v1/messaging/campaigns", json={"cascade_id": cascade, "name": "x", "segment": "vip"})
    assert r.status_code == 201 and r.json()["segment_id"] is not None


def test_app_close_closes_the_channels_client(db_url, clock, http_providers, smtp_server):
    app = bootstrap(Settings(database_url=db_url), clock=clock)
    messaging = configure(app, settings_for(http_providers, smtp_server))
    assert not messaging.http.is_closed and messaging.channels["whatsapp"].http is messaging.http
    app.close()
    assert messaging.http.is_closed
