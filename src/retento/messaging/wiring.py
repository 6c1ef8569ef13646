"""The channel adapters (`ADAPTERS`) and the `start_cascade` trigger action, which `bootstrap.assemble` registers;
builds the registered channels from settings; adds the messaging jobs to the worker and the close hook of the
channels."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from retento.core.db.transactions import transaction
from retento.core.errors import NotFound
from retento.core.http import Client, Guard
from retento.messaging import API_PATH, campaigns, outbox, planner, service
from retento.messaging.channels import Channel, ChannelAdapter, idempotent_channels
from retento.messaging.channels.email import SmtpEmail
from retento.messaging.channels.fcm import FcmPush
from retento.messaging.channels.instagram import InstagramDirect
from retento.messaging.channels.telegram import TelegramBot
from retento.messaging.channels.twilio import TwilioSms
from retento.messaging.channels.vk import VkCommunity
from retento.messaging.channels.whatsapp import WhatsAppCloud
from retento.messaging.config import MessagingSettings
from retento.messaging.models import Cascade
from retento.messaging.runtime import Messaging
from retento.messaging.schemas import MessageClass
from retento.orders import service as orders
from retento.triggers.actions import ActionContext, action

if TYPE_CHECKING:
    from retento.app import App


def _email(cfg: MessagingSettings, http: Client) -> Channel | None:
    return SmtpEmail(host=cfg.smtp_host, port=cfg.smtp_port, user=cfg.smtp_user, password=cfg.smtp_password,
                     starttls=cfg.smtp_starttls, timeout=cfg.smtp_timeout, sender=cfg.email_from,
                     unsubscribe_mailto=cfg.email_unsubscribe_mailto) if cfg.smtp_host else None


def _whatsapp(cfg: MessagingSettings, http: Client) -> Channel | None:
    return WhatsAppCloud(http=http, api_url=cfg.whatsapp_api_url, phone_number_id=cfg.whatsapp_phone_number_id,
                         token=cfg.whatsapp_token, timeout=cfg.http_timeout) if (
        cfg.whatsapp_phone_number_id and cfg.whatsapp_token) else None


def _telegram(cfg: MessagingSettings, http: Client) -> Channel | None:
    return TelegramBot(http=http, api_url=cfg.telegram_api_url, token=cfg.telegram_bot_token, timeout=cfg.http_timeout) if (
        cfg.telegram_bot_token) else None


def _vk(cfg: MessagingSettings, http: Client) -> Channel | None:
    return VkCommunity(http=http, api_url=cfg.vk_api_url, token=cfg.vk_token, version=cfg.vk_api_version,
                       timeout=cfg.http_timeout) if cfg.vk_token else None


def _instagram(cfg: MessagingSettings, http: Client) -> Channel | None:
    return InstagramDirect(http=http, api_url=cfg.instagram_api_url, account_id=cfg.instagram_account_id,
                           token=cfg.instagram_token, timeout=cfg.http_timeout) if (
        cfg.instagram_account_id and cfg.instagram_token) else None


def _sms(cfg: MessagingSettings, http: Client) -> Channel | None:
    if not (cfg.twilio_account_sid and cfg.twilio_auth_token and cfg.twilio_from):
        return None
    return TwilioSms(http=http, api_url=cfg.twilio_api_url, account_sid=cfg.twilio_account_sid, auth_token=cfg.twilio_auth_token,
                     sender=cfg.twilio_from, status_callback=f"{cfg.public_url.rstrip('/')}{API_PATH}/webhooks/twilio",
                     timeout=cfg.http_timeout)


def _push(cfg: MessagingSettings, http: Client) -> Channel | None:
    return FcmPush(http=http, api_url=cfg.fcm_api_url, project_id=cfg.fcm_project_id, access_token=cfg.fcm_access_token,
                   timeout=cfg.http_timeout) if (cfg.fcm_project_id and cfg.fcm_access_token) else None


# The provider modules' channels, registered in `bootstrap.assemble` (App.parts.channel_adapters).
ADAPTERS = (ChannelAdapter(SmtpEmail, _email), ChannelAdapter(WhatsAppCloud, _whatsapp),
            ChannelAdapter(TelegramBot, _telegram), ChannelAdapter(VkCommunity, _vk), ChannelAdapter(TwilioSms, _sms),
            ChannelAdapter(FcmPush, _push),
            ChannelAdapter(InstagramDirect, _instagram))


def build_channels(adapters: Iterable[ChannelAdapter], cfg: MessagingSettings, http: Client) -> dict[str, Channel]:
    """Every registered channel whose credentials are configured."""
    return {a.name: channel for a in adapters if (channel := a.build(cfg, http)) is not None}


def provider_client(app: App, cfg: MessagingSettings) -> Client:
    """The channels' outgoing client: the application's guard, whose allow-list also names the hosts of the
    provider URLs an administrator set (`RETENTO_*_API_URL`: a self-hosted gateway, a local test server), for the
    channels' requests only; webhooks keep the application's own allow-list (`RETENTO_OUTGOING_ALLOW`)."""
    hosts = [httpx.URL(url).host for url in cfg.provider_urls()]
    return Client(Guard(app.http.guard.allow.with_hosts(hosts), app.http.guard.resolver))


def configure(app: App, settings: MessagingSettings | None = None) -> Messaging:
    """(Re)build the messaging runtime of an app; tests point it at their local provider servers."""
    old = getattr(app, "messaging", None)
    if old is not None:
        old.close()
    cfg = settings or MessagingSettings()
    adapters = app.parts.channel_adapters.values()
    http = provider_client(app, cfg)
    channels = build_channels(adapters, cfg, http)
    queue = outbox.queue(cfg, sorted(channels))
    app.messaging = Messaging(settings=cfg, channels=channels, queue=queue, http=http,  # type: ignore[attr-defined]
                              idempotent=idempotent_channels(adapters))
    app.work.add(queue.name, queue, replace=True)
    return app.messaging  # type: ignore[attr-defined]


class StartCascade(BaseModel):
    """Start a messaging cascade for the event's customer (once per trigger firing)."""

    model_config = ConfigDict(extra="forbid")
    cascade_id: int = Field(gt=0)
    message_class: MessageClass = MessageClass.MARKETING


