"""Two first saves of one template (site, name, channel, language) at once on PostgreSQL: the second waits for the
first's row and replaces it, instead of failing on the unique key (a 500)."""

from __future__ import annotations

import pytest

from retento.bootstrap import bootstrap
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.messaging import service
from retento.messaging.models import Template
from retento.messaging.schemas import TemplateIn
from tests import factories as f
from tests.conftest import _truncate_pg
from tests.races import second_after_first


def template(body: str) -> TemplateIn:
    return TemplateIn(site="shop", name="welcome", channel="email", subject="Hi", body=body)


@pytest.mark.postgres
def test_two_first_saves_of_a_template_at_once_do_not_collide(pg_url):
    _truncate_pg(pg_url)
    clock = FrozenClock("2026-03-02T09:00:00+00:00")
    app = bootstrap(Settings(database_url=pg_url), clock=clock)
    first = app.sessions()
    try:
        f.site(app)
        service.save_template(first, data=template("first"), now=clock.now())
        got = second_after_first(
            app, first, lambda s: service.save_template(s, data=template("second"), now=clock.now()).body)
        assert got == {"result": "second"}
        with transaction(app.sessions) as s:
            assert [r.body for r in s.query(Template)] == ["second"]  # the later save wins, one row
    finally:
        first.close()
        app.close()
        _truncate_pg(pg_url)
