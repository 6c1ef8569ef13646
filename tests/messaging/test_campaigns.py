"""Campaigns through the API and the CLI: audience (everyone, a rule tree, a segment, ids), status and progress."""

import json
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from retento.cli import app as cli
from retento.core.config import get_settings
from retento.messaging.tracking import token
from tests import factories as f
from tests.messaging import helpers as h

CAMPAIGNS = "/api/v1/messaging/campaigns"


def _world(app) -> tuple[int, dict[str, int]]:
    """A shop with an email -> WhatsApp cascade, three customers (two tagged vip), and one of another site."""
    h.setup_site(app, policy={"quiet_start": None, "quiet_end": None, "cap_count": None})
    h.template(app, "bonus", "email")
    h.template(app, "bonus", "whatsapp", body="Анна, у вас 350 бонусов")
    cid = h.cascade(app, [("email", "bonus", 24), ("whatsapp", "bonus", 24)])
    people = {name: h.customer(app, external_id=name, phone=f"+7916123450{i}", tags=tags,
                               channels=("email", "whatsapp"))
              for i, (name, tags) in enumerate((("ann", ["vip"]), ("bob", ["vip", "sale"]), ("cat", [])))}
    f.site(app, code="other")
    people["other"] = h.customer(app, site="other", external_id="x")
    return cid, people


def _runs(app, campaign_id: int) -> set[int]:
    from sqlalchemy import select

    from retento.core.db.transactions import transaction
    from retento.messaging.models import Run

    with transaction(app.sessions) as s:
        return set(s.scalars(select(Run.customer_id).where(Run.campaign_id == campaign_id)))


def test_audience_everyone_or_a_rule_tree(mapp, client):
    cid, p = _world(mapp)
    everyone = client.post(CAMPAIGNS, json={"cascade_id": cid, "name": "All", "everyone": True})
    assert everyone.status_code == 201, everyone.text
    assert everyone.json()["audience"] == "everyone"
    vip = client.post(CAMPAIGNS, json={"cascade_id": cid, "name": "VIP",
                                       "rules": {"all": [{"tags": {"any": ["vip"]}}, {"not": {"tags": {"any": ["sale"]}}}]}})
    assert vip.status_code == 201, vip.text
    mapp.worker.tick()
    assert _runs(mapp, everyone.json()["id"]) == {p["ann"], p["bob"], p["cat"]}  # not the other site's customer
    assert _runs(mapp, vip.json()["id"]) == {p["ann"]}
    assert client.get(f"{CAMPAIGNS}/{vip.json()['id']}").json()["members"] == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"everyone": False}, "everyone"),
    ({"everyone": 1}, "everyone"),
    ({"everyone": True, "segment": "vip"}, ""),
    ({}, ""),
    ({"rules": {"tags": {"some": ["vip"]}}}, "rules.tags"),
    ({"rules": {"nope": {}}}, "rules"),
])
def test_bad_audience_is_refused_naming_the_field(mapp, client, body, field):
    cid, _ = _world(mapp)
    r = client.post(CAMPAIGNS, json={"cascade_id": cid, "name": "Bad", **body})
    assert r.status_code in (400, 422), r.text  # the schema: 422; the rule tree, read by segments: 400
    fields = [e["field"] for e in r.json()["errors"]]
    assert any(x.startswith(field) for x in fields), fields


