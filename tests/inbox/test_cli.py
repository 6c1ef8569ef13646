"""`retento inbox ...` through the real command."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from retento.cli import app as cli
from retento.core.config import get_settings
from tests.inbox import helpers as h, payloads as pl


@pytest.fixture
def runner(iapp, db_url, monkeypatch):
    monkeypatch.setenv("RETENTO_DATABASE_URL", db_url)
    monkeypatch.setenv("RETENTO_FROZEN_NOW", iapp.clock.now().isoformat())
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_assign_dialogs_exclude_and_response_times(iapp, web, api, runner):
    op = h.operator(iapp, "olga@shop.example")
    r = runner.invoke(cli, ["inbox", "assign", "--site", "shop", "--mode", "round_robin", "--operator", str(op)])
    assert r.exit_code == 0 and f"shop: round_robin, operators {op}" in r.output, r.output
    h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "Привет")))
    h.telegram(web, pl.tg_update(2, message=pl.tg_message(11, "Ещё", uid=999)))
    r = runner.invoke(cli, ["inbox", "dialogs", "--format", "json"])
    rows = json.loads(r.stdout)
    assert r.exit_code == 0 and {x["peer"] for x in rows} == {"5551234", "999"}
    assert {x["assignee_id"] for x in rows} == {op}
    r = runner.invoke(cli, ["inbox", "exclude", "--site", "shop", "999", "--purge"])
    assert r.exit_code == 0 and "telegram 999 excluded; 1 dialogs purged" in r.output
    assert [d["peer"] for d in h.dialogs(api)] == ["5551234"]
    r = runner.invoke(cli, ["inbox", "exclude", "--site", "nowhere", "5"])
    assert r.exit_code == 1 and "unknown site 'nowhere'" in r.output
    r = runner.invoke(cli, ["inbox", "exclude", "--site", "shop", "a b"])
    assert r.exit_code == 1 and "peer" in r.output
    h.reply(api, h.only_dialog(api)["id"], op, "Здравствуйте")
    r = runner.invoke(cli, ["inbox", "response-times", "--site", "shop", "--format", "json"])
    data = json.loads(r.stdout)
    assert data["first_response"]["count"] == 1 and data["operators"][0]["operator_id"] == op
    r = runner.invoke(cli, ["inbox", "response-times"])
    assert r.exit_code == 0 and "first response" in r.output
