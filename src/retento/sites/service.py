"""Sites (shops) and the people who work in the CRM."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from retento.contacts import normalize_email
from retento.errors import Conflict, NotFound
from retento.sites.models import Manager, Site
from retento.sites.schemas import ManagerCreate, SiteCreate


def create_site(session: Session, *, data: SiteCreate, now: datetime) -> Site:
    if session.scalar(select(Site.id).where(Site.code == data.code)) is not None:
        raise Conflict("code", f"site {data.code!r} already exists")
    site = Site(**data.model_dump(), created_at=now)
    session.add(site)
    session.flush()
    return site


def list_sites(session: Session) -> list[Site]:
    return list(session.scalars(select(Site).order_by(Site.id)))


def get_site(session: Session, code: str, *, field: str = "site") -> Site:
    site = session.scalar(select(Site).where(Site.code == code))
    if site is None:
        raise NotFound(field, f"unknown site {code!r}")
    return site


def sites_by_code(session: Session) -> dict[str, Site]:
    return {s.code: s for s in list_sites(session)}


def create_manager(session: Session, *, data: ManagerCreate, now: datetime) -> Manager:
    email = normalize_email(data.email) if data.email else None
    if email and session.scalar(select(Manager.id).where(Manager.email == email)) is not None:
        raise Conflict("email", f"a manager with email {email} already exists")
    manager = Manager(name=data.name, email=email, active=True, created_at=now)
    session.add(manager)
    session.flush()
    return manager


def manager_ids(session: Session) -> set[int]:
    return set(session.scalars(select(Manager.id)))
