"""Console tests: HTTP-level ones through TestClient on the `app` fixture's database (SQLite and PostgreSQL), and
browser ones through Playwright driving Debian's chromium against a uvicorn server in a thread."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from retento.api import create_app
from retento.bootstrap import App
from retento.core.db.transactions import transaction
from retento.sites import service as sites
from retento.sites.schemas import SiteCreate
from retento.users import service as users

PASSWORD = "correct horse battery"


@dataclass
class World:
    app: App
    site_ids: dict[str, int]


def add_user(app: App, email: str, role: str, *, site_ids: list[int] | None = None, locale: str = "en") -> int:
    with transaction(app.sessions) as s:
        data = users.parse_create(email=email, role=role, password=PASSWORD, site_ids=site_ids, locale=locale,
                                  timezone="Europe/Moscow")
        return users.create(s, data=data, now=app.clock.now()).id


def add_sites(app: App) -> dict[str, int]:
    with transaction(app.sessions) as s:
        out = {}
        for code, currency in (("north", "RUB"), ("south", "EUR")):
            out[code] = sites.create_site(s, data=SiteCreate(code=code, name=f"Shop {code}", currency=currency),
                                          now=app.clock.now()).id
        return out


@pytest.fixture
def world(app: App) -> World:
    ids = add_sites(app)
    for role in ("admin", "marketer", "operator", "viewer"):
        add_user(app, f"{role}@example.com", role)
    add_user(app, "north@example.com", "operator", site_ids=[ids["north"]])
    return World(app, ids)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.app), follow_redirects=False) as c:
        yield c


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD, *, address_hint: str = "") -> str:
    """Sign in through the form; returns the session's CSRF token (from a page's meta tag)."""
    form = client.get("/signin")
    answer = client.post("/signin", data={"email": email, "password": password, "csrf_token": csrf_of(form.text),
                                          "next": "/account"})
    assert answer.status_code == 303, answer.text
    page = client.get("/account")
    assert page.status_code == 200
    return csrf_of(page.text)


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id at its smallest costs: the same code path, without ~0.1-1 s per hash on a busy machine."""
    monkeypatch.setenv("RETENTO_CONSOLE_PASSWORD_TIME_COST", "1")
    monkeypatch.setenv("RETENTO_CONSOLE_PASSWORD_MEMORY_KIB", "64")


@pytest.fixture(scope="session")
def console_server(sqlite_template, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    from tests.console.browser import Server, shop_app

    app = shop_app(sqlite_template, tmp_path_factory.mktemp("console"))
    server = Server(app).start()
    yield server
    server.stop()
    app.close()


@pytest.fixture(scope="session")
def browser():  # noqa: ANN201
    from playwright.sync_api import sync_playwright

    from tests.console.browser import ARGS, chromium_path

    path = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, console_server):  # noqa: ANN001, ANN201
    context = browser.new_context(base_url=console_server.url, locale="en-US")
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


def browser_sign_in(page, email: str) -> None:  # noqa: ANN001
    page.goto("/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/signin" not in url)
