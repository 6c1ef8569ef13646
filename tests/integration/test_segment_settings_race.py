"""Two workers creating a site's segment settings at once on PostgreSQL (the RFM and cohort refreshes of two
`retento worker` processes on a site that has none yet): the second waits for the first's row and reads it,
instead of failing on the primary key (seen in `retento bench triggers` with 2 fire workers)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from retento.bootstrap import bootstrap
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.segments import service
from retento.segments.models import SegmentSettings
from tests import factories as f
from tests.conftest import _truncate_pg


@pytest.mark.postgres
def test_two_workers_creating_a_sites_settings_at_once_do_not_collide(pg_url):
    _truncate_pg(pg_url)
    clock = FrozenClock("2026-03-02T09:00:00+00:00")
    app = bootstrap(Settings(database_url=pg_url), clock=clock)
    first = app.sessions()
    try:
        site_id = f.site(app)
        service.settings_row(first, site_id, now=clock.now())  # inserted, not committed yet
        got: dict[str, object] = {}

        def second() -> None:
            try:
                with transaction(app.sessions) as s:
                    got["site_id"] = service.settings_row(s, site_id, now=clock.now()).site_id
            except Exception as e:  # noqa: BLE001 - reported below
                got["error"] = e

        thread = threading.Thread(target=second)
        thread.start()
        deadline = time.monotonic() + 10
        with app.engine.connect() as conn:  # the second's insert waits on the first's uncommitted row
            while not conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                        "AND wait_event_type = 'Lock'")).scalar():
                assert time.monotonic() < deadline and thread.is_alive(), got
                conn.rollback()
        first.commit()
        thread.join(10)
        assert got == {"site_id": site_id}
        with transaction(app.sessions) as s:
            assert s.query(SegmentSettings).count() == 1
    finally:
        first.close()
        app.close()
        _truncate_pg(pg_url)
