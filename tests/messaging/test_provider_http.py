"""The channels call their providers through the one outgoing client (`retento.core.http.Client`) and its SSRF
guard: the hosts of the provider URLs an administrator set are allowed for the channels only (the local
provider servers of these tests listen on 127.0.0.1); every other refused address stays refused."""

from __future__ import annotations

from retento.core.http import REFUSED
from retento.messaging.wiring import configure
from tests.messaging import helpers as h
from tests.messaging.conftest import settings_for


def test_the_provider_hosts_an_admin_set_are_allowed_for_the_channels_only(mapp, http_providers):
    url = f"{http_providers.url}/v21.0/{'1' * 15}/messages"
    channels = mapp.messaging.http.guard
    assert channels.url_refusal(url) is None  # 127.0.0.1, named by RETENTO_WHATSAPP_API_URL & co
    assert "loopback" in mapp.http.guard.url_refusal(url)  # webhooks: the application's own policy
    for other in ("http://10.1.2.3/", "http://169.254.169.254/latest/meta-data/", "http://localhost:9/"):
        assert channels.url_refusal(other) is not None, other
    assert all(ch.http is mapp.messaging.http for name, ch in mapp.messaging.channels.items() if name != "email")


def test_a_refused_provider_url_leaves_the_message_for_a_later_attempt(mapp, http_providers, smtp_server):
    configure(mapp, settings_for(http_providers, smtp_server, whatsapp_api_url="ftp://127.0.0.1/v21.0"))
    h.setup_site(mapp)
    h.template(mapp, "t", "whatsapp")
    h.start(mapp, h.cascade(mapp, [("whatsapp", "t", 1)]), h.customer(mapp))
    h.drain(mapp)
    (msg,) = h.messages(mapp)
    assert msg.status == "queued" and msg.attempts == 1 and msg.reason.startswith(REFUSED)
    assert http_providers.sent("whatsapp") == []
