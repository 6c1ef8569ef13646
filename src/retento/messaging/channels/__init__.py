"""The one small protocol every provider module implements, and the shapes it exchanges."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from retento.core.errors import DomainError
from retento.core.http import REFUSED, Client, Refused

M = TypeVar("M", bound=BaseModel)
# Timestamps a provider reports (seconds since 1970): Retento stores times up to the year 2200.
MAX_TIMESTAMP = 7_258_118_399


@dataclass(frozen=True)
class Outgoing:
    id: int
    idempotency_key: str
    to: str
    text: str
    subject: str | None = None
    html: str | None = None
    language: str = "ru"
    provider_template: str | None = None  # WhatsApp: an approved template; `text` lines are its parameters
    unsubscribe_url: str | None = None
    bounce_address: str | None = None
    # what only some providers take: `reply_to` (the provider id of the quoted message), `business_connection_id`
    # (Telegram: send on behalf of a business account)
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    id: int
    ok: bool
    provider_id: str | None = None
    error: str | None = None
    temporary: bool = False  # worth another attempt later
    units: int = 1  # what is billed: SMS segments, otherwise 1
    extra: dict = field(default_factory=dict)


class Channel(Protocol):
    name: str
    reports_delivered: bool
    reports_read: bool
    idempotent: bool  # the provider drops a resend of the same message: safe to retry after a crash

    def send(self, batch: Sequence[Outgoing]) -> list[Result]: ...

    def close(self) -> None: ...


class HttpChannel:
    """Base for providers reached over HTTPS through the one outgoing client (`retento.core.http.Client`, shared
    by the channels of a process and closed with them: `Messaging.close`). Transport errors are temporary, and so
    is a refusal by the outgoing request policy (the provider's address changed to one the policy refuses): the
    message stays for a later attempt rather than failing for good."""

    name = "http"
    reports_delivered = True
    reports_read = True
    idempotent = False

    def __init__(self, *, http: Client, timeout: float = 15.0, headers: dict[str, str] | None = None,
                 auth: tuple[str, str] | None = None) -> None:
        self.http, self.timeout, self.headers, self.auth = http, timeout, headers or {}, auth

    def post(self, url: str, **request: Any) -> httpx.Response:
        """POST with this channel's headers, credentials and timeout; `request`: json or data."""
        return self.http.exchange("POST", url, timeout=self.timeout, headers=self.headers, auth=self.auth,
                                  **request)

    def send(self, batch: Sequence[Outgoing]) -> list[Result]:
        out = []
        for msg in batch:
            try:
                out.append(self.send_one(msg))
            except httpx.TransportError as exc:
                out.append(Result(msg.id, False, error=f"network: {exc!r}"[:500], temporary=True))
            except Refused as exc:
                out.append(Result(msg.id, False, error=f"{REFUSED}: {exc.reason}"[:500], temporary=True))
        return out

    def send_one(self, msg: Outgoing) -> Result:
        raise TypeError(f"{type(self).__name__} must define send_one")

    def close(self) -> None:
        """Nothing of its own: the client is the process's channels' (`Messaging.close` closes it)."""


def json_or_none(resp: httpx.Response) -> dict | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def webhook_body(model: type[M], value: Any, what: str, *, field: str = "body") -> M:
    """A provider's webhook body (or a part of it, `field`) in the shape its module declares; anything else is
    a DomainError naming the field: a 400, as the body is not what the provider sends."""
    if not isinstance(value, dict):
        raise DomainError.one(field, f"must be a JSON object: {what}")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc, "" if field == "body" else f"{field}.") from None


@dataclass(frozen=True)
class InboundReceiver:
    """A domain that takes what customers send through a provider (the inbox) registers one per provider
    (`App.parts.inbound`). The provider's one webhook endpoint checks the signature, then calls `parse` on the
    body (a DomainError there is the 400, before anything is stored), then `store` through the app's group
    commit: one call for the concurrent webhooks' items `(what parse returned, now)`, an answer per item, and
    each webhook answers only once the transaction has committed."""

    provider: str
    parse: Callable[[Any], Any]
    store: Callable[[Any, list[tuple[Any, datetime]]], list[Any]]  # (session, items) -> an answer per item


@dataclass(frozen=True)
class ChannelAdapter:
    """A provider module's channel, as the application registers it (`App.parts.channel_adapters`): its class
    (name and what it reports) and how to build it from the settings (None when its credentials are not set)."""

    kind: type
    # (MessagingSettings, the channels' outgoing client) -> the channel, or None when not configured
    build: Callable[[Any, Client], Channel | None]

    @property
    def name(self) -> str:
        return self.kind.name


def capabilities(adapters: Iterable[ChannelAdapter]) -> dict[str, tuple[bool, bool]]:
    """channel -> (reports delivery, reports reads), from the registered adapters."""
    return {a.name: (a.kind.reports_delivered, a.kind.reports_read) for a in adapters}


def idempotent_channels(adapters: Iterable[ChannelAdapter]) -> list[str]:
    """Channels whose provider drops a repeat of the same message (of ours: VK, by `random_id`)."""
    return sorted(a.name for a in adapters if a.kind.idempotent)
