"""Mobile push through FCM HTTP v1 `projects/{id}/messages:send`. FCM reports neither delivery nor opens
to the sender; an app can report opens to the open endpoint itself."""

from __future__ import annotations

from retento.core.http import Client
from retento.messaging.channels import HttpChannel, Outgoing, Result, json_or_none

TEMPORARY = {"UNAVAILABLE", "INTERNAL", "QUOTA_EXCEEDED"}


class FcmPush(HttpChannel):
    name = "push"
    idempotent = False  # FCM v1 send has no idempotency key
    reports_delivered = False
    reports_read = False

    def __init__(self, *, http: Client, api_url: str, project_id: str, access_token: str, timeout: float = 15.0) -> None:
        super().__init__(http=http, timeout=timeout, headers={"Authorization": f"Bearer {access_token}"})
        self.url = f"{api_url.rstrip('/')}/v1/projects/{project_id}/messages:send"

    def send_one(self, msg: Outgoing) -> Result:
        body = {"message": {"token": msg.to, "notification": {"title": msg.subject or "", "body": msg.text},
                            "data": {"retento_message_id": str(msg.id)}}}
        resp = self.post(self.url, json=body)
        data = json_or_none(resp) or {}
        if resp.status_code == 200 and data.get("name"):
            return Result(msg.id, True, provider_id=data["name"])
        err = data.get("error") or {}
        codes = [d.get("errorCode") for d in err.get("details") or [] if d.get("errorCode")]
        code = codes[0] if codes else err.get("status") or str(resp.status_code)
        return Result(msg.id, False, error=f"fcm {code}: {err.get('message', resp.text)}"[:500],
                      temporary=code in TEMPORARY or resp.status_code >= 500 or resp.status_code == 429,
                      extra={"unregistered": code == "UNREGISTERED"})
