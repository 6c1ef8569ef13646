"""Admin → Sites over HTTP: create (bad input named, nothing written), edit (not the code nor the main currency),
and which sites a console user sees, edited on the users page and seen from that user's next request."""

from __future__ import annotations

from retento.core.db.transactions import transaction
from retento.sites import service as sites
from retento.users import service as users
from tests import factories as f
from tests.console.conftest import sign_in

NEW = {"code": "east", "name": "Shop east", "currency": "kzt", "currencies": "KZT, RUB", "timezone": "Asia/Almaty",
       "default_region": "kz", "url": "https://east.example"}


def site(app, code: str):  # noqa: ANN001, ANN201
    with transaction(app.sessions) as s:
        x = sites.get_site(s, code)
        return (x.name, x.currency, x.currencies, x.timezone, x.default_region, x.url)


def test_an_admin_creates_and_edits_a_site(client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "admin@example.com")
    assert "Shop north" in client.get("/admin/sites").text
    made = client.post("/admin/sites", data={**NEW, "csrf_token": csrf})
    assert made.status_code == 303 and made.headers["location"] == "/admin/sites?saved=1"
    assert site(world.app, "east") == ("Shop east", "KZT", ["KZT", "RUB"], "Asia/Almaty", "KZ", "https://east.example")

    form = client.get("/admin/sites/east").text
    assert 'value="KZT, RUB"' in form and 'value="Asia/Almaty"' in form
    edited = client.post("/admin/sites/east", data={"name": "Shop east (KZ)", "currencies": "RUB", "timezone":
                                                    "Asia/Qyzylorda", "default_region": "KZ", "url": "",
                                                    "csrf_token": csrf})
    assert edited.status_code == 303
    # the main currency stays accepted; the URL may be cleared
    assert site(world.app, "east") == ("Shop east (KZ)", "KZT", ["KZT", "RUB"], "Asia/Qyzylorda", "KZ", None)


def test_bad_sites_are_refused_naming_the_field(client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "admin@example.com")
    for data, field in (({"code": "north"}, "code"), ({"code": "has space"}, "code"), ({"currency": "XXQ"}, "currency"),
                        ({"timezone": "Mars/Olympus"}, "timezone"), ({"default_region": "KAZ"}, "default_region"),
                        ({"name": ""}, "name")):
        answer = client.post("/admin/sites", data={**NEW, **data, "csrf_token": csrf})
        assert answer.status_code in (400, 409), (data, answer.status_code)
        assert f'<code translate="no">{field}</code>' in answer.text, (data, answer.text[-1500:])
    with transaction(world.app.sessions) as s:
        assert [x.code for x in sites.list_sites(s)] == ["north", "south"]
    bad = client.post("/admin/sites/north", data={"name": "x", "timezone": "nowhere", "default_region": "RU",
                                                  "csrf_token": csrf})
    assert bad.status_code == 400 and '<code translate="no">timezone</code>' in bad.text
    assert site(world.app, "north")[0] == "Shop north"
    assert client.get("/admin/sites/mars").status_code == 404


def test_an_admin_sets_the_sites_a_user_sees(client, world) -> None:  # noqa: ANN001
    app = world.app
    south_customer = f.customer(app, site="south", email="s@example.com")
    with transaction(app.sessions) as s:
        operator = users.by_email(s, "operator@example.com").id
    csrf = sign_in(client, "admin@example.com")
    answer = client.post(f"/admin/users/{operator}/sites", data={"site": ["north"], "csrf_token": csrf})
    assert answer.status_code == 303
    with transaction(app.sessions) as s:
        assert users.get(s, operator).site_ids == [world.site_ids["north"]]
    assert 'value="north" checked' in client.get("/admin/users").text

    sign_in(client, "operator@example.com")
    assert client.get(f"/customers/{south_customer}").status_code == 404
    sign_in(client, "admin@example.com")
    csrf = sign_in(client, "admin@example.com")
    client.post(f"/admin/users/{operator}/sites", data={"csrf_token": csrf})  # none checked: every site
    with transaction(app.sessions) as s:
        assert users.get(s, operator).site_ids is None
    sign_in(client, "operator@example.com")
    assert client.get(f"/customers/{south_customer}").status_code == 200
    assert client.post(f"/admin/users/{operator}/sites", data={"site": ["mars"], "csrf_token": csrf}).status_code in (
        403, 404)
