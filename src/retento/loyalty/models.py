"""Loyalty tables. Programs and accounts are settings and state that change in place; the ledger (operations,
lots, moves) is append-only: a state change is a new row, a past row is never updated or deleted."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from retento.core.db.types import Amount, Base, Currency, JSONType, UTCDateTime
from retento.core.scoping import BySite

BigId = BigInteger().with_variant(Integer, "sqlite")


class Program(Base):
    """One loyalty program per site; `settings` is `schemas.ProgramSettings` as JSON."""

    __tablename__ = "loyalty_programs"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(Currency())
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Account(Base):
    """A customer's membership. `status` (active / blocked) and `level` are its current state; every change of
    the balance is in the ledger. Charges lock this row (PostgreSQL), so one account's operations queue up."""

    __tablename__ = "loyalty_accounts"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programs.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(String(16))  # active | blocked
    level: Mapped[str | None] = mapped_column(String(64))
    card_number: Mapped[str | None] = mapped_column(String(64))  # a loyalty card's number, unique per program
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("program_id", "customer_id"), UniqueConstraint("program_id", "card_number"),
                      Index("ix_loyalty_accounts_customer", "customer_id"))


class Operation(Base):
    """One ledger transaction: `amount` is the change of the account's points (credits positive, debits
    negative; pending points included), `purchase` the change of the completed-purchase sum that levels count.
    The same `idempotency_key` on one account is the same operation: a replay changes nothing."""

    __tablename__ = "loyalty_operations"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # no foreign key: every writer of operations (credit, charge, accrual, reversal, expiry) reads the account's
    # row locked in the same transaction and accounts are never deleted; the database's per-row check cost a
    # third of an expiry run over a million accounts
    account_id: Mapped[int] = mapped_column(BigId)
    site_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Amount())
    purchase: Mapped[Decimal] = mapped_column(Amount(), default=Decimal(0))
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(500))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key"),
        Index("ix_loyalty_operations_account", "account_id", "id"),
        Index("ix_loyalty_operations_order", "order_id", postgresql_where=text("order_id IS NOT NULL"),
              sqlite_where=text("order_id IS NOT NULL")),
    )


class Lot(Base):
    """Points credited together: usable from `active_from`, burnt at `expires_at` (never when null). What is
    left of a lot is its `amount` plus the sum of its moves."""

    __tablename__ = "loyalty_lots"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("loyalty_accounts.id"))
    site_id: Mapped[int] = mapped_column(Integer)
    operation_id: Mapped[int] = mapped_column(ForeignKey("loyalty_operations.id"))
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    amount: Mapped[Decimal] = mapped_column(Amount())
    active_from: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_loyalty_lots_account", "account_id", "expires_at"),
        Index("ix_loyalty_lots_expiry", "site_id", "expires_at"),
    )


class Move(Base):
    """Points taken from a lot (negative: a charge, a reversal) or given back to it (positive: a
    refund of a charge), by one operation."""

    __tablename__ = "loyalty_moves"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("loyalty_lots.id"))
    operation_id: Mapped[int] = mapped_column(ForeignKey("loyalty_operations.id"))
    account_id: Mapped[int] = mapped_column(BigInteger)
    site_id: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Amount())

    __table_args__ = (Index("ix_loyalty_moves_lot", "lot_id"), Index("ix_loyalty_moves_operation", "operation_id"))


class Run(Base):
    """A set-based run over a program (expiry, burn warnings, level review) up to a time: the next run starts
    where the last one stopped."""

    __tablename__ = "loyalty_runs"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programs.id"))
    site_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    up_to: Mapped[datetime] = mapped_column(UTCDateTime())
    count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("program_id", "kind", "up_to"),)


class Code(Base):
    """A promo code or personal discount converted into points, once: the code is unique per program and points
    to the credit operation that converted it. Append-only."""

    __tablename__ = "loyalty_codes"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programs.id"))
    site_id: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # promo_code | discount
    account_id: Mapped[int] = mapped_column(ForeignKey("loyalty_accounts.id"))
    operation_id: Mapped[int] = mapped_column(ForeignKey("loyalty_operations.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("program_id", "code"),)
