"""Input and output shapes of loyalty programs, accounts and the ledger; all validation of one record."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retento.core.dates import AwareDatetime
from retento.core.money import check_currency

Points = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
Share = Annotated[Decimal, Field(ge=0, le=1, max_digits=5, decimal_places=4)]
Percent = Annotated[Decimal, Field(ge=0, le=100, max_digits=6, decimal_places=3)]


class Kind(StrEnum):
    """Operations of the ledger."""

    WELCOME = "welcome"  # the welcome bonus
    ACCRUAL = "accrual"  # points for a completed order (pending until its returns window ends)
    REVERSAL = "reversal"  # an accrual taken back (cancel, return)
    CREDIT = "credit"  # manual or by a trigger, with a reason
    CHARGE = "charge"  # manual, by a trigger, or paying for an order
    REFUND = "refund"  # points of a charge given back (the order was cancelled or returned)
    EXPIRY = "expiry"  # lots burnt


class Level(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=255)
    threshold: Decimal = Field(ge=0, max_digits=14, decimal_places=2,
                               description="Completed purchases over `level_period_days` to reach the level")
    percent: Percent = Field(description="Accrual percent of the paid order sum at this level")


class CategoryRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    percent: Percent | None = Field(None, description="Replaces the level's percent for items of the category")
    fixed_per_unit: Decimal | None = Field(None, ge=0, max_digits=14, decimal_places=2,
                                           description="Points per unit of the category, instead of a percent")

    @model_validator(mode="after")
    def _one(self) -> CategoryRule:
        if (self.percent is None) == (self.fixed_per_unit is None):
            raise ValueError("give either percent or fixed_per_unit")
        return self


class Multiplier(BaseModel):
    """A limited-time event: accruals of orders completed between `starts_at` and `ends_at` are multiplied."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    multiplier: Decimal = Field(gt=0, le=100, max_digits=6, decimal_places=3)

    @model_validator(mode="after")
    def _order(self) -> Multiplier:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class ProgramSettings(BaseModel):
    """How a program accrues, limits and burns points."""

    model_config = ConfigDict(extra="forbid")

    percent: Percent = Field(Decimal(5), description="Accrual percent when no level applies")
    levels: list[Level] = Field(default_factory=list, max_length=50)
    level_period_days: int = Field(365, ge=1, le=3650)
    categories: dict[str, CategoryRule] = Field(default_factory=dict, max_length=500)
    fixed_per_order: Decimal = Field(Decimal(0), ge=0, max_digits=14, decimal_places=2)
    birthday_multiplier: Decimal = Field(Decimal(1), gt=0, le=100, max_digits=6, decimal_places=3)
    birthday_days: int = Field(0, ge=0, le=31, description="The multiplier holds this many days around the birthday")
    multipliers: list[Multiplier] = Field(default_factory=list, max_length=100)
    activation_days: int = Field(14, ge=0, le=365, description="Points become usable this long after completion")
    expiry_days: int | None = Field(365, ge=1, le=3650, description="Lots burn this long after they become usable")
    welcome_bonus: Decimal = Field(Decimal(0), ge=0, max_digits=14, decimal_places=2)
    max_redeem_share: Share = Field(Decimal("0.3"), description="At most this share of an order is paid in points")
    min_order_sum: Decimal = Field(Decimal(0), ge=0, max_digits=14, decimal_places=2,
                                   description="Points pay only for orders of at least this sum")
    warn_days: list[int] = Field(default_factory=lambda: [7], max_length=5,
                                 description="`loyalty_points_will_burn` this many days before lots burn")
    balance_thresholds: list[Decimal] = Field(default_factory=list, max_length=20,
                                              description="`loyalty_balance_passed` when the balance rises past one")
    holdout_share: Share = Field(Decimal(0), description="This share of customers, drawn at random when they join, "
                                                         "is kept out of the program (a control group for the P&L)")

    @field_validator("levels")
    @classmethod
    def _levels(cls, levels: list[Level]) -> list[Level]:
        if len({lv.code for lv in levels}) != len(levels):
            raise ValueError("level codes must be unique")
        return sorted(levels, key=lambda lv: lv.threshold)

    @field_validator("warn_days")
    @classmethod
    def _warn(cls, days: list[int]) -> list[int]:
        if any(d < 1 or d > 365 for d in days):
            raise ValueError("warn_days are 1..365")
        return sorted(set(days))


class ProgramIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=255)
    currency: str = Field(min_length=3, max_length=3)
    active: bool = True
    settings: ProgramSettings = Field(default_factory=ProgramSettings)

    _currency = field_validator("currency")(lambda cls, v: check_currency(v))


