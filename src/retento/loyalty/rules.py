"""The program's decisions, pure (they take `now` and data): what a completed order earns, which level a
purchase sum reaches, how much of an order points may pay, which balance thresholds a credit passes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from retento.core.errors import DomainError
from retento.loyalty.ledger import ZERO, points
from retento.loyalty.schemas import Level, ProgramSettings

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Earned:
    points: Decimal
    base: Decimal  # the paid sum the points were computed from (what levels count)
    multiplier: Decimal
    detail: dict[str, Any]


def held_out(program_id: int, customer_id: int, share: Decimal) -> bool:
    """Whether a customer falls in the program's random holdout: a fixed draw per (program, customer), so the
    same customer is always on the same side, and about `share` of customers are held out."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"loyalty-holdout:{program_id}:{customer_id}".encode()).digest()
    return Decimal(int.from_bytes(digest[:8], "big")) / Decimal(2**64) < share


def level_for(levels: Sequence[Level], purchases: Decimal) -> Level | None:
    """The highest level whose threshold the purchases reach (levels are sorted by threshold)."""
    reached = None
    for level in levels:
        if purchases >= level.threshold:
            reached = level
    return reached


def near_birthday(birthday: date | None, at: datetime, days: int) -> bool:
    """`at` is within `days` days of the customer's birthday (in any year; 29 February counts as 28 February in
    other years)."""
    if birthday is None:
        return False
    today = at.date()
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            day = birthday.replace(year=year)
        except ValueError:
            day = date(year, 2, 28)
        if abs((day - today).days) <= days:
            return True
    return False


def birthday_window(birthday: date, day: date, days: int) -> tuple[date, date] | None:
    """The birthday multiplier's days if they start on `day` (`days` before the birthday), else None."""
    for year in (day.year, day.year + 1):
        try:
            party = birthday.replace(year=year)
        except ValueError:
            party = date(year, 2, 28)
        if party - timedelta(days=days) == day:
            return day, party + timedelta(days=days)
    return None


def multiplier(settings: ProgramSettings, *, birthday: date | None, at: datetime) -> tuple[Decimal, list[str]]:
    """The product of every multiplier that holds at `at` (the birthday's and the limited-time events'), and
    their names."""
    value, names = Decimal(1), []
    if settings.birthday_multiplier != 1 and near_birthday(birthday, at, settings.birthday_days):
        value *= settings.birthday_multiplier
        names.append("birthday")
    for event in settings.multipliers:
        if event.starts_at <= at < event.ends_at:
            value *= event.multiplier
            names.append(event.name)
    return value, names


def paid_lines(order: dict[str, Any], redeemed: Decimal) -> list[tuple[str | None, Decimal, Decimal]]:
    """(category, quantity, paid sum) of each item line: line sums after their discounts, with the order's
    discount and the points paid spread over them in proportion. Delivery earns nothing."""
    lines = [(i.get("category"), Decimal(str(i["quantity"])),
              Decimal(str(i["price"])) * Decimal(str(i["quantity"])) - Decimal(str(i.get("discount") or 0)))
             for i in order.get("items") or []]
    gross = sum((s for _, _, s in lines), ZERO)
    if gross <= 0:
        return [(c, q, ZERO) for c, q, _ in lines]
    paid = max(gross - Decimal(str(order.get("discount_total") or 0)) - redeemed, ZERO)
    return [(c, q, s * paid / gross) for c, q, s in lines]


def earned(settings: ProgramSettings, *, order: dict[str, Any], level: Level | None, birthday: date | None,
           redeemed: Decimal, at: datetime) -> Earned:
    """Points a completed order earns: per line, the category's rule or the level's percent (the program's
    without levels), plus the fixed points per order, times the multipliers that hold at completion."""
    percent = level.percent if level is not None else settings.percent
    total, base = ZERO, ZERO
    for category, quantity, paid in paid_lines(order, redeemed):
        base += paid
        rule = settings.categories.get(category or "")
        if rule is not None and rule.fixed_per_unit is not None:
            total += rule.fixed_per_unit * quantity
        else:
            total += paid * (rule.percent if rule is not None and rule.percent is not None else percent) / HUNDRED
    if base > 0:
        total += settings.fixed_per_order
    factor, names = multiplier(settings, birthday=birthday, at=at)
    return Earned(points(total * factor), points(base), factor,
                  {"percent": str(percent), "level": level.code if level else None, "multipliers": names})


def check_redeem(settings: ProgramSettings, *, order_sum: Decimal, already: Decimal, amount: Decimal) -> None:
    """Points may pay for an order of at least the minimum sum, up to the maximum share of it."""
    if order_sum < settings.min_order_sum:
        raise DomainError.one("order_id", f"points pay only for orders of at least {settings.min_order_sum}")
    limit = points(order_sum * settings.max_redeem_share)
    if already + amount > limit:
        raise DomainError.one("amount", f"points may pay at most {limit} of this order ({already} paid already)")


def passed(thresholds: Sequence[Decimal], before: Decimal, after: Decimal) -> list[Decimal]:
    """The thresholds the balance rose past."""
    return [t for t in sorted(thresholds) if before < t <= after]


def lot_times(settings: ProgramSettings, at: datetime, *, activation: bool,
              expires_in_days: int | None = None) -> tuple[datetime, datetime | None]:
    """When a lot credited at `at` becomes usable and when it burns."""
    active_from = at + timedelta(days=settings.activation_days) if activation else at
    days = expires_in_days or settings.expiry_days
    return active_from, (active_from + timedelta(days=days) if days else None)
