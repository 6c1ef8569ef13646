"""Messages are never doubled or lost (issue 21), driven in one process by the injected clock, on both databases.

Two apps on one database stand for two worker processes; they share a FrozenClock. A slow provider is a real
channel wrapped so that each send takes its time on that clock, and runs the other worker's tick in the middle
of a batch, as a second worker process started later would."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from sqlalchemy import select

from retento.bootstrap import bootstrap
from retento.core import work
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.messaging import campaigns, outbox, planner, reports, service
from retento.messaging.models import Message
from retento.messaging.schemas import CampaignIn
from retento.messaging.wiring import configure
from tests.messaging import helpers as h
from tests.messaging.conftest import settings_for


class Slow:
    """A channel whose sends take `seconds` each on the shared frozen clock; `before[n]` runs before send n."""

    def __init__(self, inner, clock, seconds: float, before: dict[int, Callable[[], None]] | None = None):
        self.inner, self.clock, self.seconds, self.before, self.count = inner, clock, seconds, before or {}, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def send(self, batch):
        self.count += 1
        if self.count in self.before:
            self.before[self.count]()
        self.clock.advance(seconds=self.seconds * len(batch))
        return self.inner.send(batch)


class Killed(BaseException):
    """The worker process dies here (nothing in the worker catches it)."""


def _queue(app, channel: str, n: int, **contact) -> list[int]:
    """`n` queued messages of one channel, through a campaign."""
    h.setup_site(app)
    h.template(app, "t", channel, body="Бонусы, {{ customer.first_name }}")
    cascade = h.cascade(app, [(channel, "t", 24)])
    ids = [h.customer(app, external_id=str(i), email=f"c{i}@example.com", channels=(channel,),
                      **{k: v.format(i=i) for k, v in contact.items()}) for i in range(n)]
    with transaction(app.sessions) as s:
        service.create_campaign(s, data=CampaignIn(cascade_id=cascade, name="k", customer_ids=ids),
                                now=app.clock.now())
        campaigns.start_due_campaigns(s, now=app.clock.now())
    with transaction(app.sessions) as s:
        planner.advance_due(s, now=app.clock.now(), limit=n)
    return [m.id for m in h.messages(app, status="queued")]


@pytest.fixture
def second(mapp, db_url, clock, http_providers, smtp_server):
    """Another worker on the same database and clock."""
    other = bootstrap(Settings(database_url=db_url), clock=clock)
    yield other
    other.close()


def _send(app) -> int:
    """One turn of an app's send job."""
    return outbox.send_due(app.sessions, app.messaging, app.clock)


def _settings(http, smtp, **kw):
    return settings_for(http, smtp, **kw)


def _emails(smtp_server) -> list[str]:
    return [m["to"][0] for m in smtp_server.messages]


def test_a_batch_that_outlasts_its_lease_is_renewed_and_sent_once(mapp, second, http_providers, smtp_server):
    """Lease 10 s, a batch of 200 at 100 ms per message (20 s): a second worker ticking every 5 s finds nothing
    to take, every message arrives once, and each sent_at is the time its send returned."""
    ids = _queue(mapp, "email", 200)
    cfg = _settings(http_providers, smtp_server, send_batch=500, send_lease_seconds=10)
    first = configure(mapp, cfg)
    configure(second, cfg)
    start = mapp.clock.now()
    ticks = []
    first.channels["email"] = Slow(first.channels["email"], mapp.clock, 0.1,
                                   {n: lambda: ticks.append(_send(second)) for n in (50, 100, 150, 199)})
    assert _send(mapp) == 200
    assert ticks == [0, 0, 0, 0]
    assert sorted(_emails(smtp_server)) == sorted(f"c{i}@example.com" for i in range(200))  # each once
    rows = h.messages(mapp)
    assert {m.status for m in rows} == {"sent"} and [m.id for m in rows] == ids
    assert [round((m.sent_at - start).total_seconds(), 1) for m in rows] == [round(0.1 * i, 1) for i in range(1, 201)]
    assert all(m.lease_token is None and m.attempts == 1 for m in rows)