def test_get_campaign_status_and_progress(mapp, client, http_providers):
    cid, p = _world(mapp)
    made = client.post(CAMPAIGNS, json={"cascade_id": cid, "name": "November", "everyone": True,
                                        "start_at": "2026-03-02T10:00:00+00:00"}).json()
    url = f"{CAMPAIGNS}/{made['id']}"
    view = client.get(url).json()
    assert (view["status"], view["members"], view["site"], view["progress"]) == ("scheduled", 0, "shop", [])

    mapp.clock.advance(hours=1)
    h.drain(mapp)
    view = client.get(url).json()
    assert (view["status"], view["members"], view["in_progress"]) == ("running", 3, 3)
    (email,) = view["progress"]
    assert (email["channel"], email["planned"], email["sent"], email["failed"]) == ("email", 0, 3, 0)
    assert Decimal(view["total_cost"]) == Decimal("0.09") and view["currency"] == "RUB"

    ann_mail = h.messages(mapp, customer_id=p["ann"])[0]
    client.get(f"/api/v1/messaging/o/{token('s3cret', ann_mail.id)}.gif")
    mapp.clock.advance(hours=25)
    h.drain(mapp)
    view = client.get(url).json()
    assert view["status"] == "running" and view["outcomes"] == {"read": 1, "in_progress": 2}
    email, whatsapp = view["progress"]
    assert (email["read"], whatsapp["channel"], whatsapp["sent"]) == (1, "whatsapp", 2)
    assert Decimal(view["total_cost"]) == Decimal("11.29")  # 3 × 0.03 + 2 × 5.6
    mapp.clock.advance(hours=25)
    h.drain(mapp)
    view = client.get(url).json()
    assert view["status"] == "finished" and view["outcomes"] == {"read": 1, "exhausted": 2}

    listed = client.get(CAMPAIGNS, params={"site": "shop"}).json()
    assert [(c["id"], c["status"], c["members"], c["cost"]) for c in listed["items"]] == [
        (made["id"], "finished", 3, {"RUB": "11.29"})]
    assert listed["next_cursor"] is None
    assert client.get(f"{CAMPAIGNS}/999").status_code == 404


def test_list_pages_on_with_a_cursor(mapp, client):
    cid, _ = _world(mapp)
    ids = [client.post(CAMPAIGNS, json={"cascade_id": cid, "name": f"c{i}", "everyone": True}).json()["id"]
           for i in range(3)]
    first = client.get(CAMPAIGNS, params={"limit": 2}).json()
    assert [c["id"] for c in first["items"]] == ids[:2] and first["next_cursor"]
    rest = client.get(CAMPAIGNS, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [c["id"] for c in rest["items"]] == ids[2:] and rest["next_cursor"] is None
    assert client.get(CAMPAIGNS, params={"cursor": "nope"}).status_code == 400


@pytest.fixture
def runner(db_url, monkeypatch):
    monkeypatch.setenv("RETENTO_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_create_show_and_list(mapp, runner, tmp_path):
    cid, p = _world(mapp)
    at = ["--start-at", mapp.clock.now().isoformat()]  # the command's own clock is the real one
    rules = tmp_path / "vip.json"
    rules.write_text('{"tags": {"any": ["vip"]}}')
    out = runner.invoke(cli, ["campaign", "create", "--cascade", str(cid), "--name", "VIP", "--rules", f"@{rules}", *at])
    assert out.exit_code == 0, out.output
    assert "campaign 1 scheduled" in out.output
    out = runner.invoke(cli, ["campaign", "create", "--cascade", str(cid), "--name", "All", "--everyone", *at])
    assert out.exit_code == 0, out.output
    out = runner.invoke(cli, ["campaign", "create", "--cascade", str(cid), "--name", "Two",
                              "--ids", f"{p['ann']},{p['cat']}", *at])
    assert out.exit_code == 0, out.output
    h.drain(mapp)
    assert _runs(mapp, 1) == {p["ann"], p["bob"]} and _runs(mapp, 3) == {p["ann"], p["cat"]}
    out = runner.invoke(cli, ["campaign", "show", "2"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    for line in ("status:         running", "audience:       everyone", "members:        3", "in the cascade: 3"):
        assert line in out.output, out.output
    shown = json.loads(runner.invoke(cli, ["campaign", "show", "2", "--format", "json"]).output)
    assert (shown["status"], shown["progress"][0]["sent"], shown["total_cost"]) == ("running", 3, "0.09")
    out = runner.invoke(cli, ["campaign", "list", "--site", "shop"], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and out.output.count("running") == 3, out.output

    bad = runner.invoke(cli, ["campaign", "create", "--cascade", str(cid), "--name", "Bad", "--rules", '{"x": 1}'])
    assert bad.exit_code == 1 and "rules" in bad.output, bad.output
    both = runner.invoke(cli, ["campaign", "create", "--cascade", str(cid), "--name", "Bad", "--everyone",
                               "--segment", "vip"])
    assert both.exit_code == 2 and "exactly one of" in both.output, both.output
    missing = runner.invoke(cli, ["campaign", "show", "99"])
    assert missing.exit_code == 1 and "campaign_id" in missing.output
