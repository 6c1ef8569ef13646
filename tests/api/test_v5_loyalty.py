"""The RetailCRM API v5 loyalty methods driven by the official `retailcrm` client (5.3.0) against a real server,
on both databases: accounts, bonuses, operations, details, calculate / apply / cancel on orders, site isolation
and RetailCRM-shaped errors."""

from __future__ import annotations

import httpx

from tests import factories as f
from tests.api.test_v5 import crm, ok
from tests.loyalty.helpers import program, set_status

SETTINGS = {"percent": "5", "activation_days": 14, "expiry_days": 30, "welcome_bonus": "100",
            "max_redeem_share": "0.5", "levels": [{"code": "silver", "name": "Silver", "threshold": "0", "percent": "5"},
                                                  {"code": "gold", "name": "Gold", "threshold": "5000", "percent": "10"}]}


def test_accounts_bonuses_and_operations(app, server, clock):
    f.site(app)
    program(app, **SETTINGS)
    f.customer(app, external_id="c1", first_name="Anna", phone="+79161234567")
    client = crm(server)
    loyalties = ok(client.loyalty_loyalties())
    assert loyalties["pagination"]["totalCount"] == 1
    lid = loyalties["loyalties"][0]["id"]
    got = ok(client.loyalty_loyalty(lid))["loyalty"]
    assert (got["name"], got["currency"], got["active"]) == ("Club", "RUB", True)

    r = client.loyalty_account_create("shop", {"customer": {"externalId": "c1"}, "cardNumber": "2222 3333"})
    assert r.get_status_code() == 201
    acc = ok(r)["loyaltyAccount"]
    assert (acc["amount"], acc["cardNumber"], acc["phoneNumber"], acc["status"]) == (
        100, "2222 3333", "+79161234567", "activated")
    assert acc["level"] == {"type": "bonus_percent", "id": 1, "name": "Silver", "privilegeSize": 5}
    assert acc["nextLevelSum"] == 5000 and acc["loyalty"] == {"id": lid, "currency": "RUB"}
    again = ok(client.loyalty_account_create("shop", {"customer": {"externalId": "c1"}}))
    assert again["loyaltyAccount"]["id"] == acc["id"] and again["warnings"]
    by_phone = f.customer(app, external_id="c2", phone="+79160000002")
    other = ok(client.loyalty_account_create("shop", {"phoneNumber": "8 916 000-00-02"}))["loyaltyAccount"]
    assert other["customer"]["id"] == by_phone

    uid = acc["id"]
    bonus = ok(client.loyalty_account_bonus_credit(uid, 50.5, "2026-03-12", "2026-05-01", "sorry"))["loyaltyBonus"]
    assert bonus == {"amount": 50.5, "activationDate": "2026-03-12", "expireDate": "2026-05-01"}
    details = ok(client.loyalty_account_bonus_details(uid, "waiting_activation"))
    assert details["statistic"] == {"totalAmount": 50.5} and len(details["bonuses"]) == 1
    assert ok(client.loyalty_account_bonus_details(uid, "burn_soon"))["statistic"] == {"totalAmount": 100}
    ok(client.loyalty_account_bonus_charge(uid, 30, "gift"))
    assert ok(client.loyalty_account(uid))["loyaltyAccount"]["amount"] == 70
    r = client.loyalty_account_bonus_charge(uid, 500, "too much")
    assert (r.get_status_code(), r.get_error_msg()) == (400, "Errors in the entity format")
    assert "amount" in r.get_errors()
    r = client.loyalty_account_bonus_charge(uid, -5, "negative")
    assert r.get_status_code() == 400 and "amount" in r.get_errors()

    ops = ok(client.loyalty_account_bonus_operations(uid))
    assert [o["type"] for o in ops["bonusOperations"]] == ["charge_manual", "credit_manual", "credit_for_event"]
    assert ops["bonusOperations"][0]["amount"] == -30 and ops["bonusOperations"][1]["comment"] == "sorry"
    assert ops["bonusOperations"][1]["bonus"] == {"activationDate": "2026-03-12", "expireDate": "2026-05-01"}

    first = ok(client.loyalty_bonus_operations(limit=2))
    assert len(first["bonusOperations"]) == 2 and first["pagination"]["nextCursor"]
    assert first["bonusOperations"][0]["loyaltyAccount"] == {"id": uid}
    rest = ok(client.loyalty_bonus_operations(limit=2, cursor=first["pagination"]["nextCursor"]))
    assert len(rest["bonusOperations"]) == 2 and rest["pagination"] == {}

    ok(client.loyalty_account_edit(uid, {"cardNumber": "9999"}))
    listed = ok(client.loyalty_accounts({"cardNumber": "9999"}))
    assert [a["id"] for a in listed["loyaltyAccounts"]] == [uid]
    assert ok(client.loyalty_accounts())["pagination"]["totalCount"] == 2
    assert ok(client.loyalty_accounts({"customerExternalId": "c2"}))["loyaltyAccounts"][0]["id"] == other["id"]
    r = client.loyalty_account_edit(other["id"], {"cardNumber": "9999"})
    assert r.get_status_code() == 400 and "cardNumber" in r.get_errors()
    r = client.loyalty_account_edit(uid, {"phoneNumber": "+79160000000"})
    assert r.get_status_code() == 400 and "loyaltyAccount.phoneNumber" in r.get_errors()
    r = client.loyalty_accounts({"minAmount": "5"})
    assert r.get_status_code() == 400 and "filter[minAmount]" in r.get_errors()

    _, raw = f_key(app)
    httpx.patch(f"{server.url}/api/v1/loyalty/accounts/{uid}", json={"status": "blocked"},
                headers={"X-API-Key": raw}).raise_for_status()
    assert ok(client.loyalty_account(uid))["loyaltyAccount"]["active"] is False
    r = client.loyalty_account_bonus_charge(uid, 1, "blocked")
    assert r.get_status_code() == 400 and "accountId" in r.get_errors()
    assert ok(client.loyalty_account_activate(uid))["loyaltyAccount"]["status"] == "activated"

    assert (client.loyalty_account(999999).get_status_code(), client.loyalty_account(999999).get_error_msg()) == (
        404, "Not found")
    r = client.loyalty_account_bonus_details(uid, "nonsense")
    assert r.get_status_code() == 400 and "status" in r.get_errors()
    reader = crm(server, "loyalty:read")
    assert (reader.loyalty_account_bonus_charge(uid, 1, "x").get_status_code()) == 403


