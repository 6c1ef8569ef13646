"""The demo shop loads through the services on both databases; `retento demo --if-empty` is a no-op the second time."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from retento.catalog.models import Product
from retento.cli import app as cli
from retento.core.bus import Event
from retento.core.config import get_settings
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.customers.models import Customer
from retento.demo.generator import generate
from retento.demo.service import load
from retento.history.models import HistoryEntry
from retento.orders.models import Order, OrderItem, Status


def count(s, model, *where):
    return s.scalar(select(func.count()).select_from(model).where(*where))


def test_small_demo_loads_with_every_status_group_both_languages_and_services(app):
    shop = generate(seed=2, customers=200, orders=1000, now=app.clock.now())
    result = load(app.sessions, shop=shop, now=app.clock.now())
    assert (result.customers, result.orders) == (200, 1000)
    assert result.changes == sum(len(o.steps) for o in shop.orders) > 0

    with transaction(app.sessions) as s:
        assert count(s, Customer) == 200 and count(s, Order) == 1000
        groups = dict(s.execute(select(Status.group_code, func.count()).join(Order, Order.status == Status.code)
                                .group_by(Status.group_code)).all())
        assert set(groups) == {"new", "approval", "assembling", "delivery", "complete", "cancel"}
        assert set(s.scalars(select(Customer.locale).distinct())) == {"ru", "en"}
        assert count(s, Product, Product.kind == "service") > 0
        assert count(s, OrderItem, OrderItem.kind == "service") > 0
        assert count(s, Customer, Customer.telegram_id.is_not(None)) > 0
        assert count(s, Customer, Customer.vk_id.is_not(None)) > 0
        stored = {o.external_id: o.status for o in s.scalars(select(Order))}
        assert stored == {o.data["external_id"]: o.status for o in shop.orders}
        sources = dict(s.execute(select(HistoryEntry.source, func.count()).group_by(HistoryEntry.source)).all())
        assert set(sources) == {"demo", "user", "robot"}
        assert sources["demo"] == 1200  # one creation row per customer and order
        times = list(s.scalars(select(HistoryEntry.created_at).order_by(HistoryEntry.id)))
        assert times == sorted(times)  # replayed in time order: ids follow time
        assert min(times) >= app.clock.now().replace(year=app.clock.now().year - 2)
        status_events = count(s, Event, Event.type == "order_status_changed")
        assert status_events == count(s, HistoryEntry, HistoryEntry.field == "status", ~HistoryEntry.created)

    with pytest.raises(DomainError, match="already have customers"):
        load(app.sessions, shop=shop, now=app.clock.now())


@pytest.fixture
def cli_env(db_url, monkeypatch):
    monkeypatch.setenv("RETENTO_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_demo_if_empty_is_a_noop_the_second_time(app, cli_env):
    first = cli_env.invoke(cli, ["demo", "--if-empty", "--customers", "40", "--orders", "150", "--seed", "9"])
    assert first.exit_code == 0, first.output
    assert "40 customers, 150 orders" in first.output

    def totals():
        with transaction(app.sessions) as s:
            return count(s, Customer), count(s, Order), count(s, HistoryEntry), count(s, Event)

    before = totals()
    again = cli_env.invoke(cli, ["demo", "--if-empty"])
    assert again.exit_code == 0 and "already has customers" in again.output
    assert totals() == before
    refused = cli_env.invoke(cli, ["demo", "--customers", "10", "--orders", "10"])
    assert refused.exit_code == 1 and "already have customers" in refused.output
    assert totals() == before
