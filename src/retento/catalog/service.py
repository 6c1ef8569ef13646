"""Products and services a site sells."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from retento.catalog.models import Product
from retento.catalog.schemas import ProductIn
from retento.core.errors import DomainError
from retento.sites.service import sites_by_code


def upsert_many(session: Session, *, items: Sequence[ProductIn], now: datetime) -> list[Product]:
    """Create products, or update the one with the same offer id on the same site."""
    sites = sites_by_code(session)
    out = []
    for n, data in enumerate(items):
        site = sites.get(data.site)
        if site is None:
            raise DomainError.one(f"[{n}].site" if len(items) > 1 else "site", f"unknown site {data.site!r}")
        currency = data.currency or site.currency
        product = session.scalar(select(Product).where(Product.site_id == site.id, Product.offer_id == data.offer_id))
        values = data.model_dump(exclude={"site", "currency"}) | {"currency": currency, "updated_at": now}
        values["kind"] = data.kind.value
        if product is None:
            product = Product(site_id=site.id, created_at=now, **values)
            session.add(product)
        else:
            for key, value in values.items():
                setattr(product, key, value)
        out.append(product)
    session.flush()
    return out


def list_products(session: Session, *, site_id: int | None = None) -> list[Product]:
    q = select(Product).order_by(Product.id)
    if site_id is not None:
        q = q.where(Product.site_id == site_id)
    return list(session.scalars(q))
