"""Console Loyalty pages over HTTP (SQLite and PostgreSQL): program settings saved from the form and refused naming
the field, the preview of a sample order, a member's account with lots, ledger and upcoming expiries, manual
credit and charge once per form key, the roles that may do it, joining from the profile, and the P&L page."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

from fastapi.testclient import TestClient

from retento.core.db.transactions import transaction
from retento.loyalty import service
from retento.loyalty.schemas import JoinIn, ProgramIn, ProgramSettings
from tests import factories as f
from tests.console.conftest import World, add_user, sign_in
from tests.loyalty.helpers import CTX, account, operations, order, set_status

SETTINGS = {"name": "Клуб Север", "currency": "RUB", "active": "on", "percent": "5", "level_period_days": "365",
            "fixed_per_order": "0", "activation_days": "0", "expiry_days": "30", "warn_days": "7",
            "welcome_bonus": "100", "max_redeem_share": "30", "min_order_sum": "500", "holdout_share": "0",
            "birthday_multiplier": "2", "birthday_days": "3", "balance_thresholds": "",
            "levels.0.code": "base", "levels.0.name": "Base", "levels.0.threshold": "0", "levels.0.percent": "3",
            "levels.1.code": "gold", "levels.1.name": "Gold", "levels.1.threshold": "10000",
            "levels.1.percent": "7", "levels.2.code": "", "levels.2.name": "",
            "categories.0.category": "gifts", "categories.0.percent": "10",
            "multipliers.0.name": "Black Friday", "multipliers.0.starts_at": "2026-11-27",
            "multipliers.0.ends_at": "2026-11-29", "multipliers.0.multiplier": "1.5"}


def join_customer(app, site: str, customer_id: int) -> int:  # noqa: ANN001
    with transaction(app.sessions) as s:
        return service.join(s, data=JoinIn(site=site, customer_id=customer_id), ctx=CTX, now=app.clock.now())[0].id


def program(world: World) -> None:
    with transaction(world.app.sessions) as s:
        service.set_program(s, site="north", data=ProgramIn(name="Club", currency="RUB", settings=ProgramSettings(
            percent=Decimal(10), activation_days=0, expiry_days=30, welcome_bonus=Decimal(50))),
            now=world.app.clock.now())


def test_marketer_saves_the_settings_from_the_form(client: TestClient, world: World) -> None:
    csrf = sign_in(client, "marketer@example.com")
    page = client.get("/loyalty?site=north")
    assert page.status_code == 200 and "no loyalty program yet" in page.text
    answer = client.post("/loyalty/programs/north", data={**SETTINGS, "csrf_token": csrf})
    assert answer.status_code == 303, answer.text
    with transaction(world.app.sessions) as s:
        saved = service.program_out(s, service.get_program(s, "north"))
    assert saved.name == "Клуб Север" and saved.settings.max_redeem_share == Decimal("0.3")
    assert [(lv.code, lv.percent) for lv in saved.settings.levels] == [("base", 3), ("gold", 7)]
    assert saved.settings.categories["gifts"].percent == 10
    event = saved.settings.multipliers[0]
    assert event.ends_at - event.starts_at == timedelta(days=3)  # the last day is included, in the user's zone
    page = client.get("/loyalty?site=north&saved=1").text
    assert 'value="Gold"' in page and 'value="30"' in page and 'value="2026-11-29"' in page


def test_bad_settings_are_refused_naming_the_field_and_nothing_changes(client: TestClient, world: World) -> None:
    program(world)
    csrf = sign_in(client, "admin@example.com")
    bad = {**SETTINGS, "levels.1.percent": "150", "csrf_token": csrf}
    answer = client.post("/loyalty/programs/north", data=bad)
    assert answer.status_code == 400
    assert "levels.1.percent" in answer.text and 'value="150"' in answer.text  # the form as typed
    answer = client.post("/loyalty/programs/north", data={**SETTINGS, "expiry_days": "soon", "csrf_token": csrf})
    assert answer.status_code == 400 and "expiry_days" in answer.text
    with transaction(world.app.sessions) as s:
        assert service.get_program(s, "north").name == "Club"


def test_preview_shows_what_a_sample_order_earns_and_may_pay(client: TestClient, world: World) -> None:
    sign_in(client, "viewer@example.com")  # reading is open to every role
    query = {**SETTINGS, "sample_amount": "2000", "sample_points": "1000", "sample_category": "",
             "sample_birthday": "on"}
    answer = client.get("/loyalty/preview", params=query, headers={"HX-Request": "true"})
    assert answer.status_code == 200
    text = answer.text
    # 30% of 2000 may be paid: 600 of the 1000 asked; 1400 left earns 3% (base) or 7% (gold), x2 on the birthday
    assert "600.00" in text and "1,400.00" in text
    assert "84.00" in text and "196.00" in text
    answer = client.get("/loyalty/preview", params={**query, "sample_amount": "400"})
    assert "below the minimum order sum" in answer.text
    answer = client.get("/loyalty/preview", params={**query, "levels.0.percent": "x"})
    assert "levels.0.percent" in answer.text


def test_account_page_credit_and_charge_once_per_form_key(client: TestClient, world: World) -> None:
    program(world)
    app = world.app
    customer_id = f.customer(app, site="north", first_name="Ирина")
    account_id = join_customer(app, "north", customer_id)
    set_status(app, order(app, customer_id, ("x", "1000", 1), site="north"), "complete")  # +100 usable at once
    csrf = sign_in(client, "marketer@example.com")
    page = client.get(f"/loyalty/accounts/{account_id}")
    assert page.status_code == 200
    assert "150.00" in page.text and "Upcoming expiries" in page.text and "Welcome bonus" in page.text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)
    form = {"amount": "25", "reason": "apology for a late delivery", "idempotency_key": key, "csrf_token": csrf}
    for _ in range(2):  # sent twice: one credit
        answer = client.post(f"/loyalty/accounts/{account_id}/credit", data=form)
        assert answer.status_code == 303 and answer.headers["location"].endswith("saved=credit")
    assert account(app, account_id).balance == Decimal("175.00")
    answer = client.post(f"/loyalty/accounts/{account_id}/charge",
                         data={**form, "amount": "500", "idempotency_key": key + "-c"})
    assert answer.status_code == 400 and "amount" in answer.text and 'value="500"' in answer.text
    answer = client.post(f"/loyalty/accounts/{account_id}/charge",
                         data={**form, "amount": "75", "reason": "", "idempotency_key": key + "-c"})
    assert answer.status_code == 400 and "reason" in answer.text
    answer = client.post(f"/loyalty/accounts/{account_id}/charge",
                         data={**form, "amount": "75", "idempotency_key": key + "-c"})
    assert answer.status_code == 303
    kinds = [(o.kind, o.amount, o.source) for o in operations(app, account_id)]
    assert kinds[-2:] == [("credit", Decimal("25.00"), "user"), ("charge", Decimal("-75.00"), "user")]
    assert account(app, account_id).balance == Decimal("100.00")
    page = client.get(f"/loyalty/accounts/{account_id}").text
    assert "apology for a late delivery" in page and "Charge" in page


def test_operator_may_read_but_not_credit(client: TestClient, world: World) -> None:
    program(world)
    customer_id = f.customer(world.app, site="north")
    account_id = join_customer(world.app, "north", customer_id)
    csrf = sign_in(client, "operator@example.com")
    page = client.get(f"/loyalty/accounts/{account_id}")
    assert page.status_code == 200 and "Credit points" not in page.text
    answer = client.post(f"/loyalty/accounts/{account_id}/credit",
                         data={"amount": "10", "reason": "x", "idempotency_key": "k", "csrf_token": csrf})
    assert answer.status_code == 403
    assert account(world.app, account_id).balance == Decimal("50.00")


def test_profile_links_the_account_and_joins_a_customer(client: TestClient, world: World) -> None:
    program(world)
    customer_id = f.customer(world.app, site="north")
    csrf = sign_in(client, "marketer@example.com")
    profile = client.get(f"/customers/{customer_id}").text
    assert "Join the loyalty program" in profile
    answer = client.post("/loyalty/accounts", data={"customer_id": str(customer_id), "csrf_token": csrf})
    assert answer.status_code == 303
    account_id = int(answer.headers["location"].split("/")[-1].split("?")[0])
    profile = client.get(f"/customers/{customer_id}").text
    assert f'href="/loyalty/accounts/{account_id}"' in profile
    members = client.get("/loyalty/members?site=north").text
    assert f'href="/loyalty/accounts/{account_id}"' in members and "50.00" in members


def test_another_sites_account_is_not_found(client: TestClient, world: World) -> None:
    program(world)
    account_id = join_customer(world.app, "north", f.customer(world.app, site="north"))
    add_user(world.app, "s@example.com", "marketer", site_ids=[world.site_ids["south"]])
    csrf = sign_in(client, "s@example.com")
    assert client.get(f"/loyalty/accounts/{account_id}").status_code == 404
    answer = client.post(f"/loyalty/accounts/{account_id}/credit",
                         data={"amount": "10", "reason": "x", "idempotency_key": "k", "csrf_token": csrf})
    assert answer.status_code == 404


def test_pnl_page_shows_the_figures_and_the_charts(client: TestClient, world: World) -> None:
    program(world)
    app = world.app
    sign_in(client, "viewer@example.com")
    page = client.get("/loyalty/pnl?site=north")
    assert page.status_code == 200 and "launched just now" in page.text
    customer_id = f.customer(app, site="north")
    join_customer(app, "north", customer_id)
    app.clock.advance(timedelta(hours=1))
    set_status(app, order(app, customer_id, ("x", "2000", 1), site="north"), "complete")
    app.clock.advance(timedelta(hours=1))
    page = client.get("/loyalty/pnl?site=north")
    assert page.status_code == 200, page.text[-1500:]
    charts = {m.group(1): json.loads(m.group(2)) for m in re.finditer(
        r'<script type="application/json" id="([^"]+)">(.*?)</script>', page.text, re.S)}
    assert set(charts) == {"money-data", "liability-data", "cohort-data"}
    issued = next(x for x in charts["money-data"]["series"] if x["name"] == "Issued")["data"]
    assert sum(issued) == 250.0  # welcome 50 + 10% of 2000
    assert "Lifecycle before and after the launch" in page.text
    assert client.get("/loyalty/pnl?site=north&from=2026-13-01").status_code == 400


def test_pnl_figures_are_shown_again_for_five_minutes_with_their_time_and_computed_again_on_demand(
        client: TestClient, world: World) -> None:
    program(world)
    app = world.app
    sign_in(client, "viewer@example.com")
    customer_id = f.customer(app, site="north")
    join_customer(app, "north", customer_id)
    app.clock.advance(timedelta(hours=1))

    def issued(path: str) -> float:
        page = client.get(path)
        assert page.status_code == 200, page.text[-1500:]
        data = json.loads(re.search(r'<script type="application/json" id="money-data">(.*?)</script>', page.text,
                                    re.S).group(1))
        assert "Figures as of" in page.text
        return sum(next(x for x in data["series"] if x["name"] == "Issued")["data"])

    assert issued("/loyalty/pnl?site=north") == 50.0  # the welcome bonus
    set_status(app, order(app, customer_id, ("x", "2000", 1), site="north"), "complete")
    app.clock.advance(timedelta(minutes=1))
    assert issued("/loyalty/pnl?site=north") == 50.0  # as computed a minute ago, and the page says when
    assert issued("/loyalty/pnl?site=north&again=true") == 250.0
    set_status(app, order(app, customer_id, ("y", "1000", 1), site="north"), "complete")
    app.clock.advance(timedelta(minutes=6))
    assert issued("/loyalty/pnl?site=north") == 350.0


def test_pnl_lifecycle_section_waits_for_the_workers_cohort_report_on_a_large_site(
        client: TestClient, world: World) -> None:
    """A site of more buyers than `cohort_inline_buyers` with no stored cohort report: the P&L shows its figures
    and says the lifecycle is being computed (and does not keep that answer); after the worker's turn it shows it."""
    program(world)
    app = world.app
    app.settings.cohort_inline_buyers = 0
    sign_in(client, "viewer@example.com")
    customer_id = f.customer(app, site="north")
    join_customer(app, "north", customer_id)
    app.clock.advance(timedelta(hours=1))
    set_status(app, order(app, customer_id, ("x", "2000", 1), site="north"), "complete")
    app.derived["segments"]()  # the rollups, without the worker's refresh of the cohort report
    app.clock.advance(timedelta(hours=1))
    page = client.get("/loyalty/pnl?site=north")
    assert page.status_code == 200, page.text[-1500:]
    assert "The lifecycle figures are being computed in the background" in page.text
    assert 'id="money-data"' in page.text and 'id="cohort-data"' not in page.text
    app.worker.tick()
    page = client.get("/loyalty/pnl?site=north").text
    assert "being computed" not in page and 'id="cohort-data"' in page
