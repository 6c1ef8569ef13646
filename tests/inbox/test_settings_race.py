"""Two first saves of a site's inbox settings at once on PostgreSQL (two operators' consoles, or a console and an
API client): the second waits for the first's row and edits it, instead of failing on the primary key (a 500)."""

from __future__ import annotations

import pytest

from retento.core.db.transactions import transaction
from retento.inbox import service
from retento.inbox.models import Setting
from retento.inbox.schemas import SettingsIn
from tests.races import race  # noqa: F401 - the fixture


@pytest.mark.postgres
def test_two_first_saves_of_a_sites_settings_at_once_do_not_collide(race):  # noqa: F811
    now = race.app.clock.now()
    service.set_settings(race.first, site="shop", data=SettingsIn(assignment="round_robin"), now=now)
    got = race.second(lambda s: service.set_settings(s, site="shop", data=SettingsIn(assignment="by_load"),
                                                     now=now).assignment)
    assert got == {"result": "by_load"}
    with transaction(race.app.sessions) as s:
        assert [r.assignment for r in s.query(Setting)] == ["by_load"]  # the later save wins, one row
