"""Journey fixtures: the messaging app wired to the local providers, and an API client that may manage journeys."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from retento.api import create_app
from retento.apikeys import service as apikeys
from retento.core.db.transactions import transaction
from tests.messaging.conftest import http_providers, mapp, smtp_server  # noqa: F401 - fixtures


@pytest.fixture
def client(mapp):  # noqa: F811
    with transaction(mapp.sessions) as s:
        _, raw = apikeys.create(s, name="marketing", scopes="journeys:manage,messaging:read,messaging:write",
                                now=mapp.clock.now())
    with TestClient(create_app(mapp), headers={"X-API-Key": raw}) as c:
        yield c
