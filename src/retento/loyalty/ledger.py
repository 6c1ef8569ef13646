"""The points ledger's decisions, pure: what is left of each lot, the balance at a time, which lots a charge,
a reversal or a refund takes from (an expiry run burns what is left, in SQL: `runs.py`). The service loads lots,
asks here, and stores the answer as new rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from retento.core.errors import DomainError

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
Take = tuple[int, Decimal]  # (lot id, points: negative taken from the lot, positive given back)


@dataclass(frozen=True)
class LotState:
    id: int
    left: Decimal  # the lot's amount plus its moves
    active_from: datetime
    expires_at: datetime | None
    order_id: int | None = None

    def live(self, now: datetime) -> bool:
        return self.active_from <= now and not self.expired(now)

    def pending(self, now: datetime) -> bool:
        return self.active_from > now and not self.expired(now)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def points(value: Decimal | int | str) -> Decimal:
    """Points are kept to the cent, rounded down (a customer is never credited a fraction more)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_DOWN)


def burn_order(lot: LotState) -> tuple:
    """Oldest first: the lot that burns soonest, then the one credited first."""
    return (lot.expires_at is None, lot.expires_at or lot.active_from, lot.active_from, lot.id)


def balance(lots: Iterable[LotState], now: datetime) -> Decimal:
    """Points usable now: the sum of what is left of the live lots."""
    return sum((lot.left for lot in lots if lot.live(now)), ZERO)


def pending(lots: Iterable[LotState], now: datetime) -> Decimal:
    """Points credited but not usable yet (an order's returns window)."""
    return sum((lot.left for lot in lots if lot.pending(now)), ZERO)


def _take(lots: Iterable[LotState], amount: Decimal) -> tuple[list[Take], Decimal]:
    out, rest = [], amount
    for lot in lots:
        if rest <= 0:
            break
        part = min(lot.left, rest)
        if part > 0:
            out.append((lot.id, -part))
            rest -= part
    return out, rest


def charge(lots: Sequence[LotState], amount: Decimal, now: datetime) -> list[Take]:
    """Take `amount` from the live lots, oldest first; not enough points is a 400 naming `amount`."""
    usable = balance(lots, now)
    if amount > usable:
        raise DomainError.one("amount", f"not enough points: {amount} asked, {usable} available")
    taken, _ = _take(sorted((lot for lot in lots if lot.live(now)), key=burn_order), amount)
    return taken


def reverse(lots: Sequence[LotState], amount: Decimal, now: datetime, *, order_id: int) -> tuple[list[Take], Decimal]:
    """Take back `amount` credited for an order: from that order's own lots first (usually still pending), then
    from any other lot not yet burnt, oldest first. Returns the takes and what could not be taken back (already
    spent or burnt); the balance never goes below zero."""
    own = sorted((lot for lot in lots if lot.order_id == order_id and not lot.expired(now)), key=burn_order)
    others = sorted((lot for lot in lots if lot.order_id != order_id and not lot.expired(now)), key=burn_order)
    return _take([*own, *others], amount)


def refund(taken: Sequence[Take], amount: Decimal, lots: Sequence[LotState], now: datetime) -> list[Take]:
    """Give back `amount` of what a charge took (`taken`: per lot, what it still holds taken, negative), to the
    lots it took from, the latest-burning first. A lot that has burnt since gets nothing back: those points
    would have burnt anyway."""
    by_id = {lot.id: lot for lot in lots}
    out, due = [], amount
    for lot_id, held in sorted(taken, key=lambda t: burn_order(by_id[t[0]]), reverse=True):
        if due <= 0:
            break
        part = min(-held, due)
        if part <= 0:
            continue
        due -= part
        if not by_id[lot_id].expired(now):
            out.append((lot_id, part))
    return out
