"""Segments and Cohorts pages over HTTP: the rule builder's live count and pointed errors, create / edit /
recompute, the size chart, the RFM grid and its members, the cohort report, initiatives added and edited."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient

from retento.core.db.transactions import transaction
from retento.segments import analytics, service as segments
from retento.segments.models import Initiative
from tests import factories as f
from tests.console.conftest import World, add_user, sign_in


def _shop(world: World) -> dict[str, int]:
    """Five north customers (three tagged vip), orders for two of them, one south customer tagged vip."""
    app = world.app
    ids = {}
    for n in range(5):
        ids[f"c{n}"] = f.customer(app, site="north", first_name=f"Buyer{n}", email=f"b{n}@example.com",
                                  tags=["vip"] if n < 3 else [])
    f.customer(app, site="south", first_name="Sven", tags=["vip"])
    now = app.clock.now()
    for n, count in ((0, 3), (1, 1)):
        for k in range(count):
            f.order(app, site="north", customer={"id": ids[f"c{n}"]}, status="complete",
                    created_at=(now - timedelta(days=40 * k + 3)).isoformat())
    app.worker.tick()
    return ids


def _builder(*rows: tuple[str, str, str, str, str], site: str = "north", match: str = "all",
             **more: str) -> dict[str, list[str]]:
    """The builder form's fields as the browser sends them (one value per row for each column)."""
    out = {"site": [site], "match": [match], **{k: [v] for k, v in more.items()}}
    for i, name in enumerate(("kind", "key", "op", "value", "days")):
        out[name] = [row[i] for row in rows]
    return out


def test_builder_live_count_pointed_errors_and_create_edit_recompute(client: TestClient, world: World) -> None:
    _shop(world)
    token = sign_in(client, "marketer@example.com")
    page = client.get("/segments/new")
    assert page.status_code == 200 and 'id="kind-0"' in page.text and 'hx-get="/segments/preview"' in page.text

    vip = client.get("/segments/preview", params=_builder(("tags", "any", "", "vip", "")))
    assert vip.status_code == 200
    assert re.search(r'id="live-count">3<', vip.text), vip.text  # the south vip is another site's
    both = client.get("/segments/preview", params=_builder(("tags", "any", "", "vip", ""),
                                                           ("orders", "count", "gte", "2", "")))
    assert re.search(r'id="live-count">1<', both.text) and "Buyer0" in both.text
    wrong = client.get("/segments/preview", params=_builder(("tags", "any", "", "vip", ""),
                                                            ("orders", "count", "gte", "many", ""), ("", "", "", "", "")))
    assert "live-count" not in wrong.text
    second = re.search(r'id="row-errors-1"[^>]*>(.*?)</div>', wrong.text, re.S)
    assert second and "value must be a number" in second.group(1), wrong.text  # the error sits under the wrong row
    assert re.search(r'id="row-errors-0"[^>]*></div>', wrong.text)

    more = client.get("/segments/builder", params=_builder(("tags", "any", "", "vip", ""), add="1"))
    assert more.headers["HX-Trigger-After-Settle"] == "builder-changed"
    assert 'id="kind-1"' in more.text and 'id="kind-2"' not in more.text

    made = client.post("/segments/new", data=_builder(("tags", "any", "", "vip", ""), csrf_token=token, code="vip",
                                                      name="VIP buyers"))
    assert made.status_code == 303, made.text
    segment_id = int(made.headers["location"].split("/")[2].split("?")[0])
    shown = client.get(made.headers["location"])
    assert "VIP buyers" in shown.text and 'data-chart="sizes-data"' in shown.text
    assert 'name="value" value="vip"' in shown.text  # the stored tree is shown as rows again
    assert client.get("/segments").text.count("VIP buyers") == 1

    bad = client.post("/segments/new", data=_builder(("tags", "any", "", "vip", ""), csrf_token=token,
                                                     code="Bad Code", name="x"))
    assert bad.status_code == 400 and "code" in bad.text

    nested = '{"all": [{"tags": {"any": ["vip"]}}, {"not": {"orders": {"metric": "count", "op": "gte", "value": 2}}}]}'
    edited = client.post(f"/segments/{segment_id}", data={"csrf_token": token, "name": "VIP, fewer orders",
                                                          "active": "1", "match": "all", "rules_json": nested})
    assert edited.status_code == 303, edited.text
    with transaction(world.app.sessions) as s:
        seg = segments.get(s, segment_id)
        assert (seg.name, seg.size) == ("VIP, fewer orders", 2)
    again = client.get(f"/segments/{segment_id}")
    assert "rules_json" in again.text and "&#34;not&#34;" in again.text  # not expressible as rows: JSON
    assert client.post(f"/segments/{segment_id}/recompute", data={"csrf_token": token}).status_code == 303
    assert client.post(f"/segments/{segment_id}", data={"csrf_token": token, "name": "x", "match": "all",
                                                        "rules_json": "{oops"}).status_code == 400


