"""A cascade's waiting window counts per message from its own send time, not from the campaign's start."""

from datetime import timedelta

from retento.core.db.transactions import transaction
from retento.messaging import service
from retento.messaging.schemas import CampaignIn
from retento.messaging.wiring import configure
from tests.messaging import helpers as h
from tests.messaging.conftest import settings_for


def test_emails_sent_late_get_the_full_window_before_whatsapp(mapp, http_providers, smtp_server):
    h.setup_site(mapp, policy={"quiet_start": None, "quiet_end": None, "cap_count": None})
    h.template(mapp, "bonus", "email")
    h.template(mapp, "bonus", "whatsapp", body="Анна, у вас 350 бонусов")
    cid = h.cascade(mapp, [("email", "bonus", 24), ("whatsapp", "bonus", 24)])
    ids = [h.customer(mapp, external_id=str(i), phone=f"+7916123450{i}", channels=("email", "whatsapp"))
           for i in range(4)]
    mapp.messaging.close()
    configure(mapp, settings_for(http_providers, smtp_server, send_batch=1))  # one email per worker tick
    start = mapp.clock.now()
    with transaction(mapp.sessions) as s:
        service.create_campaign(s, data=CampaignIn(cascade_id=cid, name="Nov", customer_ids=ids), now=start)

    for _ in ids:  # a slow send: one email every 2 hours (the 4th goes 6 h after the campaign's start)
        mapp.worker.tick()
        mapp.clock.advance(hours=2)
    emails = h.messages(mapp, channel="email")
    assert [m.sent_at - start for m in emails] == [timedelta(hours=2 * i) for i in range(4)]

    for i in range(4):  # each customer gets WhatsApp at its email's send time + 24 h, not a second before
        due = start + timedelta(hours=24 + 2 * i)
        mapp.clock.advance(due - timedelta(seconds=1) - mapp.clock.now())
        mapp.worker.tick()
        assert len(http_providers.sent("whatsapp")) == i
        mapp.clock.advance(seconds=1)
        mapp.worker.tick()
        assert len(http_providers.sent("whatsapp")) == i + 1
    whatsapp = {m.customer_id: m for m in h.messages(mapp, channel="whatsapp")}
    for email in emails:
        assert whatsapp[email.customer_id].created_at - email.sent_at == timedelta(hours=24)
