"""Sign-in throttling, pure: after LIMIT failures of one name from one address within WINDOW, further attempts
are refused until WINDOW has passed since the last of them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

LIMIT = 5
WINDOW = timedelta(minutes=15)


def blocked_until(failures: Sequence[datetime], *, now: datetime) -> datetime | None:
    """When sign-in opens again for a (name, address) with these failure times, or None if it is open now."""
    recent = sorted(t for t in failures if now - t < WINDOW)
    if len(recent) < LIMIT:
        return None
    return recent[-1] + WINDOW
