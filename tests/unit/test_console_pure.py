"""Pure parts of the console and its users: sign-in throttling, month boundaries in a time zone, savings sums."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from retento.console.pages.dashboard import month_bounds, savings_by_currency
from retento.users import throttle
from retento.users.schemas import may

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def test_throttle_opens_a_window_after_the_last_of_enough_recent_failures() -> None:
    failures = [NOW - timedelta(minutes=m) for m in (1, 2, 3, 4)]
    assert throttle.blocked_until(failures, now=NOW) is None
    failures.append(NOW - timedelta(minutes=20))  # outside the window: does not count
    assert throttle.blocked_until(failures, now=NOW) is None
    failures.append(NOW)
    assert throttle.blocked_until(failures, now=NOW) == NOW + throttle.WINDOW
    assert throttle.blocked_until(failures, now=NOW + throttle.WINDOW) is None


def test_month_bounds_in_the_users_time_zone() -> None:
    late = datetime(2026, 2, 28, 22, 30, tzinfo=timezone.utc)  # already March in Moscow
    moscow = month_bounds(late, "Europe/Moscow", months=2)
    assert [b.isoformat() for b in moscow] == ["2026-02-01T00:00:00+03:00", "2026-03-01T00:00:00+03:00",
                                               "2026-04-01T00:00:00+03:00"]
    utc = month_bounds(late, "UTC", months=12)
    assert len(utc) == 13 and utc[0].isoformat() == "2025-03-01T00:00:00+00:00"
    assert utc[-2].isoformat() == "2026-02-01T00:00:00+00:00"


def test_savings_are_summed_per_currency() -> None:
    def rep(cur: str, members: int, cost: str, baseline: str) -> dict:
        return {"currency": cur, "members": members, "total_cost": Decimal(cost), "baseline_cost": Decimal(baseline),
                "net_saving": Decimal(baseline) - Decimal(cost)}

    rows = savings_by_currency([rep("RUB", 10, "5.00", "30.00"), rep("EUR", 1, "1", "1"), rep("RUB", 5, "2", "15")])
    assert [(r["currency"], r["cascades"], r["members"], r["cost"], r["saving"]) for r in rows] == [
        ("EUR", 1, 1, Decimal("1"), Decimal("0")), ("RUB", 2, 15, Decimal("7.00"), Decimal("38.00"))]


def test_roles() -> None:
    assert may("admin", "admin") and may("admin", "marketing") and may("operator", "operations")
    assert not may("marketer", "operations") and not may("operator", "admin")
    assert [a for a in ("admin", "marketing", "operations") if may("viewer", a)] == [] and may("viewer", "self")
