"""`retento report cascade ID` from the command line."""

import re

import pytest
from typer.testing import CliRunner

from retento.cli import app as cli
from retento.core.config import get_settings
from retento.messaging.tracking import token
from tests.messaging import helpers as h


@pytest.fixture
def runner(db_url, monkeypatch):
    monkeypatch.setenv("RETENTO_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_report_cascade_in_the_terminal(mapp, client, runner):
    h.setup_site(mapp)
    h.template(mapp, "t", "email")
    h.template(mapp, "t", "telegram")
    cid = h.cascade(mapp, [("email", "t", 1), ("telegram", "t", 1)])
    a, b = h.customer(mapp, external_id="a"), h.customer(mapp, external_id="b")
    h.start(mapp, cid, a)
    h.start(mapp, cid, b)
    h.drain(mapp)
    client.get(f"/api/v1/messaging/o/{token('s3cret', h.messages(mapp, customer_id=a)[0].id)}.gif")
    mapp.clock.advance(hours=2)
    h.drain(mapp)
    out = runner.invoke(cli, ["report", "cascade", str(cid)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert re.search(r"email\s+│\s+2\s+│\s+not reported / нет данных\s+│\s+1\s+│", out.output)
    assert re.search(r"telegram\s+│\s+1\s+│\s+not reported / нет данных\s+│\s+not reported", out.output)
    assert "members: 2; total cost: 0.06 RUB; cost per read: 0.06 RUB" in out.output
    assert "everyone through email: 0.06 RUB; gross saving: 0.00 RUB; net saving: 0.00 RUB" in out.output
    missing = runner.invoke(cli, ["report", "cascade", "999"])
    assert missing.exit_code == 1 and "cascade_id" in missing.output

