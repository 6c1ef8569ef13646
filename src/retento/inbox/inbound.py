"""What providers' webhooks tell the inbox, in one shape whatever the provider (pure: the provider modules in
`providers/` read their bodies into it, `service.ingest` stores it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

CHANNELS = ("telegram", "whatsapp", "vk", "instagram")


@dataclass(frozen=True)
class Contact:
    """Who the dialog is with, as the provider names them: the customer is found (or created) by these."""

    peer: str  # where replies go: Telegram chat id, WhatsApp wa_id, VK peer id, Instagram-scoped id
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None  # E.164 digits as the provider gives them (WhatsApp wa_id)
    telegram_id: str | None = None
    vk_id: str | None = None


@dataclass(frozen=True)
class Posted:
    """A new message in a dialog. `outgoing`: written by the shop's side (a person in a business account's app,
    a community admin in VK, an Instagram echo), not by the customer. `sender`: the provider id of the author."""

    channel: str
    account: str  # '' or a Telegram business connection id
    contact: Contact
    provider_id: str
    at: datetime | None  # None: the provider gives no time (a button press): when it arrived
    kind: str = "text"
    text: str | None = None
    media: dict[str, Any] | None = None
    reply_to: str | None = None
    buttons: list[Any] | None = None
    payload: str | None = None
    outgoing: bool = False
    sender: str | None = None
    route: str = ""  # the provider account the webhook was for (WhatsApp phone number id, VK group, IG id)


@dataclass(frozen=True)
class Edited:
    channel: str
    account: str
    peer: str
    provider_id: str
    at: datetime | None
    text: str | None
    media: dict[str, Any] | None = None
    route: str = ""


@dataclass(frozen=True)
class Deleted:
    channel: str
    account: str
    peer: str
    provider_ids: tuple[str, ...]
    route: str = ""


@dataclass(frozen=True)
class Connected:
    """A Telegram business connection was made, changed or ended."""

    id: str
    user_id: str
    user_chat_id: str
    user_name: str | None
    can_reply: bool
    enabled: bool
    at: datetime


Event = Posted | Edited | Deleted | Connected


@dataclass
class Batch:
    """Everything one webhook body carries for the inbox."""

    channel: str
    events: list[Event] = field(default_factory=list)


def at(seconds: int | float) -> datetime:
    """A provider's Unix time (Meta sends milliseconds in Instagram's `timestamp`: the caller divides)."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def clip(text: str | None, limit: int = 65_536) -> str | None:
    return text[:limit] if text is not None else None
