"""Two first saves of one template (site, name, channel, language) at once on PostgreSQL: the second waits for the
first's row and replaces it, instead of failing on the unique key (a 500)."""

from __future__ import annotations

import pytest

from retento.core.db.transactions import transaction
from retento.messaging import service
from retento.messaging.models import Template
from retento.messaging.schemas import TemplateIn
from tests.races import race  # noqa: F401 - the fixture


def template(body: str) -> TemplateIn:
    return TemplateIn(site="shop", name="welcome", channel="email", subject="Hi", body=body)


@pytest.mark.postgres
def test_two_first_saves_of_a_template_at_once_do_not_collide(race):  # noqa: F811
    now = race.app.clock.now()
    service.save_template(race.first, data=template("first"), now=now)
    got = race.second(lambda s: service.save_template(s, data=template("second"), now=now).body)
    assert got == {"result": "second"}
    with transaction(race.app.sessions) as s:
        assert [r.body for r in s.query(Template)] == ["second"]  # the later save wins, one row