def f_key(app):
    from tests.api.conftest import make_key
    return make_key(app, "loyalty:read,loyalty:write")


def test_idempotency_key_makes_a_retry_change_nothing(app, server):
    f.site(app)
    program(app, **SETTINGS)
    f.customer(app, external_id="c1")
    _, raw = f_key(app)
    uid = ok(crm(server).loyalty_account_create("shop", {"customer": {"externalId": "c1"}}))["loyaltyAccount"]["id"]
    for _ in range(2):
        r = httpx.post(f"{server.url}/api/v5/loyalty/account/{uid}/bonus/charge", data={"amount": "10"},
                       headers={"X-API-KEY": raw, "Idempotency-Key": "once"})
        assert r.json() == {"success": True}
    assert ok(crm(server).loyalty_account(uid))["loyaltyAccount"]["amount"] == 90


def test_calculate_apply_and_cancel_on_an_order(app, server, clock):
    f.site(app)
    program(app, **{**SETTINGS, "activation_days": 0})
    f.product(app, "SKU-1", price="1000.00", category="books")
    customer_id = f.customer(app, external_id="c1")
    client = crm(server)
    uid = ok(client.loyalty_account_create("shop", {"customer": {"id": customer_id}}))["loyaltyAccount"]["id"]
    order = {"customer": {"externalId": "c1"}, "items": [{"offer": {"externalId": "SKU-1"}, "initialPrice": 1000,
                                                          "quantity": 2}], "delivery": {"cost": 300}}
    calc = ok(client.loyalty_calculate(order, site="shop", bonuses=40))
    assert calc["calculations"] == [{"privilegeType": "bonus_percent", "discount": 40, "creditBonuses": 98,
                                     "maxChargeBonuses": 100, "maximum": True}]
    assert calc["order"]["totalSumm"] == 2260 and calc["order"]["items"][0]["bonusesChargeTotal"] == 40
    assert calc["order"]["loyaltyAccount"] == {"id": uid, "amount": 100}
    r = client.loyalty_calculate(order, site="shop", bonuses=150)
    assert r.get_status_code() == 400 and "bonuses" in r.get_errors()
    stranger = ok(client.loyalty_calculate({"items": [{"initialPrice": 10, "quantity": 1}]}, site="shop"))
    assert stranger["calculations"][0]["privilegeType"] == "none"

    order_id = f.order(app, customer={"id": customer_id},
                       items=[{"name": "Book", "price": "1000.00", "quantity": 2, "category": "books"}])
    applied = ok(client.orders_loyalty_apply({"id": order_id}, site="shop", bonuses=60))["order"]
    assert applied["bonusesChargeTotal"] == 60 and applied["loyaltyAccount"] == {"id": uid, "amount": 40}
    assert ok(client.orders_loyalty_apply({"id": order_id}, bonuses=60))["order"]["loyaltyAccount"]["amount"] == 40
    r = client.orders_loyalty_apply({"id": order_id}, bonuses=20)
    assert r.get_status_code() == 400 and "bonuses" in r.get_errors()
    ops = ok(client.loyalty_account_bonus_operations(uid))["bonusOperations"]
    assert ops[0]["type"] == "charge_for_order" and ops[0]["order"] == {"id": order_id}
    ok(client.orders_loyalty_cancel_bonus_operations({"id": order_id}))
    ok(client.orders_loyalty_cancel_bonus_operations({"id": order_id}))
    assert ok(client.loyalty_account(uid))["loyaltyAccount"]["amount"] == 100
    assert ok(client.loyalty_account_bonus_operations(uid))["bonusOperations"][0]["type"] == "cancel_of_charge"
    set_status(app, order_id, "complete")
    ops = ok(client.loyalty_account_bonus_operations(uid))["bonusOperations"]
    assert (ops[0]["type"], ops[0]["amount"]) == ("credit_for_order", 100)
    r = client.orders_loyalty_apply({"id": 999999}, bonuses=5)
    assert (r.get_status_code(), r.get_error_msg()) == (404, "Not found")


