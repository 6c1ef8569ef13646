"""WhatsApp Cloud API: `POST /{phone-number-id}/messages` (template or session text), status webhooks.

Status webhooks: `entry[].changes[].value.statuses[]` with `id` (the wamid returned by the send), `status`
(sent, delivered, read, failed), `timestamp`, `errors[]`; signed with `X-Hub-Signature-256: sha256=<hex>`,
an HMAC-SHA256 of the raw body keyed with the app secret.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

from retento.core import parsing
from retento.core.http import Client
from retento.messaging.channels import (
    MAX_TIMESTAMP,
    HttpChannel,
    Outgoing,
    Result,
    json_or_none,
    webhook_body,
)

# Cloud API error codes worth another attempt: throttling and transient platform errors.
TEMPORARY = {1, 2, 4, 17, 80007, 130429, 131000, 131016, 131048, 131056, 133004}


class WhatsAppCloud(HttpChannel):
    name = "whatsapp"
    idempotent = False  # no idempotency key; our key comes back in status webhooks (settles an uncertain send)

    def __init__(self, *, http: Client, api_url: str, phone_number_id: str, token: str, timeout: float = 15.0) -> None:
        super().__init__(http=http, timeout=timeout, headers={"Authorization": f"Bearer {token}"})
        self.url = f"{api_url.rstrip('/')}/{phone_number_id}/messages"

    def payload(self, msg: Outgoing) -> dict[str, Any]:
        body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": msg.to,
                                "biz_opaque_callback_data": msg.idempotency_key}
        if msg.provider_template:
            params = [{"type": "text", "text": line} for line in msg.text.splitlines() if line.strip()]
            template: dict[str, Any] = {"name": msg.provider_template, "language": {"code": msg.language}}
            if params:
                template["components"] = [{"type": "body", "parameters": params}]
            body.update(type="template", template=template)
        else:
            body.update(type="text", text={"preview_url": False, "body": msg.text})
        if msg.options.get("reply_to"):
            body["context"] = {"message_id": msg.options["reply_to"]}
        return body

    def send_one(self, msg: Outgoing) -> Result:
        resp = self.post(self.url, json=self.payload(msg))
        data = json_or_none(resp) or {}
        if resp.status_code == 200 and data.get("messages"):
            return Result(msg.id, True, provider_id=data["messages"][0]["id"])
        err = data.get("error") or {}
        code = err.get("code")
        temporary = resp.status_code >= 500 or resp.status_code == 429 or code in TEMPORARY
        return Result(msg.id, False, error=f"whatsapp {code or resp.status_code}: {err.get('message', resp.text)}"[:500],
                      temporary=temporary)


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return parsing.secret_equal(expected, header.removeprefix("sha256="))


@dataclass(frozen=True)
class StatusUpdate:
    provider_id: str
    status: str  # sent | delivered | read | failed
    at: datetime
    error: str | None = None
    callback_data: str | None = None  # our idempotency key, echoed from biz_opaque_callback_data


# The parts of a webhook body Retento reads (others, such as inbound `messages`, are ignored).
class StatusError(BaseModel):
    code: int | str | None = None
    title: str | None = None
    message: str | None = None


class Status(BaseModel):
    id: str = Field(min_length=1, max_length=255)
    status: str = Field(min_length=1, max_length=32)
    timestamp: int = Field(0, ge=0, le=MAX_TIMESTAMP)
    errors: list[StatusError] | None = None
    biz_opaque_callback_data: str | None = Field(None, max_length=512)


class ChangeValue(BaseModel):
    statuses: list[Status] | None = None


class Change(BaseModel):
    value: ChangeValue | None = None


class Entry(BaseModel):
    changes: list[Change] | None = None


class Webhook(BaseModel):
    entry: list[Entry] | None = None


def statuses(payload: Any) -> list[StatusUpdate]:
    """Every status in a webhook body (a body may carry several entries, changes and statuses); a body of
    another shape is a DomainError naming the field."""
    out = []
    for entry in webhook_body(Webhook, payload, "a WhatsApp Cloud API webhook").entry or []:
        for change in entry.changes or []:
            for st in (change.value.statuses if change.value else None) or []:
                error = "; ".join(f"{e.code}: {e.title or e.message}" for e in st.errors or []) or None
                at = datetime.fromtimestamp(st.timestamp, tz=timezone.utc)
                out.append(StatusUpdate(st.id, st.status, at, error, st.biz_opaque_callback_data))
    return out
