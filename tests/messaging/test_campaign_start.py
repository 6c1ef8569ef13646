"""The set-based first step of a campaign (messaging.campaigns) writes exactly the rows of the per-run
planner (policies.decide, planner.pick, cascade.window_end) on generated data: consents given, withdrawn and
missing, quiet hours in several time zones, missing contacts, languages with and without a template, devices,
customers gone, and frequency caps reached by earlier messages."""

import random

import pytest
from sqlalchemy import delete, select

from retento.core.db.transactions import transaction
from retento.customers.models import Consent, Customer
from retento.messaging import campaigns, planner, service
from retento.messaging.models import Message, Run
from retento.messaging.schemas import CampaignIn, DeviceIn
from tests.messaging import helpers as h

ZONES = [None, "Europe/Moscow", "Asia/Kamchatka", "America/New_York", "Asia/Vladivostok"]  # 12:00, 21:00, 04:00, 19:00
LOCALES = [None, "ru", "en-US", "de"]
RUN_FIELDS = ("plan", "pos", "state", "due_at", "outcome", "finished_at", "message_class", "context")
MESSAGE_FIELDS = ("channel", "template_id", "step", "message_class", "status", "address", "units", "cost", "currency",
                  "not_before", "created_at", "attempts", "context", "cascade_id", "site_id")


def _population(app, n: int, seed: int) -> list[int]:
    rnd = random.Random(seed)
    ids = []
    for i in range(n):
        consents = {ch: {"granted": rnd.random() < 0.8, "source": "test"}
                    for ch in ("email", "whatsapp", "push", "sms") if rnd.random() < (0.3 if ch == "sms" else 0.85)}
        kw = dict(external_id=str(i), timezone=rnd.choice(ZONES), locale=rnd.choice(LOCALES), consents=consents,
                  email=f"c{i}@example.com" if rnd.random() < 0.7 else None,
                  phone=f"+7916{i:07d}" if rnd.random() < 0.7 else None,
                  whatsapp_id=f"7999{i:07d}" if rnd.random() < 0.2 else None)
        ids.append(h.customer(app, **kw))
        if rnd.random() < 0.3:
            with transaction(app.sessions) as s:
                service.register_device(s, data=DeviceIn(customer_id=ids[-1], token=f"fcm-token-{i:06d}"),
                                        now=app.clock.now())
    return ids


def _rows(s, run_ids):
    runs = {r.id: r for r in s.scalars(select(Run).where(Run.id.in_(run_ids)))}
    out_runs = {r.customer_id: tuple(getattr(r, f) for f in RUN_FIELDS) for r in runs.values()}
    out_msgs = {}
    for m in s.scalars(select(Message).where(Message.run_id.in_(run_ids))):
        assert m.idempotency_key == f"run:{m.run_id}:{m.step}"
        out_msgs[runs[m.run_id].customer_id] = tuple(getattr(m, f) for f in MESSAGE_FIELDS)
    return out_runs, out_msgs


def _per_run(app, cascade_id, ids, gone, message_class):
    """The reference: each customer started one by one and planned by the cascade job."""
    with app.sessions() as s:
        run_ids = [service.start_cascade(s, cascade_id=cascade_id, customer_id=c, now=app.clock.now(),
                                         message_class=message_class, idempotency_key=f"ref:{c}").id for c in ids]
        _remove(s, gone)
        while planner.advance_due(s, now=app.clock.now(), limit=10_000):
            pass
        rows = _rows(s, run_ids)
        s.rollback()
    return rows


def _set_based(app, cascade_id, ids, gone, message_class):
    with app.sessions() as s:
        camp = service.create_campaign(s, data=CampaignIn(cascade_id=cascade_id, name="x", customer_ids=ids,
                                                          message_class=message_class), now=app.clock.now())
        _remove(s, gone)
        assert campaigns.start_due_campaigns(s, now=app.clock.now()) == len(ids)
        rows = _rows(s, list(s.scalars(select(Run.id).where(Run.campaign_id == camp.id))))
        s.rollback()
    return rows


def _remove(s, customer_ids):
    s.execute(delete(Consent).where(Consent.customer_id.in_(customer_ids)))
    s.execute(delete(Customer).where(Customer.id.in_(customer_ids)))


@pytest.mark.parametrize("message_class", ["marketing", "transactional"])
def test_set_based_first_step_writes_the_per_run_planners_rows(app, message_class):
    h.setup_site(app, policy={"cap_count": 1, "quiet_start": "21:00", "quiet_end": "09:00"})
    for name, channel, langs in (("a", "email", ("ru", "en")), ("a", "whatsapp", ("en",)), ("a", "push", ("ru",)), ("a", "sms", ("ru",)),
                                 ("warm", "email", ("ru",))):
        for lang in langs:
            h.template(app, name, channel, language=lang)
    ids = _population(app, 160, seed=6)
    warm = h.cascade(app, [("email", "warm", 24)])  # earlier messages: their customers are at the cap
    with transaction(app.sessions) as s:
        service.create_campaign(s, data=CampaignIn(cascade_id=warm, name="warm", customer_ids=ids[::3]),
                                now=app.clock.now())
        campaigns.start_due_campaigns(s, now=app.clock.now())
    cascade = h.cascade(app, [("sms", "a", 2), ("email", "a", 24), ("whatsapp", "a", 12), ("push", "a", 1)])
    gone = ids[5:8]

    reference = _per_run(app, cascade, ids, gone, message_class)
    got = _set_based(app, cascade, ids, gone, message_class)

    assert got[0] == reference[0]
    assert got[1] == reference[1]
    outcomes = {r[4] for r in reference[0].values()}
    steps = {m[0] for m in reference[1].values()}
    deferred = sum(m[9] is not None for m in reference[1].values())
    assert {"customer_gone", "unreachable", None} <= outcomes and steps == {"sms", "email", "whatsapp", "push"}
    if message_class == "marketing":
        assert "frequency_cap" in outcomes and deferred > 0
    else:
        assert "frequency_cap" not in outcomes and deferred == 0


def test_a_cheapest_read_campaign_leaves_planning_to_the_cascade_job(app):
    h.setup_site(app)
    h.template(app, "a", "email")
    cascade = h.cascade(app, [("email", "a", 24)], mode="cheapest_read")
    anna = h.customer(app, channels=("email",))
    with transaction(app.sessions) as s:
        service.create_campaign(s, data=CampaignIn(cascade_id=cascade, name="x", customer_ids=[anna]),
                                now=app.clock.now())
        assert campaigns.start_due_campaigns(s, now=app.clock.now()) == 1
        (run,) = s.scalars(select(Run)).all()
        assert (run.pos, run.state, run.plan) == (-1, "waiting", None)
    h.drain(app)
    (msg,) = h.messages(app, customer_id=anna)
    assert msg.channel == "email"
