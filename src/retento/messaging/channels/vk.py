"""VK `messages.send` (community token) and the Callback API (message_read, message_deny, confirmation).

`random_id` makes the send idempotent on VK's side: a resend with the same random_id is not delivered
twice, so a message left in flight by a killed worker is retried safely.
"""

from __future__ import annotations

import hmac
from typing import Any

from retento.messaging.channels import HttpChannel, Outgoing, Result, json_or_none

TEMPORARY = {1, 6, 9, 10}  # unknown error, too many requests per second, flood control, internal error


class VkCommunity(HttpChannel):
    name = "vk"
    reports_delivered = False  # the Callback API reports reads (message_read), not delivery
    idempotent = True

    def __init__(self, *, api_url: str, token: str, version: str = "5.199", timeout: float = 15.0) -> None:
        super().__init__(timeout=timeout)
        self.url = f"{api_url.rstrip('/')}/messages.send"
        self.token, self.version = token, version

    def send_one(self, msg: Outgoing) -> Result:
        form = {"peer_id": msg.to, "random_id": str(random_id(msg.idempotency_key)), "message": msg.text,
                "dont_parse_links": "1", "access_token": self.token, "v": self.version}
        resp = self.http.post(self.url, data=form)
        data = json_or_none(resp) or {}
        if "response" in data:
            return Result(msg.id, True, provider_id=str(data["response"]))
        err = data.get("error") or {}
        code = err.get("error_code", resp.status_code)
        return Result(msg.id, False, error=f"vk {code}: {err.get('error_msg', resp.text)}"[:500],
                      temporary=code in TEMPORARY or resp.status_code >= 500)


def random_id(key: str) -> int:
    """A stable signed 32-bit id from our idempotency key (VK's random_id is int32)."""
    digest = hmac.digest(b"retento-vk", key.encode(), "sha256")
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def secret_ok(expected: str | None, payload: dict[str, Any]) -> bool:
    return bool(expected) and hmac.compare_digest(str(payload.get("secret") or ""), expected)
