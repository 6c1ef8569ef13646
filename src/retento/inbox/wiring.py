"""What the inbox adds to the application: a receiver per provider for the messaging webhooks
(`App.parts.inbound`, registered by `bootstrap.assemble`) and, at run time, its settings (`app.inbox`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from retento.inbox import ingest
from retento.inbox.config import InboxSettings
from retento.inbox.inbound import Batch
from retento.inbox.providers import instagram, telegram, vk, whatsapp
from retento.messaging.channels import InboundReceiver

if TYPE_CHECKING:
    from retento.app import App


def _store(session: Session, items: list[tuple[Batch, datetime]]) -> list[dict[str, int]]:
    return ingest.ingest_many(session, items)


def _receiver(provider: str, parse: Callable[[Any], Batch]) -> InboundReceiver:
    return InboundReceiver(provider=provider, parse=parse, store=_store)


RECEIVERS = tuple(_receiver(m.CHANNEL, m.parse) for m in (telegram, whatsapp, vk, instagram))


def configure(app: App, settings: InboxSettings | None = None) -> InboxSettings:
    """(Re)read the inbox settings of an app; tests pass their own."""
    app.inbox = settings or InboxSettings()  # type: ignore[attr-defined]
    return app.inbox  # type: ignore[attr-defined]


def install(app: App) -> None:
    configure(app)