def _check_cascade(session: Session, p: StartCascade) -> None:
    if session.get(Cascade, p.cascade_id) is None:
        raise NotFound("cascade_id", f"unknown cascade {p.cascade_id}")


def _start_cascade(a: ActionContext, p: StartCascade) -> dict[str, Any]:
    """The trigger action: the run's templates see the event's order as `order`."""
    customer = a.need_customer()
    order = a.variables.get("order")
    if order is None and a.order_id is not None:
        order = orders.snapshot(a.session, a.need_order())
    run = service.start_cascade(a.session, cascade_id=p.cascade_id, customer_id=customer.id, now=a.now,
                                message_class=p.message_class.value, context={"order": order} if order else None,
                                idempotency_key=f"{a.key}:cascade:{p.cascade_id}")
    return {"run_id": run.id}


START_CASCADE = action("start_cascade", StartCascade, _start_cascade, check=_check_cascade)  # see bootstrap.assemble


def install(app: App) -> None:
    configure(app)
    app.on_close(lambda: app.messaging.close())  # type: ignore[attr-defined]

    def start_campaigns() -> int:
        with transaction(app.sessions) as s:
            return campaigns.start_due_campaigns(s, now=app.clock.now())

    def cascades() -> int:
        with transaction(app.sessions) as s:
            return planner.advance_due(s, now=app.clock.now(), limit=app.messaging.settings.cascade_batch)

    def send() -> int:
        return outbox.send_due(app.sessions, app.messaging, app.clock)

    for q in (campaigns.QUEUE, planner.QUEUE):
        app.work.add(q.name, q)
    app.worker.add_job("messaging.campaigns", start_campaigns)
    app.worker.add_job("messaging.cascades", cascades)
    app.worker.add_job("messaging.send", send)
