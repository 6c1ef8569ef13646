"""Two first saves of a site's inbox settings at once on PostgreSQL (two operators' consoles, or a console and an
API client): the second waits for the first's row and edits it, instead of failing on the primary key (a 500)."""

from __future__ import annotations

import pytest

from retento.bootstrap import bootstrap
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.inbox import service
from retento.inbox.models import Setting
from retento.inbox.schemas import SettingsIn
from tests import factories as f
from tests.conftest import _truncate_pg
from tests.races import second_after_first


@pytest.mark.postgres
def test_two_first_saves_of_a_sites_settings_at_once_do_not_collide(pg_url):
    _truncate_pg(pg_url)
    clock = FrozenClock("2026-03-02T09:00:00+00:00")
    app = bootstrap(Settings(database_url=pg_url), clock=clock)
    first = app.sessions()
    try:
        f.site(app)
        service.set_settings(first, site="shop", data=SettingsIn(assignment="round_robin"), now=clock.now())
        got = second_after_first(app, first, lambda s: service.set_settings(
            s, site="shop", data=SettingsIn(assignment="by_load"), now=clock.now()).assignment)
        assert got == {"result": "by_load"}
        with transaction(app.sessions) as s:
            assert [r.assignment for r in s.query(Setting)] == ["by_load"]  # the later save wins, one row
    finally:
        first.close()
        app.close()
        _truncate_pg(pg_url)
