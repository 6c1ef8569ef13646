"""Journey tables: journeys, their versions (each saved definition that changed), runs (one customer going through
one version) and the step log (one row per step a run went through: the unique key makes each step happen once)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from retento.core.db.types import Base, JSONType, UTCDateTime
from retento.core.scoping import BySite

BigId = BigInteger().with_variant(Integer, "sqlite")


class Journey(Base):
    __tablename__ = "journeys"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    name: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer)  # the current version: new runs start on it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("site_id", "name"),)


class JourneyVersion(Base):
    """A definition as saved (`schemas.JourneyIn`, validated); runs keep the version they started on."""

    __tablename__ = "journey_versions"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("journey_id", "version"),)


class JourneyRun(Base):
    """One customer in one journey version. `step` is where the run is; `phase` says whether that step is still to
    be done (`enter`) or done and waiting (`wait`: a delay, an event with its timeout); `due_at` is its timer.
    `active_customer_id` is the customer while the run is active and NULL after: the unique key on it keeps one
    active run per customer and journey."""

    __tablename__ = "journey_runs"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int] = mapped_column(BigInteger)
    active_customer_id: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))  # active | finished | exited | failed
    step: Mapped[str] = mapped_column(String(64))
    phase: Mapped[str] = mapped_column(String(8))  # enter | wait
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    context: Mapped[dict[str, Any]] = mapped_column(JSONType)  # sends: {step: cascade run id}, woken: event, ...
    entry_event_id: Mapped[int | None] = mapped_column(BigInteger)
    exit_reason: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)  # the last error of a step that broke
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("journey_id", "active_customer_id"),
        Index("ix_journey_runs_due", "state", "due_at"),
        Index("ix_journey_runs_customer", "customer_id", "journey_id"),
        Index("ix_journey_runs_active", "active_customer_id"),
    )


class JourneyStep(Base):
    """A step a run went through, with what it did (`outcome`, `detail`). Written in the transaction that does the
    step's effect, with a unique (run, step): each step of a run happens once."""

    __tablename__ = "journey_steps"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigInteger)
    journey_id: Mapped[int] = mapped_column(Integer)
    version_id: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int] = mapped_column(BigInteger)
    step: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # a wait: when the run went on

    __table_args__ = (
        UniqueConstraint("run_id", "step"),
        Index("ix_journey_steps_funnel", "journey_id", "version_id", "step"),
    )
