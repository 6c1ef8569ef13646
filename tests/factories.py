"""Small builders for test data, through the public services."""

from __future__ import annotations

from typing import Any

from retento.bootstrap import App
from retento.catalog import service as catalog
from retento.catalog.schemas import ProductIn
from retento.core.changes import ActorType, ChangeContext, Source
from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.orders import service as orders
from retento.sites import service as sites
from retento.sites.schemas import SiteCreate

API = ChangeContext(Source.API, ActorType.API_KEY, "key-1")


def site(app: App, code: str = "shop", **kw: Any) -> int:
    with transaction(app.sessions) as s:
        return sites.create_site(s, data=SiteCreate(code=code, name=kw.pop("name", code.title()), **kw),
                                 now=app.clock.now()).id


def product(app: App, offer_id: str = "SKU-1", *, site_code: str = "shop", price: str = "100.00", **kw: Any) -> int:
    with transaction(app.sessions) as s:
        data = ProductIn(site=site_code, offer_id=offer_id, name=kw.pop("name", f"Product {offer_id}"),
                         price=price, **kw)
        return catalog.upsert_many(s, items=[data], now=app.clock.now())[0].id


def customer(app: App, ctx: ChangeContext = API, **raw: Any) -> int:
    raw.setdefault("site", "shop")
    with transaction(app.sessions) as s:
        data = customers.parse_create(s, raw)
        return customers.create(s, data=data, ctx=ctx, now=app.clock.now()).id


def order(app: App, ctx: ChangeContext = API, **raw: Any) -> int:
    raw.setdefault("site", "shop")
    raw.setdefault("items", [{"name": "Thing", "price": "10.00", "quantity": 1}])
    with transaction(app.sessions) as s:
        return orders.create(s, data=orders.parse_create(raw), ctx=ctx, now=app.clock.now()).id


def edit_order(app: App, order_id: int, ctx: ChangeContext = API, **raw: Any) -> list:
    with transaction(app.sessions) as s:
        o = orders.get(s, order_id)
        return orders.edit(s, order=o, data=orders.parse_edit(raw), ctx=ctx, now=app.clock.now())


def edit_customer(app: App, customer_id: int, ctx: ChangeContext = API, **raw: Any) -> list:
    with transaction(app.sessions) as s:
        c = customers.get(s, customer_id)
        data = customers.parse_edit(s, raw, site_id=c.site_id)
        return customers.edit(s, customer=c, data=data, ctx=ctx, now=app.clock.now())


def migrate_to(app: App, revision: str) -> None:
    """The app's database down to `revision`, or up to "head" (migration tests)."""
    from alembic import command

    from retento.migrate import alembic_config

    with app.engine.connect() as conn:
        cfg = alembic_config(app.engine.url.render_as_string(hide_password=False))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision) if revision != "head" else command.upgrade(cfg, "head")
        conn.commit()
