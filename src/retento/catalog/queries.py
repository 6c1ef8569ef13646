"""Read side of the catalogue for the API."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from retento.catalog.models import Product


def list_products(session: Session, *, site_ids: list[int] | None = None, category: str | None = None,
                  offer_id: str | None = None, after_id: int = 0, limit: int = 50) -> list[Product]:
    q = select(Product).where(Product.id > after_id)
    if site_ids is not None:
        q = q.where(Product.site_id.in_(site_ids))
    if category is not None:
        q = q.where(Product.category == category)
    if offer_id is not None:
        q = q.where(Product.offer_id == offer_id)
    return list(session.scalars(q.order_by(Product.id).limit(limit)))


def known_offers(session: Session, *, site_id: int, offer_ids: set[str]) -> set[str]:
    """The offer ids of this set that the site's catalogue has."""
    if not offer_ids:
        return set()
    q = select(Product.offer_id).where(Product.site_id == site_id, Product.offer_id.in_(sorted(offer_ids)))
    return set(session.scalars(q))
