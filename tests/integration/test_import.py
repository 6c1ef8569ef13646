"""`retento import`: CSV and JSON Lines through the services; idempotent on externalId; bad rows rejected by line."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from retento import batch
from retento.catalog.models import Product
from retento.cli import app as cli
from retento.core.bus import Event
from retento.core.config import get_settings
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.customers import service as customers
from retento.customers.models import Customer
from retento.history.models import HistoryEntry
from retento.imports.formats import UnusableInput
from retento.imports.schemas import Kind
from retento.imports.service import import_file
from retento.orders import service as orders
from retento.orders.models import Order, OrderItem
from retento.sites import service as sites
from retento.sites.schemas import SiteCreate
from tests import factories as f

CUSTOMERS_CSV = """\
externalId,first_name,last_name,email,phone,birthday,tags,consents.email,consents.email.at,personal_dates.wedding
c1,Anna,Smirnova,Anna@Example.com,8 916 123-45-67,1990-04-05,vip;newsletter,yes,2025-05-01T10:00:00+03:00,2015-06-20
c2,Boris,Ivanov,boris@example,,,,,,
c3,Clara,Oswald,clara@example.com,+7 916 000,,,,,
c4,Dmitry,Volkov,dmitry@example.com,,1990-02-30,,,,
c5,Elena,Petrova,elena@example.com,+79161112233,,"a;b",no,,
"""


def run(app, tmp_path: Path, name: str, text: str, kind: Kind, **kw):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return import_file(app.sessions, clock=app.clock, kind=kind, path=path, **kw)


def counts(app) -> dict[str, int]:
    with transaction(app.sessions) as s:
        return {m.__name__: s.scalar(select(func.count()).select_from(m))
                for m in (Customer, Order, OrderItem, HistoryEntry, Event, Product)}


def customer(app, external_id: str, site: str = "shop"):
    with transaction(app.sessions) as s:
        c = customers.get_by_external_id(s, site=site, external_id=external_id)
        return customers.snapshot(s, c)


def test_csv_customers_good_rows_stored_bad_rows_rejected_by_line_and_field(app, tmp_path):
    f.site(app)
    result = run(app, tmp_path, "customers.csv", CUSTOMERS_CSV, Kind.CUSTOMERS, site="shop")

    assert result.total == 5 and result.counts["created"] == 2
    rejected = dict(result.rejected)
    assert sorted(rejected) == [3, 4, 5]
    assert rejected[3].startswith("email: invalid email")
    assert rejected[4].startswith("phone: invalid phone number")
    assert rejected[5].startswith("birthday: ")
    anna = customer(app, "c1")
    assert (anna["email"], anna["phone"], anna["tags"]) == ("anna@example.com", "+79161234567", ["newsletter", "vip"])
    assert anna["personal_dates"] == {"wedding": "2015-06-20"}
    assert anna["consents"]["email"]["granted"] is True
    assert anna["consents"]["email"]["at"].isoformat() == "2025-05-01T07:00:00+00:00"
    assert customer(app, "c5")["consents"]["email"]["granted"] is False
    with transaction(app.sessions) as s:
        stored = set(s.scalars(select(Customer.external_id)))
    assert stored == {"c1", "c5"}  # nothing of a bad row

    rejects = tmp_path / "customers.rejects.csv"
    assert result.rejects_path == rejects
    lines = rejects.read_text(encoding="utf-8").splitlines()
    assert lines[0] == CUSTOMERS_CSV.splitlines()[0]
    assert lines[1:] == CUSTOMERS_CSV.splitlines()[2:5]
    report = (tmp_path / "customers.rejects.errors").read_text(encoding="utf-8").splitlines()
    assert [r.split(":")[0] for r in report] == ["line 3", "line 4", "line 5"]
    assert report[0].startswith("line 3: email: invalid email")


def test_reimport_is_idempotent_and_updates_record_source_import(app, tmp_path, clock):
    f.site(app)
    first = run(app, tmp_path, "customers.csv", CUSTOMERS_CSV, Kind.CUSTOMERS, site="shop")
    after_first = counts(app)
    clock.advance(hours=1)
    second = run(app, tmp_path, "customers.csv", CUSTOMERS_CSV, Kind.CUSTOMERS, site="shop")
    assert counts(app) == after_first  # nothing duplicated, no history for an unchanged row
    assert second.counts == {"created": 0, "updated": 0, "unchanged": 2}
    assert [line for line, _ in second.rejected] == [line for line, _ in first.rejected]

    changed = CUSTOMERS_CSV.replace("c1,Anna,Smirnova", "c1,Anya,Smirnova")
    third = run(app, tmp_path, "customers.csv", changed, Kind.CUSTOMERS, site="shop")
    assert third.counts == {"created": 0, "updated": 1, "unchanged": 1}
    assert counts(app)["Customer"] == 2
    with transaction(app.sessions) as s:
        rows = list(s.scalars(select(HistoryEntry).order_by(HistoryEntry.id)))
    assert all((r.source, r.actor_type, r.actor_id) == ("import", "system", "customers.csv") for r in rows)
    assert [(r.field, r.old_value, r.new_value) for r in rows if not r.created] == [("first_name", "Anna", "Anya")]


def test_repeated_external_id_in_one_batch_updates_instead_of_duplicating(app, tmp_path):
    f.site(app)
    text = "\n".join(json.dumps(r) for r in [
        {"site": "shop", "externalId": "c1", "firstName": "Anna", "tags": ["a"]},
        {"site": "shop", "externalId": "c2", "firstName": "Boris"},
        {"site": "shop", "externalId": "c1", "firstName": "Anya"},
        {"site": "shop", "externalId": "c1", "email": "bad"},
    ]) + "\n"
    result = run(app, tmp_path, "customers.jsonl", text, Kind.CUSTOMERS)
    assert result.counts == {"created": 2, "updated": 1, "unchanged": 0}
    assert [line for line, _ in result.rejected] == [4]
    assert counts(app)["Customer"] == 2
    assert customer(app, "c1")["first_name"] == "Anya"
    assert customer(app, "c1")["tags"] == ["a"]


ORDERS = [
    {"externalId": "o1", "customer": {"externalId": "c1"}, "status": "client-confirmed",
     "items": [{"offerId": "SKU-1", "quantity": 2}, {"name": "Assembly", "kind": "service", "price": "500"}],
     "delivery": {"type": "courier", "cost": "300", "address": {"city": "Москва"}}},
    {"externalId": "o2", "status": "lost-in-space", "items": [{"offer_id": "SKU-1"}]},
    {"externalId": "o3", "site": "nowhere", "items": [{"offer_id": "SKU-1"}]},
    {"externalId": "o4", "items": [{"name": "A", "price": "10", "quantity": -2}]},
    {"externalId": "o5", "currency": "EUR", "items": [{"offer_id": "SKU-1"}]},
    {"externalId": "o6", "created_at": "2025-02-30T10:00:00+00:00", "items": [{"offer_id": "SKU-1"}]},
    {"externalId": "o7", "items": [{"offer_id": "SKU-404"}]},
    {"externalId": "o8", "created_at": "2025-06-01T10:00:00+03:00", "items": [{"offer_id": "SKU-1"}],
     "payment": {"type": "card", "status": "paid", "paid_amount": "100"}},
]


def test_jsonl_orders_bad_rows_rejected_nothing_of_them_stored(app, tmp_path):
    f.site(app)
    f.product(app, "SKU-1", price="100.00")
    f.customer(app, external_id="c1")
    text = "\n".join(json.dumps(o, ensure_ascii=False) for o in ORDERS[:4]) + "\n\n{not json\n" + "\n".join(
        json.dumps(o) for o in ORDERS[4:]) + "\n"
    before = counts(app)
    result = run(app, tmp_path, "orders.jsonl", text, Kind.ORDERS, site="shop")

    assert result.counts["created"] == 2
    rejected = dict(result.rejected)
    assert sorted(rejected) == [2, 3, 4, 6, 7, 8, 9]
    assert rejected[2] == "status: unknown status 'lost-in-space'"
    assert rejected[3] == "site: unknown site 'nowhere'"
    assert rejected[4].startswith("items.0.quantity: Input should be greater than 0")
    assert rejected[6].startswith("json: not valid JSON")
    assert rejected[7].startswith("currency: site 'shop' does not accept EUR")
    assert rejected[8].startswith("created_at: ")
    assert rejected[9].startswith("items.0.offer_id: no product with offer id 'SKU-404'")
    after = counts(app)
    assert (after["Order"] - before["Order"], after["OrderItem"] - before["OrderItem"]) == (2, 3)
    assert after["HistoryEntry"] - before["HistoryEntry"] == 2 and after["Event"] - before["Event"] == 2
    with transaction(app.sessions) as s:
        o1 = orders.find(s, site_id=1, external_id="o1")
        assert (o1.status, o1.total, o1.customer_id is not None) == ("client-confirmed", Decimal("1000.00"), True)
        o8 = orders.find(s, site_id=1, external_id="o8")
        assert o8.created_at.isoformat() == "2025-06-01T07:00:00+00:00" and o8.payment_status == "paid"
    rejects = (tmp_path / "orders.rejects.jsonl").read_text(encoding="utf-8").splitlines()
    assert rejects[0] == json.dumps(ORDERS[1]) and rejects[3] == "{not json"

    again = run(app, tmp_path, "orders.jsonl", text, Kind.ORDERS, site="shop")
    assert again.counts == {"created": 0, "updated": 0, "unchanged": 2}
    assert counts(app) == after


def test_csv_orders_with_item_shorthand_and_updates(app, tmp_path, clock):
    f.site(app, "ru", currency="RUB")
    f.product(app, "SKU-1", site_code="ru", price="100.00")
    f.product(app, "SRV-1", site_code="ru", price="1500.00", kind="service")
    f.customer(app, site="ru", external_id="c1")
    text = ("site;externalId;customer;status;items;delivery.cost;payment.type\n"
            "ru;o1;c1;new;\"SKU-1:3;SRV-1\";250;cash\n")
    assert run(app, tmp_path, "orders.csv", text, Kind.ORDERS).counts["created"] == 1
    clock.advance(days=1)
    result = run(app, tmp_path, "orders.csv", text.replace(";new;", ";complete;"), Kind.ORDERS)
    assert result.counts == {"created": 0, "updated": 1, "unchanged": 0}
    with transaction(app.sessions) as s:
        o = orders.find(s, site_id=1, external_id="o1")
        assert (o.status, o.total, o.payment_type) == ("complete", Decimal("2050.00"), "cash")
        assert [(i["offer_id"], i["kind"], i["quantity"]) for i in orders.items_of(s, o.id)] == [
            ("SKU-1", "product", Decimal("3.000")), ("SRV-1", "service", Decimal("1.000"))]
        status = s.scalars(select(HistoryEntry).where(HistoryEntry.field == "status", ~HistoryEntry.created)).one()
        assert (status.old_value, status.new_value, status.source) == ("new", "complete", "import")


def test_russian_excel_csv_with_semicolons_and_bom(app, tmp_path):
    f.site(app)
    text = ("\ufeffexternal_id;first_name;last_name;email_confirmed;consents.sms;interests;locale\n"
            "к1;Анна;Смирнова;да;нет;сад;посуда;ru\n")
    text = text.replace("сад;посуда", '"сад;посуда"')
    result = run(app, tmp_path, "клиенты.csv", text, Kind.CUSTOMERS, site="shop")
    assert result.rejected == [] and result.counts["created"] == 1
    anna = customer(app, "к1")
    assert (anna["first_name"], anna["email_confirmed"], anna["interests"]) == ("Анна", True, ["посуда", "сад"])
    assert anna["consents"]["sms"]["granted"] is False


def test_products_goods_and_services(app, tmp_path):
    f.site(app)
    text = ("offer_id,name,category,kind,price\n"
            "SKU-1,Teapot,Kitchen,product,1200\n"
            "SRV-1,Assembly,Services,service,900\n"
            "SKU-2,Broken,Kitchen,product,-1\n")
    result = run(app, tmp_path, "products.csv", text, Kind.PRODUCTS, site="shop")
    assert result.counts == {"created": 2, "updated": 0, "unchanged": 0}
    assert [line for line, _ in result.rejected] == [4] and result.rejected[0][1].startswith("price: ")
    again = run(app, tmp_path, "products.csv", text.replace("1200", "1300"), Kind.PRODUCTS, site="shop")
    assert again.counts["updated"] == 2 and counts(app)["Product"] == 2


def test_unusable_input(app, tmp_path):
    f.site(app)
    with pytest.raises(UnusableInput, match="no such file"):
        import_file(app.sessions, clock=app.clock, kind=Kind.CUSTOMERS, path=tmp_path / "missing.csv")
    with pytest.raises(UnusableInput, match="--format"):
        run(app, tmp_path, "c.txt", "external_id\nc1\n", Kind.CUSTOMERS)
    with pytest.raises(UnusableInput, match="unknown column emial"):
        run(app, tmp_path, "c.csv", "external_id,emial\nc1,a@b.c\n", Kind.CUSTOMERS)
    with pytest.raises(UnusableInput, match="unknown site 'nope'"):
        run(app, tmp_path, "c.csv", "external_id\nc1\n", Kind.CUSTOMERS, site="nope")
    with pytest.raises(UnusableInput, match="--rejects"):
        run(app, tmp_path, "c.csv", "external_id\nc1\n", Kind.CUSTOMERS, site="shop", rejects=tmp_path / "c.csv")
    assert (tmp_path / "c.csv").exists()
    assert counts(app)["Customer"] == 0
    assert run(app, tmp_path, "c.txt", '{"external_id": "c1"}\n', Kind.CUSTOMERS, fmt="jsonl",
               site="shop").counts["created"] == 1


def test_a_failing_row_of_a_set_write_is_dropped_alone(app):
    """The fallback when a whole-batch write fails: each row in its own savepoint, only the bad one is lost."""
    def create(chunk):
        if "bad" in chunk:
            raise DomainError.one("code", "refused")
        for code in chunk:
            sites.create_site(s, data=SiteCreate(code=code, name=code), now=app.clock.now())
        return ["created"] * len(chunk)

    with transaction(app.sessions) as s:
        out = batch.together_or_each(s, ["a", "bad", "b"], create)
    assert out[0] == out[2] == "created" and isinstance(out[1], DomainError)
    with transaction(app.sessions) as s:
        assert [x.code for x in sites.list_sites(s)] == ["a", "b"]


@pytest.fixture
def cli_env(db_url, monkeypatch):
    monkeypatch.setenv("RETENTO_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_exit_codes(app, tmp_path, cli_env):
    f.site(app)
    good = tmp_path / "good.csv"
    good.write_text("external_id,email\nc1,a@example.com\n", encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text("external_id,email\nc2,b@example.com\nc3,nope\n", encoding="utf-8")

    ok = cli_env.invoke(cli, ["import", "customers", str(good), "--site", "shop"])
    assert ok.exit_code == 0, ok.output
    assert "1 created" in ok.output
    rejected = cli_env.invoke(cli, ["import", "customers", str(bad), "--site", "shop"])
    assert rejected.exit_code == 1
    assert "line 3: email: invalid email" in rejected.output
    assert (tmp_path / "bad.rejects.csv").exists()
    custom = tmp_path / "out" / "r.csv"
    custom.parent.mkdir()
    rejected = cli_env.invoke(cli, ["import", "customers", str(bad), "--site", "shop", "--rejects", str(custom)])
    assert rejected.exit_code == 1 and "1 unchanged" in rejected.output
    assert custom.read_text().splitlines() == ["external_id,email", "c3,nope"]
    assert (tmp_path / "out" / "r.errors").read_text().startswith("line 3: email:")
    assert cli_env.invoke(cli, ["import", "customers", str(tmp_path / "nope.csv")]).exit_code == 2
    assert cli_env.invoke(cli, ["import", "orders", str(good), "--format", "xml"]).exit_code == 2
    assert cli_env.invoke(cli, ["import", "customers", str(good), "--site", "other"]).exit_code == 2
    assert counts(app)["Customer"] == 2


def test_repeated_order_external_id_second_row_updates(app, tmp_path):
    f.site(app)
    rows = [{"external_id": "o1", "status": "new", "items": [{"name": "A", "price": "10"}]},
            {"external_id": "o1", "status": "complete", "items": [{"name": "A", "price": "10"}]},
            {"external_id": "o2", "items": [{"name": "B", "price": "5", "quantity": "2"}]}]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    result = run(app, tmp_path, "orders.jsonl", text, Kind.ORDERS, site="shop")
    assert result.counts == {"created": 2, "updated": 1, "unchanged": 0}
    with transaction(app.sessions) as s:
        assert orders.find(s, site_id=1, external_id="o1").status == "complete"
    assert counts(app)["Order"] == 2


def test_dates_out_of_range_or_unix_numbers_are_rejected_rows(app, tmp_path):
    """Import files keep the API's date range (1900-01-01 .. 2200-12-31 UTC): such rows are rejected by field."""
    f.site(app)
    text = ("external_id,birthday,created_at,personal_dates.wedding\n"
            "d1,1899-12-31,,\n"
            "d2,,9999-12-31T23:59:59Z,\n"
            "d3,,,2201-01-01\n"
            "d4,1900-01-01,1900-01-01T00:00:00Z,2200-12-31\n")
    result = run(app, tmp_path, "customers.csv", text, Kind.CUSTOMERS, site="shop")
    rejected = dict(result.rejected)
    assert rejected == {2: "birthday: must be between 1900-01-01 and 2200-12-31",
                        3: "created_at: must be between 1900-01-01T00:00:00Z and 2200-12-31T23:59:59Z",
                        4: "personal_dates.wedding: must be between 1900-01-01 and 2200-12-31"}
    assert customer(app, "d4")["created_at"].isoformat() == "1900-01-01T00:00:00+00:00"
    lines = [{"external_id": "o1", "items": [{"name": "A", "price": "1"}], "created_at": 0},
             {"external_id": "o2", "items": [{"name": "A", "price": "1"}], "delivery": {"date": "0001-01-01"}}]
    result = run(app, tmp_path, "orders.jsonl", "\n".join(json.dumps(o) for o in lines) + "\n", Kind.ORDERS,
                 site="shop")
    rejected = dict(result.rejected)
    assert rejected[1].startswith("created_at: must be a date-time string")
    assert rejected[2] == "delivery.date: must be between 1900-01-01 and 2200-12-31"


def test_json_values_that_cannot_be_stored_are_rejected_naming_the_field(app, tmp_path):
    """JSON Lines and JSON in CSV cells are read by the API's JSON parser: 64-bit integers, finite numbers."""
    f.site(app)
    lines = ['{"externalId": "j1", "custom_fields": {"nps": 18446744073709551616}}',
             '{"externalId": "j2", "custom_fields": {"nps": 1e999}}',
             '{"externalId": "j3", "custom_fields": {"nps": 9}}']
    result = run(app, tmp_path, "c.jsonl", "\n".join(lines) + "\n", Kind.CUSTOMERS, site="shop")
    rejected = dict(result.rejected)
    assert rejected == {1: "custom_fields.nps: integer out of range (64 bits at most)",
                        2: "custom_fields.nps: number out of range"}
    assert result.counts["created"] == 1
    csv_text = 'externalId,custom_fields\nk1,"{""nps"": 18446744073709551616}"\nk2,"{""nps"": 9}"\n'
    result = run(app, tmp_path, "c.csv", csv_text, Kind.CUSTOMERS, site="shop")
    assert dict(result.rejected) == {2: "custom_fields: nps: integer out of range (64 bits at most)"}
    assert customer(app, "k2")["custom_fields"] == {"nps": 9}
