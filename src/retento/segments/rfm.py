"""RFM scoring (pure): quintile cut points or fixed windows, scores 1-5, named cells.

Values follow the BTYD convention of `lifetimes.utils.summary_data_from_transaction_data` with daily
periods: frequency = purchase days - 1 (repeat purchases), recency = days from the first to the last
purchase, age (T) = days from the first purchase to the end of observation, monetary value = mean amount
of the repeat purchase days (0 without repeats). R is scored on days since the last purchase (age -
recency; fewer is better), F on frequency, M on monetary value (in cents).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from retento.segments.schemas import Cell, RfmConfig

SCORES = 5


def cut_points(values: Sequence[int], k: int = SCORES) -> list[int]:
    """The j/k quantiles (j = 1..k-1) as values of the data: the ceil(j*n/k)-th smallest value."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return []
    return [ordered[(j * n + k - 1) // k - 1] for j in range(1, k)]


def cut_ranks(n: int, k: int = SCORES) -> list[int]:
    """The 1-based ranks `cut_points` reads in n sorted values (the database fetches only those rows)."""
    return [(j * n + k - 1) // k for j in range(1, k)] if n else []


def score_up(x: int, cuts: Sequence[int]) -> int:
    """Higher is better: 1 plus the number of cut points x is above."""
    return 1 + sum(x > c for c in cuts)


def score_recency(days_since_last: int, cuts: Sequence[int]) -> int:
    """Fewer days since the last purchase is better: 5 minus the number of cut points exceeded."""
    return SCORES - sum(days_since_last > c for c in cuts)


def cell_of(r: int, f: int, cells: Sequence[Cell]) -> str:
    for cell in cells:
        if cell.r[0] <= r <= cell.r[1] and cell.f[0] <= f <= cell.f[1]:
            return cell.name
    return "other"


def monetary_cents(total_cents: int, first_day_cents: int, frequency: int) -> int:
    """Mean of the repeat purchase days in cents, rounded half up; 0 without repeat purchases."""
    if frequency <= 0:
        return 0
    return (2 * (total_cents - first_day_cents) + frequency) // (2 * frequency)


def cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def configured_cuts(config: RfmConfig) -> dict[str, list[int] | None]:
    """Fixed windows from the configuration (None where quintiles of the data are used)."""
    return {
        "recency": list(config.recency_days) if config.recency_days else None,
        "frequency": list(config.frequency) if config.frequency else None,
        "monetary": [cents(m) for m in config.monetary] if config.monetary else None,
    }
