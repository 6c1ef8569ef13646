"""Messaging settings: provider credentials and endpoints, tracking links, worker batch sizes (RETENTO_* env)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MessagingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETENTO_", env_file=".env", extra="ignore")

    public_url: str = Field("http://127.0.0.1:8000", description="Base URL of this installation, for tracking "
                            "pixels, click redirects, unsubscribe links and webhook signature checks")
    messaging_secret: str = Field("change-me", description="Key that signs tracking and unsubscribe links")
    smtp_host: str | None = Field(None, description="SMTP relay host; email is off without it")
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout: float = 30.0
    email_from: str = Field("shop@example.com", description="From address of marketing email")
    email_unsubscribe_mailto: str | None = Field(None, description="Address for mailto: List-Unsubscribe")
    whatsapp_api_url: str = "https://graph.facebook.com/v21.0"
    whatsapp_phone_number_id: str | None = None
    whatsapp_token: str | None = None
    whatsapp_app_secret: str | None = Field(None, description="Meta app secret: checks X-Hub-Signature-256")
    whatsapp_verify_token: str | None = Field(None, description="hub.verify_token of the webhook subscription")
    telegram_api_url: str = "https://api.telegram.org"
    telegram_bot_token: str | None = None
    telegram_webhook_secret: str | None = Field(None, description="secret_token given to setWebhook: checks "
                                                "X-Telegram-Bot-Api-Secret-Token of every update")
    vk_api_url: str = "https://api.vk.com/method"
    vk_token: str | None = None
    vk_api_version: str = "5.199"
    vk_secret: str | None = Field(None, description="Callback API secret key")
    vk_confirmation: str | None = Field(None, description="Callback API confirmation string")
    instagram_api_url: str = "https://graph.instagram.com/v21.0"
    instagram_account_id: str | None = Field(None, description="Instagram professional account id (IG_ID)")
    instagram_token: str | None = Field(None, description="Instagram user access token with "
                                        "instagram_business_manage_messages")
    instagram_app_secret: str | None = Field(None, description="Meta app secret: checks X-Hub-Signature-256")
    instagram_verify_token: str | None = Field(None, description="hub.verify_token of the webhook subscription")
    twilio_api_url: str = "https://api.twilio.com"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = Field(None, description="Sender number or Messaging Service SID (MG…)")
    fcm_api_url: str = "https://fcm.googleapis.com"
    fcm_project_id: str | None = None
    fcm_access_token: str | None = Field(None, description="OAuth 2.0 access token with the "
                                         "firebase.messaging scope (refreshed by your deployment)")
    http_timeout: float = 15.0
    send_batch: int = Field(500, gt=0, description="Messages one worker claims at a time")
    send_in_flight: int = Field(10, gt=0, le=1000, description="Messages a worker marks `sending` and sends before "
                                "it records their outcomes (one transaction per group): a crash leaves at most "
                                "this many uncertain; 1 records each message before the next is sent")
    send_lease_seconds: float = Field(300, gt=0, description="Lease of a claimed batch, renewed by its worker while "
                                      "it sends; a lease that ran out (the worker died) is taken over")
    send_max_attempts: int = Field(5, gt=0, description="Attempts (temporary provider errors) before a message fails")
    send_backoff_seconds: float = Field(60.0, gt=0, description="Wait after a message's first temporary error; "
                                        "doubles with each further one")
    send_backoff_max_seconds: float = Field(6 * 3600.0, gt=0, description="Longest wait between attempts of a message")
    cascade_batch: int = Field(5000, gt=0, description="Cascade runs advanced per statement batch")

    def provider_urls(self) -> list[str]:
        """The providers' API URLs an administrator set: the channels' client may reach their hosts although the
        outgoing request policy refuses them (a self-hosted gateway, a local test server)."""
        return [self.whatsapp_api_url, self.telegram_api_url, self.vk_api_url, self.twilio_api_url, self.fcm_api_url,
                self.instagram_api_url]
