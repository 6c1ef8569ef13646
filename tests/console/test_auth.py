"""Console sign-in, sessions, CSRF, roles and site isolation over HTTP."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from starlette.routing import Route

from retento.core.changes import ChangeContext
from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.customers.schemas import CustomerCreate
from retento.users import service as users, throttle
from tests import factories as f
from tests.console.conftest import PASSWORD, World, csrf_of, sign_in

# POST routes every role may use: the user's own session and preferences (users.schemas.AREAS "self")
OWN = {"/signin", "/signout", "/signout/everywhere", "/account"}


def console_posts(world: World) -> list[str]:
    """Every POST route of every registered console page, with path parameters filled in."""
    paths = []
    for page in world.app.parts.console_pages.values():
        for route in page.router.routes:
            if isinstance(route, Route) and "POST" in (route.methods or ()):
                paths.append(re.sub(r"\{[^}]+\}", "1", route.path))
    return sorted(set(paths))


def test_pages_need_a_session_and_sign_in_leads_back(client: TestClient) -> None:
    answer = client.get("/customers?q=x")
    assert answer.status_code == 303 and answer.headers["location"] == "/signin?next=%2Fcustomers%3Fq%3Dx"
    assert client.get("/customers", headers={"HX-Request": "true"}).headers["HX-Redirect"].startswith("/signin")
    form = client.get("/signin?next=/customers")
    answer = client.post("/signin", data={"email": "Admin@Example.com", "password": PASSWORD,
                                          "csrf_token": csrf_of(form.text), "next": "/customers"})
    assert answer.status_code == 303 and answer.headers["location"] == "/customers"
    assert "HttpOnly" in answer.headers["set-cookie"] and "SameSite=lax" in answer.headers["set-cookie"]
    assert client.get("/customers").status_code == 200


def test_wrong_password_and_open_redirect_refused(client: TestClient) -> None:
    form = client.get("/signin")
    answer = client.post("/signin", data={"email": "admin@example.com", "password": "wrong password",
                                          "csrf_token": csrf_of(form.text)})
    assert answer.status_code == 401 and "Wrong email or password." in answer.text
    answer = client.post("/signin", data={"email": "admin@example.com", "password": PASSWORD,
                                          "csrf_token": csrf_of(form.text), "next": "//evil.example/x"})
    assert answer.headers["location"] == "/"


def test_sign_in_form_needs_its_csrf_token(client: TestClient) -> None:
    client.get("/signin")
    answer = client.post("/signin", data={"email": "admin@example.com", "password": PASSWORD,
                                          "csrf_token": "forged"})
    assert answer.status_code == 403


def test_throttling_per_name_and_address_with_the_clock(client: TestClient, world: World) -> None:
    form = csrf_of(client.get("/signin").text)
    for _ in range(throttle.LIMIT):
        bad = client.post("/signin", data={"email": "admin@example.com", "password": "nope", "csrf_token": form})
        assert bad.status_code == 401
    right = {"email": "admin@example.com", "password": PASSWORD, "csrf_token": form}
    answer = client.post("/signin", data=right)
    assert answer.status_code == 429 and "Too many failed attempts" in answer.text
    # another name from the same address is not blocked
    assert client.post("/signin", data={**right, "email": "viewer@example.com"}).status_code == 303
    world.app.clock.advance(throttle.WINDOW + timedelta(seconds=1))
    right["csrf_token"] = csrf_of(client.get("/signin").text)  # a sign-in ends the form's token
    assert client.post("/signin", data=right).status_code == 303


def test_session_expires_and_sign_out_everywhere(world: World) -> None:
    from retento.api import create_app

    api = create_app(world.app)
    with TestClient(api, follow_redirects=False) as one, TestClient(api, follow_redirects=False) as two:
        token = sign_in(one, "operator@example.com")
        sign_in(two, "operator@example.com")
        assert one.post("/signout/everywhere", data={"csrf_token": token}).status_code == 303
        assert two.get("/customers").status_code == 303
        sign_in(two, "operator@example.com")
        world.app.clock.advance(hours=world.app.settings.console_session_hours, seconds=1)
        assert two.get("/customers").status_code == 303


def test_disabled_user_is_signed_out(client: TestClient, world: World) -> None:
    sign_in(client, "operator@example.com")
    with transaction(world.app.sessions) as s:
        users.set_disabled(s, user=users.by_email(s, "operator@example.com"))
    assert client.get("/").status_code == 303


def test_every_post_needs_the_csrf_token(client: TestClient, world: World) -> None:
    sign_in(client, "admin@example.com")
    for path in console_posts(world):
        if path == "/signin":
            continue
        assert client.post(path, data={}).status_code == 403, path
        assert client.post(path, data={"csrf_token": "forged"}).status_code == 403, path


def test_a_viewer_can_change_nothing(client: TestClient, world: World) -> None:
    token = sign_in(client, "viewer@example.com")
    posts = console_posts(world)
    assert len(posts) >= 6
    for path in posts:
        if path in OWN:
            continue
        for extra in ({"csrf_token": token}, {}):
            answer = client.post(path, data={"name": "x", "role": "admin", **extra}, headers={"X-CSRF-Token": token})
            assert answer.status_code == 403, path
    with transaction(world.app.sessions) as s:
        assert users.by_email(s, "viewer@example.com").role == "viewer"
    assert client.get("/admin/users").status_code == 403 and client.get("/admin/apikeys").status_code == 403
    assert client.get("/customers").status_code == 200


def test_roles_by_area(client: TestClient, world: World) -> None:
    with transaction(world.app.sessions) as s:
        cid = customers.create(s, data=CustomerCreate(site="north", first_name="Ann"),
                               ctx=ChangeContext.system(), now=world.app.clock.now()).id
    token = sign_in(client, "marketer@example.com")
    assert client.post(f"/customers/{cid}/tags", data={"csrf_token": token, "tags": "vip"}).status_code == 403
    assert client.post("/admin/apikeys", data={"csrf_token": token, "name": "k", "scope": "all"}).status_code == 403
    client.cookies.clear()
    token = sign_in(client, "operator@example.com")
    answer = client.post(f"/customers/{cid}/tags", data={"csrf_token": token, "tags": "vip, loyal"})
    assert answer.status_code == 303
    page = client.get(f"/customers/{cid}")
    assert "loyal" in page.text and "vip" in page.text
    assert re.search(r"<td>User</td>\s*<td translate=\"no\">user \d+</td>", page.text), "edit not in history as the user's"


def test_site_isolation(client: TestClient, world: World) -> None:
    now = world.app.clock.now()
    with transaction(world.app.sessions) as s:
        south = customers.create(s, data=CustomerCreate(site="south", first_name="Sven"),
                                 ctx=ChangeContext.system(), now=now).id
        north = customers.create(s, data=CustomerCreate(site="north", first_name="Nina"),
                                 ctx=ChangeContext.system(), now=now).id
    sign_in(client, "north@example.com")
    assert client.get(f"/customers/{north}").status_code == 200
    assert client.get(f"/customers/{south}").status_code == 404
    listing = client.get("/customers").text
    assert "Nina" in listing and "Sven" not in listing


def test_bad_input_names_the_field(client: TestClient) -> None:
    token = sign_in(client, "admin@example.com")
    answer = client.post("/admin/users", data={"csrf_token": token, "email": "new@example.com", "role": "boss",
                                               "password": "short"})
    assert answer.status_code == 400
    assert "role" in answer.text and "password" in answer.text


def test_order_status_changed_by_an_operator_is_their_change(client: TestClient, world: World) -> None:
    order_id = f.order(world.app, site="north")
    token = sign_in(client, "operator@example.com")
    bad = client.post(f"/orders/{order_id}/status", data={"csrf_token": token, "status": "no-such-status"})
    assert bad.status_code == 400 and "status" in bad.text
    answer = client.post(f"/orders/{order_id}/status", data={"csrf_token": token, "status": "complete"})
    assert answer.status_code == 303
    page = client.get(f"/orders/{order_id}").text
    assert re.search(r"<td>User</td>\s*<td translate=\"no\">user \d+</td>\s*<td translate=\"no\">status</td>", page)
