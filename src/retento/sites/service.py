"""Sites (shops) and the people who work in the CRM."""

from __future__ import annotations

import weakref
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from retento.contacts import normalize_email
from retento.core import scoping
from retento.core.errors import Conflict, NotFound
from retento.sites.models import Manager, Site
from retento.sites.schemas import ManagerCreate, SiteCreate, SiteEdit


def create_site(session: Session, *, data: SiteCreate, now: datetime) -> Site:
    if session.scalar(select(Site.id).where(Site.code == data.code)) is not None:
        raise Conflict("code", f"site {data.code!r} already exists")
    site = Site(**data.model_dump(), created_at=now)
    session.add(site)
    session.flush()
    return site


def edit_site(session: Session, *, site: Site, data: SiteEdit) -> Site:
    """Change a site's name, accepted currencies, time zone, region or URL (its code and main currency stay:
    codes are cached and referenced by keys, and money already recorded is in that currency)."""
    given = data.model_fields_set
    for name in ("name", "timezone", "default_region", "url"):
        if name in given and (getattr(data, name) is not None or name == "url"):
            setattr(site, name, getattr(data, name))
    if "currencies" in given and data.currencies is not None:
        accepted = list(dict.fromkeys(data.currencies))
        site.currencies = accepted if site.currency in accepted else [site.currency, *accepted]
    session.flush()
    return site


def list_sites(session: Session) -> list[Site]:
    return list(session.scalars(select(Site).order_by(Site.id)))


# Site codes never change and sites are never deleted (no code path does either), so `id -> code` is cached
# per database for the life of the process without going stale; an id missing from the cache (a site created
# since, by this or any other process) reloads the table. Keyed by the engine's connection pool.
_CODES: weakref.WeakKeyDictionary[Any, dict[int, str]] = weakref.WeakKeyDictionary()
_CODES_OF_SITES = scoping.unscoped(select(Site.id, Site.code))  # codes are no secret: a key's own rows name them


def site_codes(db: Session | Connection) -> dict[int, str]:
    """id -> code of every site (read now, and remembered for `site_code`)."""
    codes = {site_id: code for site_id, code in db.execute(_CODES_OF_SITES)}
    _CODES[_pool(db)] = codes
    return codes


def site_code(db: Session | Connection, site_id: int) -> str:
    """The code of a site, from this process's cache when it has it."""
    code = _CODES.get(_pool(db), {}).get(site_id)
    return code if code is not None else site_codes(db)[site_id]


def _pool(db: Session | Connection) -> Any:
    return (db.engine if isinstance(db, Connection) else db.get_bind()).pool


def get_site(session: Session, code: str, *, field: str = "site") -> Site:
    """The site with this code; another site than a site-limited key's own is a 403 naming `field`."""
    site = session.scalar(select(Site).where(Site.code == code))
    if site is None:
        if session.scalar(scoping.unscoped(select(Site.id).where(Site.code == code))) is not None:
            raise scoping.forbidden(field, f"site {code!r}")
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


def list_managers(session: Session) -> list[Manager]:
    return list(session.scalars(select(Manager).order_by(Manager.name, Manager.id)))


def manager_by_email(session: Session, email: str) -> Manager | None:
    """The manager with this email (a console user and a manager are the same person when their emails match)."""
    try:
        wanted = normalize_email(email)
    except ValueError:
        return None
    return session.scalar(select(Manager).where(Manager.email == wanted))
