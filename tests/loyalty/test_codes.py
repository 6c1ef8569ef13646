"""Promo codes and personal discounts converted into points, through `retento loyalty import-codes` and
POST /api/v1/loyalty/programs/{site}/codes, on both databases: each code once, a report naming every skipped or
invalid row by line and field, a dry run that writes nothing."""

from __future__ import annotations

import json

from retento.cli import app as cli
from retento.core.db.transactions import transaction
from retento.loyalty.models import Code
from tests import factories as f
from tests.loyalty.helpers import account, member, operations, program
from tests.loyalty.test_api_cli import cli_env, client  # noqa: F401 - the fixture

CSV = """code,kind,customer_id,customer_external_id,phone,points,expires_in_days
SUMMER-1,promo_code,{c1},,,500,
VIP-ANNA,discount,,ext-2,,120.50,30
SUMMER-1,promo_code,{c1},,,500,
BAD-POINTS,promo_code,{c1},,,-5,
NOBODY,promo_code,,ghost,,10,
BOTH,promo_code,{c1},ext-2,,10,
PHONE-1,discount,,,8 916 123-45-67,7,
"""


def setup(app):
    f.site(app)
    program(app, welcome_bonus="0", activation_days=0, expiry_days=365)
    c1, acc1 = member(app, external_id="ext-1")
    c2 = f.customer(app, external_id="ext-2")
    f.customer(app, external_id="ext-3", phone="+79161234567")
    return c1, acc1, c2


def test_cli_converts_each_code_once_with_a_report(app, cli_env, tmp_path):  # noqa: F811
    c1, acc1, _ = setup(app)
    path = tmp_path / "codes.csv"
    path.write_text(CSV.format(c1=c1), encoding="utf-8")
    dry = cli_env.invoke(cli, ["loyalty", "import-codes", "shop", str(path), "--dry-run", "--json"])
    assert dry.exit_code == 1
    assert json.loads(dry.stdout.strip().splitlines()[-1])["converted"] == 4
    with transaction(app.sessions) as s:
        assert s.query(Code).count() == 0
    assert account(app, acc1).balance == 0

    r = cli_env.invoke(cli, ["loyalty", "import-codes", "shop", str(path), "--json"])
    assert r.exit_code == 1, r.output
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert (report["converted"], report["skipped"], report["invalid"], report["joined"], report["points"]) == (
        3, 1, 3, 2, "627.50")
    assert [(row["line"], row["status"], row["field"]) for row in report["rows"]] == [
        (4, "skipped", "code"), (5, "invalid", "points"), (6, "invalid", "customer_external_id"),
        (7, "invalid", "customer_id")]
    assert account(app, acc1).balance == 500
    ops = operations(app, acc1)
    assert [(o.kind, o.reason) for o in ops] == [("credit", "promo code SUMMER-1")]

    again = cli_env.invoke(cli, ["loyalty", "import-codes", "shop", str(path)])
    assert again.exit_code == 1 and "converted / переведено: 0" in again.stdout
    assert "line 2: skipped SUMMER-1 code" in again.stderr
    assert account(app, acc1).balance == 500

    bad = tmp_path / "bad.csv"
    bad.write_text("code,amount\nX,5\n", encoding="utf-8")
    r = cli_env.invoke(cli, ["loyalty", "import-codes", "shop", str(bad)])
    assert r.exit_code != 0 and "file" in r.output


def test_api_imports_a_csv_body(app):
    c1, acc1, c2 = setup(app)
    with client(app) as http:
        body = CSV.format(c1=c1).encode()
        r = http.post("/api/v1/loyalty/programs/shop/codes", content=body, headers={"Content-Type": "text/csv"})
        assert r.status_code == 200, r.text
        assert (r.json()["converted"], r.json()["invalid"]) == (3, 3)
        again = http.post("/api/v1/loyalty/programs/shop/codes", content=body, headers={"Content-Type": "text/csv"})
        assert (again.json()["converted"], again.json()["skipped"]) == (0, 4)
        r = http.post("/api/v1/loyalty/programs/shop/codes", content=b"nothing,here\n1,2\n")
        assert r.status_code in (400, 422) and r.json()["errors"][0]["field"] == "file"
        assert http.post("/api/v1/loyalty/programs/nowhere/codes", content=body).status_code == 404
    with transaction(app.sessions) as s:
        lot_days = {c.code: c.account_id for c in s.query(Code)}
    assert set(lot_days) == {"SUMMER-1", "VIP-ANNA", "PHONE-1"}
    expiring = account(app, lot_days["VIP-ANNA"]).lots[0]
    assert (expiring.expires_at - expiring.active_from).days == 30
