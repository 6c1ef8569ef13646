"""Messaging fixtures: the local provider servers and an app whose channels point at them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from retento.messaging.config import MessagingSettings
from retento.messaging.wiring import configure
from tests.messaging import providers as p


@pytest.fixture(scope="session")
def http_providers() -> Iterator[p.HttpProviders]:
    server = p.HttpProviders()
    yield server
    server.close()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[p.SmtpServer]:
    server = p.SmtpServer()
    yield server
    server.close()


def settings_for(http: p.HttpProviders, smtp: p.SmtpServer, **kw) -> MessagingSettings:
    values = dict(
        public_url="http://testserver", messaging_secret="s3cret", smtp_host="127.0.0.1", smtp_port=smtp.port,
        email_from="news@shop.example", email_unsubscribe_mailto="unsubscribe@shop.example",
        whatsapp_api_url=f"{http.url}/v21.0", whatsapp_phone_number_id=p.PHONE_ID, whatsapp_token=p.WA_TOKEN,
        whatsapp_app_secret=p.APP_SECRET, whatsapp_verify_token="verify-me",
        telegram_api_url=http.url, telegram_bot_token=p.TG_TOKEN,
        vk_api_url=f"{http.url}/method", vk_token=p.VK_TOKEN, vk_secret="vk-secret", vk_confirmation="c0nf1rm",
        twilio_api_url=http.url, twilio_account_sid=p.TWILIO_SID, twilio_auth_token=p.TWILIO_AUTH,
        twilio_from="+15005550006", fcm_api_url=http.url, fcm_project_id="shop-app", fcm_access_token=p.FCM_TOKEN,
    )
    values.update(kw)
    return MessagingSettings(**values)


@pytest.fixture
def mapp(app, http_providers, smtp_server):
    """An app wired to the local providers, with their records cleared."""
    for v in http_providers.state.sent.values():
        v.clear()
    http_providers.state.vk_seen.clear()
    smtp_server.messages.clear()
    configure(app, settings_for(http_providers, smtp_server))
    yield app
    app.messaging.close()


@pytest.fixture
def client(mapp):
    from fastapi.testclient import TestClient

    from retento.api import create_app
    from retento.apikeys import service as apikeys
    from retento.core.db.transactions import transaction

    with transaction(mapp.sessions) as s:
        _, raw = apikeys.create(s, name="marketing", scopes="messaging:read,messaging:write", now=mapp.clock.now())
    with TestClient(create_app(mapp), headers={"X-API-Key": raw}) as c:
        yield c