def test_rfm_heat_map_and_members_of_a_cell(client: TestClient, world: World) -> None:
    ids = _shop(world)
    with transaction(world.app.sessions) as s:
        analytics.compute_rfm(s, site_id=world.site_ids["north"], now=world.app.clock.now())
        score = analytics.customer_scores(s, customer_id=ids["c0"])
    sign_in(client, "viewer@example.com")
    grid = client.get("/segments/rfm?site=north")
    assert grid.status_code == 200
    link = f"/segments/rfm/members?site=north&r={score['r']}&f={score['f']}"
    assert link in grid.text
    members = client.get(link)
    assert members.status_code == 200 and f'/customers/{ids["c0"]}' in members.text
    assert client.get("/segments/rfm/members?site=north&r=9&f=1").status_code == 400


def test_cohorts_report_and_initiatives(client: TestClient, world: World) -> None:
    _shop(world)
    sign_in(client, "viewer@example.com")
    page = client.get("/cohorts?site=north")
    assert page.status_code == 200 and 'data-chart="moves-data"' in page.text and "Add an initiative" not in page.text
    client.cookies.clear()
    token = sign_in(client, "marketer@example.com")
    added = client.post("/cohorts/initiatives", data={"csrf_token": token, "site": "north", "kind": "campaign",
                                                      "name": "Spring sale", "started_at": "2026-02-10"})
    assert added.status_code == 303, added.text
    shown = client.get("/cohorts?site=north").text
    assert "Spring sale" in shown and "markLine" in shown
    with transaction(world.app.sessions) as s:
        item = s.query(Initiative).one()
    assert item.started_at.isoformat() == "2026-02-09T21:00:00+00:00"  # the day in the user's zone (Moscow)
    form = client.get(f"/cohorts/initiatives/{item.id}")
    assert 'value="2026-02-10"' in form.text
    edited = client.post(f"/cohorts/initiatives/{item.id}", data={
        "csrf_token": token, "kind": "trigger", "name": "Spring triggers", "started_at": "2026-02-10",
        "ended_at": "2026-02-01"})
    assert edited.status_code == 400 and "ended_at" in edited.text
    edited = client.post(f"/cohorts/initiatives/{item.id}", data={
        "csrf_token": token, "kind": "trigger", "name": "Spring triggers", "started_at": "2026-02-10",
        "ended_at": ""})
    assert edited.status_code == 303
    with transaction(world.app.sessions) as s:
        assert analytics.list_initiatives(s, site_id=world.site_ids["north"])[0]["name"] == "Spring triggers"
    bad = client.post("/cohorts/initiatives", data={"csrf_token": token, "site": "north", "name": "x",
                                                    "started_at": "10.02.2026"})
    assert bad.status_code == 400 and "started_at" in bad.text
    assert client.get("/cohorts?site=north&from=2026-13").status_code == 400


def test_another_sites_initiative_is_not_found(client: TestClient, world: World) -> None:
    with transaction(world.app.sessions) as s:
        s.add(Initiative(site_id=world.site_ids["south"], kind="other", name="South", started_at=world.app.clock.now(),
                         source="api", created_at=world.app.clock.now()))
    sign_in(client, "north@example.com")
    assert client.get("/cohorts/initiatives/1").status_code == 404


def test_a_large_sites_lifecycle_figures_are_computed_by_the_worker(client: TestClient, world: World) -> None:
    """Nothing stored yet and more buyers than `cohort_inline_buyers`: the dashboard's lifecycle fragment and the
    Cohorts page say the figures are being computed (translated) instead of reading every purchase; the worker's
    next turn stores the report and both show it. A site within the limit is computed on the request."""
    app = world.app
    app.settings.cohort_inline_buyers = 1
    now = app.clock.now()
    for n in range(2):
        cid = f.customer(app, site="north", first_name=f"Buyer{n}", email=f"b{n}@example.com")
        f.order(app, site="north", customer={"id": cid}, status="complete",
                created_at=(now - timedelta(days=40 + n)).isoformat())
    app.derived["segments"]()  # the rollups current, as without a worker turn yet
    sign_in(client, "viewer@example.com")
    notice = "The lifecycle figures are being computed in the background"
    lifecycle = client.get("/dashboard/lifecycle?site=north")
    assert lifecycle.status_code == 200 and notice in lifecycle.text and "figures as of" not in lifecycle.text
    page = client.get("/cohorts?site=north")
    assert page.status_code == 200 and notice in page.text and 'data-chart="moves-data"' not in page.text
    assert client.get("/dashboard/lifecycle?site=south").text.count(notice) == 0  # no buyers: computed at once
    client.cookies.clear()
    add_user(app, "ru@example.com", "viewer", locale="ru")
    sign_in(client, "ru@example.com")
    assert "Показатели жизненного цикла считаются в фоне" in client.get("/dashboard/lifecycle?site=north").text
    app.worker.tick()
    lifecycle = client.get("/dashboard/lifecycle?site=north").text
    assert "Показатели жизненного цикла считаются в фоне" not in lifecycle and "Churn" not in lifecycle
    client.cookies.clear()
    sign_in(client, "viewer@example.com")
    assert "figures as of" in client.get("/dashboard/lifecycle?site=north").text
    page = client.get("/cohorts?site=north").text
    assert notice not in page and 'data-chart="moves-data"' in page
