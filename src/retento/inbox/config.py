"""Inbox settings (RETENTO_* env): which site a provider account's messages belong to."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class InboxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETENTO_", env_file=".env", extra="ignore")

    inbox_site: str | None = Field(None, description="Site code whose dialogs inbound messages join (default: the "
                                   "first site) unless `inbox_accounts` names the provider account's site")
    inbox_accounts: dict[str, str] = Field(default_factory=dict, description="JSON: provider account -> site code, "
                                           'e.g. {"whatsapp:1122334455667": "shop2", "vk:123456": "shop3", '
                                           '"instagram:17841400000000000": "shop2"}')
    inbox_stream_poll_seconds: float = Field(0.25, gt=0, le=10, description="How often an open live stream "
                                             "(GET /api/v1/inbox/stream) looks for new events")
    inbox_stream_heartbeat_seconds: float = Field(15.0, gt=0, description="A comment line this often keeps "
                                                  "idle streams open through proxies")
