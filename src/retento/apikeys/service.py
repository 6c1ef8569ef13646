"""API keys: create (the secret is returned once), list, revoke, authenticate; idempotent POST records."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from retento.apikeys.models import ApiKey, IdempotentRequest
from retento.apikeys.schemas import Principal, parse_scopes
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError, NotFound
from retento.sites.service import get_site

PREFIX = "rtk_"


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create(
    session: Session, *, name: str, scopes: str | list[str], sites: list[str] | None = None, now: datetime
) -> tuple[ApiKey, str]:
    """A new key; returns the row and the secret (shown to the user once, never stored)."""
    name = name.strip()
    if not name or len(name) > 255:
        raise DomainError.one("name", "give a name of 1 to 255 characters")
    try:
        scope_list = parse_scopes(scopes if isinstance(scopes, str) else ",".join(scopes))
    except ValueError as exc:
        raise DomainError.one("scopes", str(exc)) from None
    site_ids = sorted({get_site(session, code).id for code in sites}) if sites else None
    raw = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, prefix=raw[:12], key_hash=hash_key(raw), scopes=scope_list, site_ids=site_ids,
                 created_at=now, revoked_at=None)
    session.add(key)
    session.flush()
    return key, raw


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke(session: Session, *, key_id: int, now: datetime) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound("id", f"API key {key_id} not found")
    if key.revoked_at is None:
        key.revoked_at = now
    return key


def authenticate(session: Session, raw: str) -> Principal | None:
    """The principal of a live key, or None for an unknown or revoked one."""
    row = session.execute(
        select(ApiKey.id, ApiKey.name, ApiKey.scopes, ApiKey.site_ids)
        .where(ApiKey.key_hash == hash_key(raw), ApiKey.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    return Principal(key_id=row.id, name=row.name, scopes=frozenset(row.scopes),
                     site_ids=frozenset(row.site_ids) if row.site_ids is not None else None)


def find_idempotent(session: Session, *, key_id: int, key: str) -> IdempotentRequest | None:
    return session.scalar(select(IdempotentRequest).where(IdempotentRequest.api_key_id == key_id,
                                                          IdempotentRequest.key == key))


def purge_idempotency(session: Session, *, older_than: datetime) -> int:
    return session.execute(delete(IdempotentRequest).where(IdempotentRequest.created_at < older_than)).rowcount


def install(app) -> None:  # noqa: ANN001 - retento.bootstrap.App
    """Forget idempotency keys after `api_idempotency_hours` (checked at most once an hour)."""
    last: list[datetime] = []

    def purge() -> int:
        now = app.clock.now()
        if last and now - last[0] < timedelta(hours=1):
            return 0
        last[:] = [now]
        with transaction(app.sessions) as s:
            return purge_idempotency(s, older_than=now - timedelta(hours=app.settings.api_idempotency_hours))

    app.worker.add_job("api-idempotency-purge", purge)