def test_site_isolation(app, server):
    f.site(app)
    f.site(app, "other")
    program(app, **SETTINGS)
    program(app, site="other", **SETTINGS)
    f.customer(app, external_id="c1")
    f.customer(app, site="other", external_id="o1")
    client = crm(server)
    mine = ok(client.loyalty_account_create("shop", {"customer": {"externalId": "c1"}}))["loyaltyAccount"]
    theirs = ok(client.loyalty_account_create("other", {"customer": {"externalId": "o1"}}))["loyaltyAccount"]
    limited = crm(server, "loyalty:read,loyalty:write", sites=["shop"])
    assert [a["id"] for a in ok(limited.loyalty_accounts())["loyaltyAccounts"]] == [mine["id"]]
    assert [lo["id"] for lo in ok(limited.loyalty_loyalties())["loyalties"]] == [mine["loyalty"]["id"]]
    assert limited.loyalty_account(theirs["id"]).get_status_code() == 404
    assert limited.loyalty_account_bonus_credit(theirs["id"], 5, None, None, "x").get_status_code() == 404
    assert limited.loyalty_loyalty(theirs["loyalty"]["id"]).get_status_code() == 404
    r = limited.loyalty_account_create("other", {"customer": {"externalId": "o1"}})
    assert r.get_status_code() == 403
    ids = {o["loyaltyAccount"]["id"] for o in ok(limited.loyalty_bonus_operations(limit=100))["bonusOperations"]}
    assert ids == {mine["id"]}
