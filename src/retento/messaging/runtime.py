"""What a running process holds for messaging: its settings, the channels built from them and the template
renderer, the outbox's work queue and this process's lease owner (`wiring.configure` makes it; the send job of
`outbox` uses it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from retento.core import work
from retento.core.http import Client
from retento.messaging.channels import Channel
from retento.messaging.config import MessagingSettings
from retento.messaging.templates import Renderer
from retento.messaging.tracking import Links, token


@dataclass
class Messaging:
    settings: MessagingSettings
    channels: dict[str, Channel]
    queue: work.Queue  # the outbox (`outbox.queue`)
    http: Client  # the channels' outgoing client (`wiring.provider_client`)
    renderer: Renderer = field(default_factory=Renderer)
    idempotent: list[str] = field(default_factory=list)  # channels whose provider drops a repeat (any worker's)
    owner: str = field(default_factory=work.worker_id)  # who holds this process's leases
    unserved_checked_at: datetime | None = None

    def unserved_check_due(self, now: datetime) -> bool:
        """Time to look for due messages of channels this process has no settings for (every 5 minutes)."""
        if self.unserved_checked_at is not None and now - self.unserved_checked_at < timedelta(minutes=5):
            return False
        self.unserved_checked_at = now
        return True

    @property
    def links(self) -> Links:
        return Links(self.settings.public_url, self.settings.messaging_secret)

    def bounce_address(self, message_id: int) -> str | None:
        """VERP return path, so a bounce names the message it is about."""
        local, _, domain = self.settings.email_from.partition("@")
        return f"{local}+bounce-{token(self.settings.messaging_secret, message_id)}@{domain}" if domain else None

    def close(self) -> None:
        for ch in self.channels.values():
            ch.close()
        self.http.close()
