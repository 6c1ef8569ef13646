"""Pure policy decisions for one message: consent, contact, quiet hours, frequency cap. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

MARKETING, TRANSACTIONAL = "marketing", "transactional"
CHANNELS = ("email", "sms", "whatsapp", "telegram", "vk", "push")


@dataclass(frozen=True)
class Policy:
    quiet_start: int | None = 21 * 60  # minutes after local midnight
    quiet_end: int | None = 9 * 60
    cap_count: int | None = 3  # marketing messages per customer per period, across channels
    cap_period: timedelta = timedelta(days=1)
    default_language: str = "ru"


@dataclass(frozen=True)
class Decision:
    send: bool
    reason: str | None = None  # why not
    not_before: datetime | None = None  # deferred by quiet hours


def address(channel: str, sheet: dict[str, Any], devices: dict[int, str] | None = None) -> str | None:
    """Where a customer is reached on a channel, or None."""
    if channel == "email":
        return sheet.get("email")
    if channel == "sms":
        return sheet.get("phone")
    if channel == "whatsapp":
        value = sheet.get("whatsapp_id") or sheet.get("phone")
        return value.lstrip("+") if value else None
    if channel == "telegram":
        return sheet.get("telegram_id")
    if channel == "vk":
        return sheet.get("vk_id")
    if channel == "push":
        return (devices or {}).get(sheet["id"])
    raise ValueError(f"unknown channel {channel!r}")


def quiet_until(now: datetime, tz: str, start: int | None, end: int | None) -> datetime | None:
    """If `now` falls in the quiet hours of zone `tz`, when they end (UTC); else None."""
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(ZoneInfo(tz))
    minute = local.hour * 60 + local.minute
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    if not inside:
        return None
    day = local.date() if minute < end else local.date() + timedelta(days=1)
    wake = datetime.combine(day, time(end // 60, end % 60), tzinfo=ZoneInfo(tz))
    return wake.astimezone(timezone.utc)


def decide(
    now: datetime,
    *,
    channel: str,
    message_class: str,
    sheet: dict[str, Any],
    to: str | None,
    policy: Policy,
    recent: int,
    site_timezone: str,
) -> Decision:
    """May this message go out, and when. `recent` counts this customer's marketing messages in the cap period."""
    if not to:
        return Decision(False, "no_contact")
    if sheet["consents"].get(channel) is not True:
        return Decision(False, "no_consent")  # never sent without consent, transactional included
    if message_class == TRANSACTIONAL:
        return Decision(True)
    if policy.cap_count is not None and recent >= policy.cap_count:
        return Decision(False, "frequency_cap")
    wake = quiet_until(now, sheet.get("timezone") or site_timezone, policy.quiet_start, policy.quiet_end)
    return Decision(True, None, wake)
