"""`retento report cascade ID` from the command line."""

import csv
import io
import json
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
    wide = out.stdout
    assert re.search(r"│ 1\s+│ email\s+│\s+2 │\s+2 │ not reported / нет данных │\s+1 │\s+0 │\s+0 │\s+0 │\s+0\.06 │"
                     r"\s+50\.0% │\s+0\.06 │", wide)
    assert re.search(r"│ telegram\s+│\s+1 │\s+1 │ not reported / нет данных │ not reported / нет данных │", wide)
    assert re.search(r"│ in_progress\s+│\s+1 │", wide) and re.search(r"│ read\s+│\s+1 │", wide)  # outcomes
    for line in ("members:", "2"), ("total cost, RUB:", "0.06"), ("cost per read, RUB:", "0.06"),\
            ("most expensive channel:", "email"), ("everyone through it, RUB:", "0.06"),\
            ("gross saving, RUB:", "0.00"), ("net saving, RUB:", "0.00"):
        assert re.search(rf"^{re.escape(line[0])}\s+{re.escape(line[1])}$", wide, re.M), line
    narrow = runner.invoke(cli, ["report", "cascade", str(cid)], env={"COLUMNS": "60"}).stdout
    assert max(map(len, narrow.splitlines())) <= 60 and "…" not in narrow
    assert re.search(r"^read rate:\s+50\.0%$", narrow, re.M) and re.search(r"^net saving, RUB:\s+0\.00$", narrow, re.M)
    piped = runner.invoke(cli, ["report", "cascade", str(cid)], env={"COLUMNS": ""}).stdout
    assert "…" not in piped and re.search(r"│\s+0\.06 │\s+50\.0% │\s+0\.06 │", piped)
    rows = list(csv.DictReader(io.StringIO(runner.invoke(cli, ["report", "cascade", str(cid), "--format", "csv"])
                                           .stdout)))
    assert [(r["table"], r["channel"], r["sent"], r["read"], r["cost"], r["currency"]) for r in rows[:4]] == [
        ("steps", "email", "2", "1", "0.06", "RUB"), ("steps", "telegram", "1", "", "0.00", "RUB"),
        ("channels", "email", "2", "1", "0.06", "RUB"), ("channels", "telegram", "1", "", "0.00", "RUB")]
    assert {(r["outcome"], r["runs"]) for r in rows if r["table"] == "outcomes"} == {("in_progress", "1"), ("read", "1")}
    assert [(r["members"], r["net_saving"]) for r in rows if r["table"] == "summary"] == [("2", "0.00")]
    as_json = runner.invoke(cli, ["report", "cascade", str(cid), "--format", "json"]).stdout
    assert json.loads(as_json) == client.get(f"/api/v1/messaging/cascades/{cid}/report").json()
    missing = runner.invoke(cli, ["report", "cascade", "999"])
    assert missing.exit_code == 1 and "cascade_id" in missing.output