def test_a_worker_stalled_past_its_lease_loses_the_rest_and_still_records_its_open_send(
        mapp, second, http_providers, smtp_server):
    """The first send hangs for 15 s with a 10 s lease: the second worker takes the other messages over and sends
    them; the open one goes uncertain meanwhile, then the first worker's answer settles it as sent. The first
    worker sends nothing it lost."""
    _queue(mapp, "email", 3)
    cfg = _settings(http_providers, smtp_server, send_lease_seconds=10, send_in_flight=1)
    first = configure(mapp, cfg)
    configure(second, cfg)
    seen = {}

    def hang():
        mapp.clock.advance(seconds=15)
        seen["taken"] = _send(second)
        seen["status"] = [m.status for m in h.messages(mapp)]

    first.channels["email"] = Slow(first.channels["email"], mapp.clock, 0.1, {1: hang})
    _send(mapp)
    assert seen == {"taken": 3, "status": ["uncertain", "sent", "sent"]}
    assert sorted(_emails(smtp_server)) == ["c0@example.com", "c1@example.com", "c2@example.com"]
    rows = h.messages(mapp)
    assert [m.status for m in rows] == ["sent"] * 3 and rows[0].reason is None and rows[0].provider_id


def test_a_killed_worker_leaves_only_its_open_send_uncertain(mapp, second, http_providers, smtp_server):
    _queue(mapp, "email", 5)
    cfg = _settings(http_providers, smtp_server, send_lease_seconds=10, send_in_flight=1)
    first = configure(mapp, cfg)
    configure(second, cfg)

    def die():
        raise Killed()

    first.channels["email"] = Slow(first.channels["email"], mapp.clock, 0.1, {3: die})
    with pytest.raises(Killed):
        outbox.send_due(mapp.sessions, first, mapp.clock)
    assert [m.status for m in h.messages(mapp)] == ["sent", "sent", "sending", "claimed", "claimed"]
    assert _send(second) == 0  # the lease still runs
    mapp.clock.advance(seconds=11)
    assert _send(second) == 3
    rows = h.messages(mapp)
    assert [m.status for m in rows] == ["sent", "sent", "uncertain", "sent", "sent"]
    assert rows[2].reason.startswith("uncertain") and len(smtp_server.messages) == 4  # it never left, in fact
    with transaction(mapp.sessions) as s:
        st = work.stats(s, mapp.work.get("messages"), now=mapp.clock.now())
    assert (st.dead, st.due, st.leased) == (1, 0, 0)
    with transaction(mapp.sessions) as s:  # the report counts it apart from sent and failed
        (line,) = reports.report(s, cascade_id=1)["channels"]
        assert (line["sent"], line["failed"], line["uncertain"]) == (4, 0, 1)
    with transaction(mapp.sessions) as s:  # the operator resends it
        assert work.retry(s, mapp.work.get("messages"), [rows[2].id], now=mapp.clock.now()) == [rows[2].id]
    _send(second)
    assert [m.status for m in h.messages(mapp)] == ["sent"] * 5 and len(smtp_server.messages) == 5


def test_an_open_send_to_a_provider_that_drops_repeats_is_simply_resent(mapp, second, http_providers, smtp_server):
    """VK drops a repeat with the same random_id: the killed worker's open send is queued again, not uncertain."""
    _queue(mapp, "vk", 2, vk_id="77700{i}")
    cfg = _settings(http_providers, smtp_server, send_lease_seconds=10, send_in_flight=1)
    first = configure(mapp, cfg)
    configure(second, cfg)

    def die():
        raise Killed()

    inner = first.channels["vk"]
    first.channels["vk"] = Slow(inner, mapp.clock, 0.1, {2: lambda: (inner.send([_outgoing(mapp, 2)]), die())})
    with pytest.raises(Killed):
        outbox.send_due(mapp.sessions, first, mapp.clock)
    mapp.clock.advance(seconds=11)
    _send(second)
    assert [m.status for m in h.messages(mapp)] == ["sent", "sent"]
    assert sorted(x["peer_id"] for x in http_providers.sent("vk")) == ["777000", "777001"]  # each once


def test_a_killed_worker_leaves_at_most_its_group_in_flight_uncertain(mapp, second, http_providers, smtp_server):
    """Three messages in flight at a time: a worker killed inside a group leaves that group uncertain (one of
    them did leave), and the messages after it are sent by the next worker, each once."""
    _queue(mapp, "email", 5)
    cfg = _settings(http_providers, smtp_server, send_lease_seconds=10, send_in_flight=3)
    first = configure(mapp, cfg)
    configure(second, cfg)

    def die():
        raise Killed()

    first.channels["email"] = Slow(first.channels["email"], mapp.clock, 0.1, {2: die})
    with pytest.raises(Killed):
        outbox.send_due(mapp.sessions, first, mapp.clock)
    assert [m.status for m in h.messages(mapp)] == ["sending"] * 3 + ["claimed"] * 2
    mapp.clock.advance(seconds=11)
    assert _send(second) == 5
    assert [m.status for m in h.messages(mapp)] == ["uncertain"] * 3 + ["sent"] * 2
    assert sorted(_emails(smtp_server)) == ["c0@example.com", "c3@example.com", "c4@example.com"]


