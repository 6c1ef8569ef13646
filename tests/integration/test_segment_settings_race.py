"""Two workers creating a site's segment settings at once on PostgreSQL (the RFM and cohort refreshes of two
`retento worker` processes on a site that has none yet): the second waits for the first's row and reads it,
instead of failing on the primary key (seen in `retento bench triggers` with 2 fire workers)."""

from __future__ import annotations

import pytest

from retento.core.db.transactions import transaction
from retento.segments import service
from retento.segments.models import SegmentSettings
from tests.races import race  # noqa: F401 - the fixture


@pytest.mark.postgres
def test_two_workers_creating_a_sites_settings_at_once_do_not_collide(race):  # noqa: F811
    now = race.app.clock.now()
    service.settings_row(race.first, race.site_id, now=now)  # inserted, not committed yet
    got = race.second(lambda s: service.settings_row(s, race.site_id, now=now).site_id)
    assert got == {"result": race.site_id}
    with transaction(race.app.sessions) as s:
        assert s.query(SegmentSettings).count() == 1