class ProgramOut(BaseModel):
    site: str
    name: str
    currency: str
    active: bool
    settings: ProgramSettings
    created_at: datetime
    updated_at: datetime


class JoinIn(BaseModel):
    """Join a customer to the site's program, by customer id or by phone."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    site: str = Field(min_length=1, max_length=64)
    customer_id: int | None = Field(None, gt=0)
    phone: str | None = Field(None, min_length=3, max_length=32)
    card_number: str | None = Field(None, min_length=1, max_length=64, description="The member's loyalty card")

    @model_validator(mode="after")
    def _who(self) -> JoinIn:
        if (self.customer_id is None) == (self.phone is None):
            raise ValueError("give either customer_id or phone")
        return self


class AccountEdit(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: str | None = Field(None, pattern=r"^(active|blocked)$")
    card_number: str | None = Field(None, min_length=1, max_length=64, description="The member's loyalty card")

    @model_validator(mode="after")
    def _some(self) -> AccountEdit:
        if self.status is None and self.card_number is None:
            raise ValueError("give status or card_number")
        return self


class PointsIn(BaseModel):
    """A manual credit or charge. `order_id`: a charge that pays for that order (redemption limits apply)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    amount: Points
    reason: str = Field(min_length=1, max_length=500)
    order_id: int | None = Field(None, gt=0)
    idempotency_key: str | None = Field(None, min_length=1, max_length=150,
                                        description="Or the Idempotency-Key header: the same key is the same "
                                                    "operation, a replay changes nothing")
    expires_in_days: int | None = Field(None, ge=1, le=3650, description="A credit's lot burns after this long "
                                                                         "(the program's expiry by default)")


class LotOut(BaseModel):
    id: int
    amount: Decimal
    left: Decimal = Field(description="What can still be used (0 once the lot has burnt)")
    burnt: Decimal = Field(Decimal(0), description="What was left of the lot when its time came")
    active_from: datetime
    expires_at: datetime | None
    order_id: int | None


class AccountOut(BaseModel):
    id: int
    site: str
    customer_id: int
    status: str
    level: str | None
    card_number: str | None = None
    joined_at: datetime
    currency: str
    balance: Decimal = Field(description="Points usable now")
    pending: Decimal = Field(description="Points credited, usable after the order's returns window")
    purchases: Decimal = Field(description="Completed purchases over the program's level period")
    lots: list[LotOut] | None = None


class OperationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int
    kind: str
    amount: Decimal
    purchase: Decimal
    order_id: int | None
    reason: str | None
    details: dict[str, Any] | None
    source: str
    created_at: datetime


class OperationPage(BaseModel):
    items: list[OperationOut]
    next_cursor: str | None = None


class CohortFigures(BaseModel):
    conversion_new_active: float | None
    orders_per_active: float | None
    reactivated: float | None
    churn_active: float | None


class CohortsOut(BaseModel):
    launch: date
    before: CohortFigures
    months_before: int
    after: CohortFigures
    months_after: int


class PerMonth(BaseModel):
    orders: float
    revenue: Decimal


class PerMember(BaseModel):
    members: int = Field(description="Members with orders history both before and after joining")
    before: PerMonth | None
    after: PerMonth | None


class GroupFigures(BaseModel):
    customers: int
    orders: float = Field(description="Completed orders per customer in the period")
    revenue: Decimal = Field(description="Revenue per customer in the period")


class HoldoutOut(BaseModel):
    members: GroupFigures
    holdout: GroupFigures


class PnlOut(BaseModel):
    """A program's P&L over [from, to)."""

    model_config = ConfigDict(populate_by_name=True)

    site: str
    currency: str
    from_: datetime = Field(alias="from")
    to: datetime
    issued: Decimal = Field(description="Points credited: welcome bonuses, accruals, manual and trigger credits")
    reversed: Decimal = Field(description="Accruals taken back (cancels, returns)")
    redeemed: Decimal = Field(description="Points spent, net of refunds: the discount given")
    expired: Decimal
    liability_start: Decimal = Field(description="Points outstanding at `from` (pending included)")
    liability_end: Decimal
    revenue: Decimal = Field(description="The site's completed orders created in the period")
    discount_share: Decimal | None = Field(description="redeemed / revenue")
    communication_cost: dict[str, Decimal] = Field(description="Per currency: messages of the period sent by "
                                                               "triggers that listen to loyalty events")
    members: int = Field(description="Members joined before `to` (the holdout group left out)")
    per_member: PerMember
    cohorts: CohortsOut
    holdout: HoldoutOut | None = Field(description="Members against the holdout group (when the program has one)")
