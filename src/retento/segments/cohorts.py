"""Lifecycle cohorts (pure): monthly states new / active / sleeping, migrations and the four figures.

At the end of each month (or at `today` in the current month) a customer who has bought is
- **new**: one purchase day so far, and fewer than `threshold` days since it;
- **active**: more than one purchase day, and fewer than `threshold` days since the last one;
- **sleeping**: `threshold` days or more since the last purchase.
The threshold is the median time between consecutive purchase days across the base. Purchases are
orders outside the `cancel` group; several orders on one day are one purchase day for the states, but
every order counts in the order figures.
"""

from __future__ import annotations

import statistics
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

STATES = ("new", "active", "sleeping")
NONE = "none"  # not a customer yet (the origin of first-time buyers in the migration matrix)


def median_gap(purchases: Iterable[Sequence[date]]) -> float | None:
    """Median of the days between consecutive distinct purchase days, over all customers; None without repeats."""
    gaps = []
    for days in purchases:
        distinct = sorted(set(days))
        gaps += [(b - a).days for a, b in zip(distinct, distinct[1:], strict=False)]
    return float(statistics.median(gaps)) if gaps else None


def median_of_counts(counts: Iterable[tuple[int, int]]) -> float | None:
    """`median_gap` from a histogram of the gaps: (gap, how many) pairs, in any order; None when empty."""
    ordered = sorted((g, c) for g, c in counts if c > 0)
    n = sum(c for _g, c in ordered)
    if not n:
        return None
    wanted, seen, middle = sorted({(n - 1) // 2, n // 2}), 0, []
    for gap, count in ordered:
        while wanted and wanted[0] < seen + count:
            middle.append(gap)
            wanted.pop(0)
        seen += count
    return float(sum(middle)) / len(middle) if len(middle) == 2 else float(middle[0])


def parse_month(text: str) -> date:
    """`YYYY-MM` (or a date `YYYY-MM-DD`, taken for its month) as the first day of the month; ValueError else."""
    try:
        return date.fromisoformat(text + "-01" if len(text) == 7 else text).replace(day=1)
    except ValueError:
        raise ValueError(f"{text!r} is not a month: YYYY-MM") from None


def month_start(d: date) -> date:
    return d.replace(day=1)


def next_month(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def months_between(first: date, last: date) -> list[date]:
    out, m = [], month_start(first)
    while m <= last:
        out.append(m)
        m = next_month(m)
    return out


def state_at(distinct_days: Sequence[date], at: date, threshold: float) -> str:
    """State at the end of day `at`, given the sorted distinct purchase days (only those <= at count)."""
    k = bisect_right(distinct_days, at)
    if k == 0:
        return NONE
    if (at - distinct_days[k - 1]).days >= threshold:
        return "sleeping"
    return "new" if k == 1 else "active"


@dataclass
class Month:
    month: date
    provisional: bool  # the month is not over yet
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    migrations: Counter = field(default_factory=Counter)  # (from, to) -> customers
    orders: int = 0
    new_base: int = 0  # new at the end of the previous month
    new_to_active: int = 0
    active_base: int = 0  # active at the end of the previous month
    active_orders: int = 0  # their orders this month
    churned: int = 0  # active -> sleeping
    sleeping_base: int = 0
    reactivated: int = 0  # sleeping -> active
    reactivated_orders: int = 0  # orders this month of customers sleeping at the end of the previous one

    @property
    def conversion_new_active(self) -> float | None:
        return self.new_to_active / self.new_base if self.new_base else None

    @property
    def orders_per_active(self) -> float | None:
        return self.active_orders / self.active_base if self.active_base else None

    @property
    def churn_active(self) -> float | None:
        return self.churned / self.active_base if self.active_base else None


@dataclass
class Cohort:
    """Customers by month of first purchase, and what became of them."""

    month: date
    size: int = 0
    became_active: int = 0  # reached active at some month end
    provisional: bool = False  # younger than the threshold: some may still convert


@dataclass
class Report:
    threshold_days: float
    months: list[Month]
    cohorts: list[Cohort]


def lifecycle(purchases: Mapping[int, Sequence[date]], *, threshold: float, today: date, day_over: bool = False
              ) -> Report:
    """Monthly states, migrations, the four figures and acquisition cohorts from each customer's order dates,
    observed at the end of `today`. `day_over`: that day is over (a report as of a past date), so a month that ends
    on it is complete; otherwise the month of `today` is provisional."""
    firsts = [min(days) for days in purchases.values() if days]
    if not firsts:
        return Report(threshold, [], [])
    months = months_between(min(firsts), today)
    ends = [min(next_month(m) - timedelta(days=1), today) for m in months]
    index = {m: i for i, m in enumerate(months)}
    last_days = [next_month(m) - timedelta(days=1) for m in months]
    table = [Month(m, provisional=last > today or (last == today and not day_over)) for m, last in zip(
        months, last_days, strict=True)]
    cohorts = {m: Cohort(m) for m in months}
    for days in purchases.values():
        if not days:
            continue
        orders = sorted(days)
        distinct = sorted(set(orders))
        per_month = Counter(index[month_start(d)] for d in orders if d <= today)
        start = index[month_start(distinct[0])]
        cohort = cohorts[months[start]]
        cohort.size += 1
        prev, was_active = NONE, False
        for i in range(start, len(months)):
            state = state_at(distinct, ends[i], threshold)
            row = table[i]
            row.counts[state] += 1
            row.migrations[(prev, state)] += 1
            n = per_month.get(i, 0)
            row.orders += n
            if prev == "new":
                row.new_base += 1
                row.new_to_active += state == "active"
            elif prev == "active":
                row.active_base += 1
                row.active_orders += n
                row.churned += state == "sleeping"
            elif prev == "sleeping":
                row.sleeping_base += 1
                row.reactivated += state == "active"
                row.reactivated_orders += n
            was_active |= state == "active"
            prev = state
        cohort.became_active += was_active
    for c in cohorts.values():
        c.provisional = (today - (next_month(c.month) - timedelta(days=1))).days < threshold
    return Report(threshold, table, [cohorts[m] for m in months])
