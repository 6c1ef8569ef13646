"""Telegram Bot API `sendMessage`. Bots get no delivery or read receipts: reports say "not reported". A reply
quotes the customer's message (`reply_parameters`) and goes out through a business account when it is one's
(`business_connection_id`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from retento.core.http import Client
from retento.messaging.channels import HttpChannel, Outgoing, Result, json_or_none, webhook_body


class TelegramBot(HttpChannel):
    name = "telegram"
    idempotent = False  # sendMessage has no idempotency key
    reports_delivered = False
    reports_read = False

    def __init__(self, *, http: Client, api_url: str, token: str, timeout: float = 15.0) -> None:
        super().__init__(http=http, timeout=timeout)
        self.url = f"{api_url.rstrip('/')}/bot{token}/sendMessage"

    def send_one(self, msg: Outgoing) -> Result:
        body = {"chat_id": msg.to, "text": msg.html or msg.text, "link_preview_options": {"is_disabled": True}}
        if msg.html:
            body["parse_mode"] = "HTML"
        if msg.options.get("business_connection_id"):
            body["business_connection_id"] = msg.options["business_connection_id"]
        if (msg.options.get("reply_to") or "").isdigit():
            body["reply_parameters"] = {"message_id": int(msg.options["reply_to"]),
                                        "allow_sending_without_reply": True}
        resp = self.post(self.url, json=body)
        data = json_or_none(resp) or {}
        if data.get("ok"):
            return Result(msg.id, True, provider_id=f"{data['result']['chat']['id']}:{data['result']['message_id']}")
        code = data.get("error_code") or resp.status_code
        retry = (data.get("parameters") or {}).get("retry_after")
        return Result(msg.id, False, error=f"telegram {code}: {data.get('description', resp.text)}"[:500],
                      temporary=code == 429 or code >= 500, extra={"retry_after": retry} if retry else {})


class _Update(BaseModel):
    update_id: int = Field(ge=0, le=2**63 - 1)


def update_id(payload: Any) -> int:
    """The id of a Bot API update (every update has one); another body is a DomainError naming the field."""
    return webhook_body(_Update, payload, "a Telegram Bot API update").update_id


def webhook_answer(payload: Any) -> dict[str, Any] | None:
    """The Bot API method to answer a webhook update with, if any: a button press (`callback_query`) is answered
    with `answerCallbackQuery` in the webhook's own response (the Bot API runs a method given there, no request of
    ours), or the customer's app shows a spinner on the button until it times out."""
    query = payload.get("callback_query") if isinstance(payload, dict) else None
    qid = query.get("id") if isinstance(query, dict) else None
    return {"method": "answerCallbackQuery", "callback_query_id": qid} if isinstance(qid, str) and qid else None
