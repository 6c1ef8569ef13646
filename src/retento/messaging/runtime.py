"""What a running process holds for messaging: its settings, the channels built from them and the template
renderer (`wiring.configure` makes it; the send job of `outbox` uses it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from retento.messaging.channels import Channel
from retento.messaging.config import MessagingSettings
from retento.messaging.templates import Renderer
from retento.messaging.tracking import Links, token


@dataclass
class Messaging:
    settings: MessagingSettings
    channels: dict[str, Channel]
    renderer: Renderer = field(default_factory=Renderer)

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