def test_a_worker_stalled_inside_its_group_sends_no_more_of_it_and_gives_the_rest_back(
        mapp, second, http_providers, smtp_server):
    """The first send of a group of three hangs past the lease: the second worker makes the group uncertain; the
    first records its one answer (sent) and sends none of the other two, which it gives back; they go out once."""
    _queue(mapp, "email", 3)
    cfg = _settings(http_providers, smtp_server, send_lease_seconds=10, send_in_flight=3)
    first = configure(mapp, cfg)
    configure(second, cfg)
    seen = {}

    def hang():
        mapp.clock.advance(seconds=15)
        seen["taken"] = _send(second)

    first.channels["email"] = Slow(first.channels["email"], mapp.clock, 0.1, {1: hang})
    _send(mapp)
    assert seen == {"taken": 3}
    assert [m.status for m in h.messages(mapp)] == ["sent", "queued", "queued"]
    assert _send(second) == 2
    assert [m.status for m in h.messages(mapp)] == ["sent"] * 3
    assert sorted(_emails(smtp_server)) == ["c0@example.com", "c1@example.com", "c2@example.com"]


def _outgoing(app, message_id):
    from retento.messaging.channels import Outgoing

    (m,) = [m for m in h.messages(app) if m.id == message_id]
    return Outgoing(id=m.id, idempotency_key=m.idempotency_key, to=m.address, text="Бонусы, Анна")


def test_a_worker_without_a_channels_settings_leaves_its_messages_due(mapp, second, http_providers, smtp_server,
                                                                      caplog):
    _queue(mapp, "email", 4)
    configure(mapp, _settings(http_providers, smtp_server, smtp_host=None))  # no SMTP here
    with caplog.at_level(logging.WARNING, logger="retento.messaging.outbox"):
        assert _send(mapp) == 0
    assert [(m.status, m.attempts, m.reason) for m in h.messages(mapp)] == [("queued", 0, None)] * 4
    assert "email" in caplog.text and "no settings" in caplog.text
    with transaction(mapp.sessions) as s:
        assert outbox.waiting_without_worker(s, configured=sorted(mapp.messaging.channels),
                                             now=mapp.clock.now()) == {"email": 4}
    configure(second, _settings(http_providers, smtp_server))
    assert _send(second) == 4
    assert [m.status for m in h.messages(mapp)] == ["sent"] * 4 and len(smtp_server.messages) == 4


def test_whatsapp_status_webhook_settles_an_uncertain_send(mapp, second, client, http_providers, smtp_server):
    from tests.messaging import providers as p

    _queue(mapp, "whatsapp", 2, whatsapp_id="+791612345{i}1")
    cfg = _settings(http_providers, smtp_server, send_lease_seconds=10, send_in_flight=1)
    first = configure(mapp, cfg)
    configure(second, cfg)
    inner = first.channels["whatsapp"]

    def arrive_then_die():  # the provider gets message 1, the worker dies before it hears back
        inner.send([_outgoing(mapp, 1)])
        raise Killed()

    first.channels["whatsapp"] = Slow(inner, mapp.clock, 0.1, {1: arrive_then_die})
    with pytest.raises(Killed):
        outbox.send_due(mapp.sessions, first, mapp.clock)
    mapp.clock.advance(seconds=11)
    _send(second)
    assert [m.status for m in h.messages(mapp)] == ["uncertain", "sent"]
    got = http_providers.sent("whatsapp")
    body = p.whatsapp_statuses([{"id": m["id"], "status": "sent", "to": m["to"],
                                 "callback": m["body"]["biz_opaque_callback_data"]} for m in got])
    assert client.post("/api/v1/messaging/webhooks/whatsapp", content=body,
                       headers={"X-Hub-Signature-256": p.meta_signature(body)}).status_code == 200
    rows = h.messages(mapp)
    assert [m.status for m in rows] == ["sent", "sent"] and rows[0].provider_id == got[0]["id"]
    with transaction(mapp.sessions) as s:
        assert s.scalar(select(Message.sent_at).where(Message.id == 1)) == rows[0].claimed_at
