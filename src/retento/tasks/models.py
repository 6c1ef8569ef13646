from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from retento.core.db.types import Base, UTCDateTime
from retento.core.scoping import by_order_or_customer

BigId = BigInteger().with_variant(Integer, "sqlite")


class Task(Base):
    """Something a manager has to do, optionally about a customer or an order."""

    __tablename__ = "tasks"
    __site_scope__ = by_order_or_customer()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    text: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id"))
    customer_id: Mapped[int | None] = mapped_column(BigInteger)
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(16))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # a form sent twice creates one task: the key the console puts in the form, per actor (NULLs never collide)
    idempotency_key: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("actor_type", "actor_id", "idempotency_key"),
        Index("ix_tasks_manager", "manager_id", "done", "due_at"),
        Index("ix_tasks_order", "order_id"),
        Index("ix_tasks_customer", "customer_id"),
    )
