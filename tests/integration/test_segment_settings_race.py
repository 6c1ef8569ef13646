"""Two workers creating a site's segment settings at once on PostgreSQL (the RFM and cohort refreshes of two
`retento worker` processes on a site that has none yet): the second waits for the first's row and reads it,
instead of failing on the primary key (seen in `retento bench triggers` with 2 fire workers)."""

from __future__ import annotations

import pytest

from retento.bootstrap import bootstrap
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.segments import service
from retento.segments.models import SegmentSettings
from tests import factories as f
from tests.conftest import _truncate_pg
from tests.races import second_after_first


@pytest.mark.postgres
def test_two_workers_creating_a_sites_settings_at_once_do_not_collide(pg_url):
    _truncate_pg(pg_url)
    clock = FrozenClock("2026-03-02T09:00:00+00:00")
    app = bootstrap(Settings(database_url=pg_url), clock=clock)
    first = app.sessions()
    try:
        site_id = f.site(app)
        service.settings_row(first, site_id, now=clock.now())  # inserted, not committed yet
        got = second_after_first(app, first, lambda s: service.settings_row(s, site_id, now=clock.now()).site_id)
        assert got == {"result": site_id}
        with transaction(app.sessions) as s:
            assert s.query(SegmentSettings).count() == 1
    finally:
        first.close()
        app.close()
        _truncate_pg(pg_url)
