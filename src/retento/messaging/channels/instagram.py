"""Instagram messaging (Instagram API with Instagram Login): `POST /{ig-id}/messages` with
`{"recipient": {"id": IGSID}, "message": {"text": ...}}`, answered `{"recipient_id", "message_id"}`. Only replies
to a customer who wrote first (the inbox's); reads come as `messaging_seen` webhooks, not handled yet."""

from __future__ import annotations

from typing import Any

from retento.core.http import Client
from retento.messaging.channels import HttpChannel, Outgoing, Result, json_or_none

TEMPORARY = {1, 2, 4, 17, 32, 613}  # unknown / service / rate limits


class InstagramDirect(HttpChannel):
    name = "instagram"
    idempotent = False
    reports_delivered = False
    reports_read = False

    def __init__(self, *, http: Client, api_url: str, account_id: str, token: str, timeout: float = 15.0) -> None:
        super().__init__(http=http, timeout=timeout, headers={"Authorization": f"Bearer {token}"})
        self.url = f"{api_url.rstrip('/')}/{account_id}/messages"

    def payload(self, msg: Outgoing) -> dict[str, Any]:
        message: dict[str, Any] = {"text": msg.text}
        body: dict[str, Any] = {"recipient": {"id": msg.to}, "message": message}
        if msg.options.get("reply_to"):
            body["reply_to"] = {"mid": msg.options["reply_to"]}
        return body

    def send_one(self, msg: Outgoing) -> Result:
        resp = self.post(self.url, json=self.payload(msg))
        data = json_or_none(resp) or {}
        if resp.status_code == 200 and data.get("message_id"):
            return Result(msg.id, True, provider_id=str(data["message_id"]))
        err = data.get("error") or {}
        code = err.get("code")
        return Result(msg.id, False, error=f"instagram {code or resp.status_code}: {err.get('message', resp.text)}"[:500],
                      temporary=resp.status_code >= 500 or resp.status_code == 429 or code in TEMPORARY)
