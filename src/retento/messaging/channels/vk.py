"""VK `messages.send` (community token) and the Callback API (message_read, message_deny, confirmation).

`random_id` makes the send idempotent on VK's side: a resend with the same random_id is not delivered
twice, so a message left in flight by a killed worker is retried safely.
"""

from __future__ import annotations

import hmac
from typing import Any

from pydantic import BaseModel, Field

from retento.core import parsing
from retento.core.http import Client
from retento.messaging.channels import HttpChannel, M, Outgoing, Result, json_or_none, webhook_body

TEMPORARY = {1, 6, 9, 10}  # unknown error, too many requests per second, flood control, internal error


class VkCommunity(HttpChannel):
    name = "vk"
    reports_delivered = False  # the Callback API reports reads (message_read), not delivery
    idempotent = True

    def __init__(self, *, http: Client, api_url: str, token: str, version: str = "5.199", timeout: float = 15.0) -> None:
        super().__init__(http=http, timeout=timeout)
        self.url = f"{api_url.rstrip('/')}/messages.send"
        self.token, self.version = token, version

    def send_one(self, msg: Outgoing) -> Result:
        form = {"peer_id": msg.to, "random_id": str(random_id(msg.idempotency_key)), "message": msg.text,
                "dont_parse_links": "1", "access_token": self.token, "v": self.version}
        if (msg.options.get("reply_to") or "").isdigit():
            form["reply_to"] = msg.options["reply_to"]
        resp = self.post(self.url, data=form)
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


def secret_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected) and parsing.secret_equal(expected or "", given)


# The Callback API body: `{"type", "object", "group_id", "event_id", "secret"}`; `object` depends on `type`.
class Callback(BaseModel):
    type: str = Field(min_length=1, max_length=64)
    object: Any = None
    group_id: int | None = None
    secret: str | None = Field(None, max_length=255)


class MessageRead(BaseModel):
    """`message_read`: the peer has read everything up to `read_message_id` in the conversation."""

    peer_id: int | None = None
    from_id: int | None = None
    read_message_id: int = Field(ge=0, le=parsing.INT64_MAX)

    @property
    def peer(self) -> str:
        return str(self.peer_id or self.from_id)


class MessageDeny(BaseModel):
    """`message_deny`: the user no longer accepts messages from the community."""

    user_id: int


def callback(payload: Any) -> Callback:
    return webhook_body(Callback, payload, "a VK Callback API event")


def event_object(model: type[M], call: Callback) -> M:
    return webhook_body(model, call.object, f"the object of a {call.type} event", field="object")
