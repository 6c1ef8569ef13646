"""Console users: create, list, disable, set a password or preferences; sign-in with throttling; server-side
sessions (start, look up, end one, end all of a user's)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from retento.app import from_session
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError, NotFound
from retento.users import throttle
from retento.users.models import SignInAttempt, User, UserSession
from retento.users.schemas import LOCALES, MIN_PASSWORD, ROLES, UserCreate


@cache
def _hasher(time_cost: int, memory_kib: int) -> tuple[PasswordHasher, str]:
    """Argon2id with these costs, and a hash verified against for unknown names (same time either way)."""
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
    return hasher, hasher.hash("not a password of anyone")


def hasher(session: Session) -> tuple[PasswordHasher, str]:
    settings = from_session(session).settings
    return _hasher(settings.console_password_time_cost, settings.console_password_memory_kib)


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in: the user, or None for a wrong name or password or a disabled user, with `until`
    set when too many failures block further attempts for now."""

    user: User | None
    until: datetime | None = None


def parse_create(**raw: object) -> UserCreate:
    try:
        return UserCreate.model_validate(raw)
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc) from None


def create(session: Session, *, data: UserCreate, now: datetime) -> User:
    if session.scalar(select(User.id).where(User.email == data.email)) is not None:
        raise DomainError.one("email", f"a user {data.email} already exists / такой пользователь уже есть")
    user = User(email=data.email, name=data.name.strip() or data.email, role=data.role,
                password_hash=hasher(session)[0].hash(data.password), site_ids=_sites(data.role, data.site_ids), locale=data.locale, timezone=data.timezone,
                disabled=False, created_at=now)
    session.add(user)
    session.flush()
    return user


def _sites(role: str, site_ids: list[int] | None) -> list[int] | None:
    """An admin sees every site; other roles their list (None: every site)."""
    return None if role == "admin" or site_ids is None else sorted(set(site_ids))


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def count(session: Session) -> int:
    return session.scalar(select(func.count(User.id))) or 0


def get(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("id", f"user {user_id} not found")
    return user


def by_email(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound("email", f"no user {email}")
    return user


def set_disabled(session: Session, *, user: User, disabled: bool = True) -> User:
    """A disabled user cannot sign in, and their sessions end."""
    user.disabled = disabled
    if disabled:
        end_all_sessions(session, user_id=user.id)
    return user


def set_password(session: Session, *, user: User, password: str) -> User:
    """A new password; the user's other sessions end."""
    if not MIN_PASSWORD <= len(password) <= 1000:
        raise DomainError.one("password", f"use at least {MIN_PASSWORD} characters / не короче {MIN_PASSWORD} "
                                          "символов")
    user.password_hash = hasher(session)[0].hash(password)
    end_all_sessions(session, user_id=user.id)
    return user


def set_role(session: Session, *, user: User, role: str) -> User:
    if role not in ROLES:
        raise DomainError.one("role", f"must be one of {', '.join(ROLES)}")
    user.role = role
    user.site_ids = _sites(role, user.site_ids)
    return user


def set_sites(session: Session, *, user: User, site_ids: list[int] | None) -> User:
    """The sites a user sees (None: every site; an admin always sees every site). Their next request sees the
    change: a session reads the user's sites on every request."""
    user.site_ids = _sites(user.role, site_ids)
    session.flush()
    return user


def set_preferences(session: Session, *, user: User, locale: str | None = None,
                    timezone: str | None = None) -> User:
    if locale is not None:
        if locale not in LOCALES:
            raise DomainError.one("locale", f"must be one of {', '.join(LOCALES)}")
        user.locale = locale
    if timezone is not None:
        try:
            UserCreate.model_validate({"email": "a@b", "role": "viewer", "password": "x" * MIN_PASSWORD,
                                       "timezone": timezone})
        except ValidationError:
            raise DomainError.one("timezone", "unknown time zone (IANA name, e.g. Europe/Moscow)") from None
        user.timezone = timezone
    return user


def sign_in(session: Session, *, email: str, password: str, address: str, now: datetime) -> SignIn:
    """The user with this name and password, if any; failures are stored per (name, address) (so the caller
    commits either way) and throttle further attempts (throttle.blocked_until)."""
    email = email.strip().lower()[:255]
    address = address[:64]
    failures = session.scalars(select(SignInAttempt.at).where(
        SignInAttempt.email == email, SignInAttempt.address == address,
        SignInAttempt.at > now - throttle.WINDOW)).all()
    until = throttle.blocked_until(failures, now=now)
    if until is not None:
        return SignIn(None, until)
    user = session.scalar(select(User).where(User.email == email))
    argon, dummy = hasher(session)
    ok = _verify(argon, user.password_hash if user else dummy, password) and user is not None and not user.disabled
    if not ok:
        session.add(SignInAttempt(email=email, address=address, at=now))
        session.flush()
        return SignIn(None)
    assert user is not None
    session.execute(delete(SignInAttempt).where(SignInAttempt.email == email, SignInAttempt.address == address))
    if argon.check_needs_rehash(user.password_hash):
        user.password_hash = argon.hash(password)
    return SignIn(user)


def _verify(argon: PasswordHasher, hashed: str, password: str) -> bool:
    try:
        return argon.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, *, user: User, now: datetime, lifetime: timedelta) -> tuple[UserSession, str]:
    """A new session; returns it and the token for the cookie (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    row = UserSession(token_hash=_digest(token), user_id=user.id, csrf=secrets.token_urlsafe(32),
                      created_at=now, expires_at=now + lifetime)
    session.add(row)
    session.flush()
    return row, token


def current(session: Session, *, token: str, now: datetime) -> tuple[UserSession, User] | None:
    """The live session of a cookie token and its user (not disabled), or None."""
    row = session.execute(select(UserSession, User).join(User, User.id == UserSession.user_id).where(
        UserSession.token_hash == _digest(token), UserSession.expires_at > now, User.disabled.is_(False))).first()
    return (row[0], row[1]) if row else None


def end_session(session: Session, *, token: str) -> None:
    session.execute(delete(UserSession).where(UserSession.token_hash == _digest(token)))


def end_all_sessions(session: Session, *, user_id: int) -> int:
    """Sign out everywhere: every session of the user ends."""
    return session.execute(delete(UserSession).where(UserSession.user_id == user_id)).rowcount


def purge(session: Session, *, now: datetime) -> int:
    """Forget expired sessions and sign-in failures older than the throttling window."""
    n = session.execute(delete(UserSession).where(UserSession.expires_at <= now)).rowcount
    return n + session.execute(delete(SignInAttempt).where(SignInAttempt.at <= now - throttle.WINDOW)).rowcount


def demo_admin(session: Session, *, now: datetime) -> tuple[User, str] | None:
    """When there is no user yet: an admin `admin@example.com` with a random password (returned once)."""
    if count(session):
        return None
    password = secrets.token_urlsafe(12)
    user = create(session, data=UserCreate(email="admin@example.com", name="Admin", role="admin",
                                           password=password), now=now)
    return user, password


def install(app) -> None:  # noqa: ANN001 - retento.app.App
    """Forget expired sessions and old sign-in failures (checked at most once an hour)."""
    last: list[datetime] = []

    def purge_due() -> int:
        now = app.clock.now()
        if last and now - last[0] < timedelta(hours=1):
            return 0
        last[:] = [now]
        with transaction(app.sessions) as s:
            return purge(s, now=now)

    app.worker.add_job("console-sessions-purge", purge_due)
