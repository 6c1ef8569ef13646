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

from retento.messaging.channels import HttpChannel, Outgoing, Result, json_or_none

# Cloud API error codes worth another attempt: throttling and transient platform errors.
TEMPORARY = {1, 2, 4, 17, 80007, 130429, 131000, 131016, 131048, 131056, 133004}


class WhatsAppCloud(HttpChannel):
    name = "whatsapp"

    def __init__(self, *, api_url: str, phone_number_id: str, token: str, timeout: float = 15.0) -> None:
        super().__init__(timeout=timeout, headers={"Authorization": f"Bearer {token}"})
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
        return body

    def send_one(self, msg: Outgoing) -> Result:
        resp = self.http.post(self.url, json=self.payload(msg))
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
    return hmac.compare_digest(expected, header.removeprefix("sha256="))


@dataclass(frozen=True)
class StatusUpdate:
    provider_id: str
    status: str  # sent | delivered | read | failed
    at: datetime
    error: str | None = None
    callback_data: str | None = None  # our idempotency key, echoed from biz_opaque_callback_data


def statuses(payload: dict[str, Any]) -> list[StatusUpdate]:
    """Every status in a webhook body (a body may carry several entries, changes and statuses)."""
    out = []
    for entry in payload.get("entry") or []:
        for change in entry.get("changes") or []:
            for st in (change.get("value") or {}).get("statuses") or []:
                errors = st.get("errors") or []
                error = "; ".join(f"{e.get('code')}: {e.get('title') or e.get('message')}" for e in errors) or None
                at = datetime.fromtimestamp(int(st.get("timestamp") or 0), tz=timezone.utc)
                out.append(StatusUpdate(st["id"], st["status"], at, error, st.get("biz_opaque_callback_data")))
    return out
