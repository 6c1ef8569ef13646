"""Inbox fixtures: the messaging providers' local servers (reused), an app whose channels point at them with the
webhook secrets of every provider, and API clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from retento.api import create_app
from retento.apikeys import service as apikeys
from retento.core.db.transactions import transaction
from retento.messaging.wiring import configure
from tests import factories as f
from tests.messaging import providers as p
from tests.messaging.conftest import http_providers, settings_for, smtp_server  # noqa: F401 - fixtures

TG_SECRET, VK_SECRET, IG_SECRET = "tg-webhook-secret", "vk-secret", "ig-app-secret"


@pytest.fixture
def iapp(app, http_providers, smtp_server):  # noqa: F811
    for v in http_providers.state.sent.values():
        v.clear()
    http_providers.state.vk_seen.clear()
    configure(app, settings_for(http_providers, smtp_server, telegram_webhook_secret=TG_SECRET,
                                instagram_api_url=f"{http_providers.url}/ig/v21.0", instagram_account_id=p.IG_ID,
                                instagram_token=p.IG_TOKEN, instagram_app_secret=IG_SECRET,
                                instagram_verify_token="ig-verify"))
    f.site(app, timezone="Europe/Moscow")
    yield app
    app.messaging.close()


def key(app, scopes: str = "inbox:read,inbox:write", sites: list[str] | None = None) -> str:
    with transaction(app.sessions) as s:
        _, raw = apikeys.create(s, name="operators", scopes=scopes, sites=sites, now=app.clock.now())
    return raw


@pytest.fixture
def web(iapp) -> Iterator[TestClient]:
    """A client without a key: what providers call."""
    with TestClient(create_app(iapp)) as c:
        yield c


@pytest.fixture
def api(iapp) -> Iterator[TestClient]:
    """An operators' client: a key with the inbox scopes for every site."""
    with TestClient(create_app(iapp), headers={"X-API-Key": key(iapp)}) as c:
        yield c
