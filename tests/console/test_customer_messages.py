"""A customer's messages on their profile over HTTP: channel, template, status (sent / delivered / read / failed)
and cost, after real sends of a cascade through the local SMTP and WhatsApp servers (worker driven by explicit
ticks, clock moved by hand); every message on its own page, newest first, by key."""

from __future__ import annotations

import re

from retento.core.db.transactions import transaction
from retento.messaging import service as messaging, statuses
from retento.messaging.wiring import configure
from tests.console.conftest import sign_in
from tests.console.test_messages import _customer, _template
from tests.messaging import helpers as h
from tests.messaging.conftest import http_providers, settings_for, smtp_server  # noqa: F401 (fixtures)


def test_the_profile_lists_the_customers_messages_with_status_and_cost(world, client, http_providers,  # noqa: F811
                                                                       smtp_server) -> None:  # noqa: F811
    app = world.app
    configure(app, settings_for(http_providers, smtp_server))
    csrf = sign_in(client, "marketer@example.com")
    client.post("/messages/channels/prices", data={"csrf_token": csrf, "site": "north", "currency": "RUB",
                                                   "email_price": "0.03", "whatsapp_price": "5.6"})
    _template(client, csrf, name="points", channel="email", subject="Бонусы", body="Здравствуйте!")
    _template(client, csrf, name="points", channel="whatsapp", body="Бонусы")
    anna = _customer(world, "Anna", "anna@example.com", "+79161234500")
    other = _customer(world, "Boris", "boris@example.com", "+79161234501")
    step = {"step0_channel": "email", "step0_template": "points", "step0_wait_hours": "2", "step0_go_on": "not_read",
            "step1_channel": "whatsapp", "step1_template": "points", "step1_wait_hours": "24"}
    assert client.post("/messages/cascades", data={"csrf_token": csrf, "site": "north", "name": "Bonus",
                                                   **step}).status_code == 303
    with transaction(app.sessions) as s:
        (cascade,) = messaging.list_cascades(s, site_id=world.site_ids["north"])
        for who in (anna, other):
            messaging.start_cascade(s, cascade_id=cascade.id, customer_id=who, now=app.clock.now())
    h.drain(app)
    app.clock.advance(hours=3)  # not read: on to WhatsApp
    h.drain(app)
    email, = [m for m in h.messages(app, channel="email") if m.customer_id == anna]
    whatsapp, = [m for m in h.messages(app, channel="whatsapp") if m.customer_id == anna]
    with transaction(app.sessions) as s:
        statuses.record(s, updates=[statuses.Update(whatsapp.id, "failed", app.clock.now(), error="number blocked")],
                        now=app.clock.now())

    sign_in(client, "viewer@example.com")
    page = client.get(f"/customers/{anna}").text
    section = re.search(r'id="messages-title".*?</section>', page, re.S).group(0)
    rows = {int(m.group(1)): m.group(0) for m in re.finditer(r"<tr><td>(\d+)</td>.*?</tr>", section, re.S)}
    assert set(rows) == {email.id, whatsapp.id}  # Anna's only
    assert list(rows) == [whatsapp.id, email.id]  # newest first
    assert "Sent" in rows[email.id] and "0.03" in rows[email.id] and ">points</a>" in rows[email.id]
    assert "Failed" in rows[whatsapp.id] and "number blocked" in rows[whatsapp.id] and "5.60" in rows[whatsapp.id]
    assert ">email<" in rows[email.id] and ">whatsapp<" in rows[whatsapp.id]

    every = client.get(f"/customers/{anna}/messages").text
    assert every.count("<tr><td>") == 2 and "Older messages" not in every
    older = client.get(f"/customers/{anna}/messages?before={whatsapp.id}").text
    assert f"<tr><td>{email.id}</td>" in older and f"<tr><td>{whatsapp.id}</td>" not in older
    app.messaging.close()


def test_another_sites_customer_messages_are_not_found(client, world) -> None:  # noqa: ANN001
    from tests import factories as f

    south = f.customer(world.app, site="south", email="s@example.com")
    sign_in(client, "north@example.com")
    assert client.get(f"/customers/{south}/messages").status_code == 404
    sign_in(client, "admin@example.com")
    page = client.get(f"/customers/{south}").text
    assert "No messages." in page
