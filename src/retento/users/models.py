"""Console users, their server-side sessions and sign-in attempts (for throttling)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from retento.core.db.types import Base, JSONType, UTCDateTime
from retento.core.scoping import GLOBAL


class User(Base):
    """A person who signs in to the console. Only the Argon2 hash of the password is stored."""

    __tablename__ = "users"
    __site_scope__ = GLOBAL

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)  # the sign-in name, lower case
    name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # admin, marketer, operator, viewer (schemas.ROLES)
    password_hash: Mapped[str] = mapped_column(String(255))
    site_ids: Mapped[list[int] | None] = mapped_column(JSONType, nullable=True)  # None: every site
    locale: Mapped[str] = mapped_column(String(8), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UserSession(Base):
    """A signed-in browser: the cookie holds a random token, the table its SHA-256, the expiry and the CSRF
    token of the session's forms."""

    __tablename__ = "user_sessions"
    __site_scope__ = GLOBAL

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SignInAttempt(Base):
    """A failed sign-in, by the name tried and the client address; read to throttle guessing."""

    __tablename__ = "sign_in_failures"
    __site_scope__ = GLOBAL

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(255))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_sign_in_failures_who", "email", "address", "at"),)
