"""SMS through Twilio's Messages API, status callbacks signed with X-Twilio-Signature, price by segment.

A segment holds 160 GSM-7 characters (153 each when the text is split), or 70 UCS-2 characters (67 each
when split) as soon as one character is outside GSM-7: Cyrillic text costs about 2.3 times as much.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Mapping

from retento.core import parsing
from retento.core.http import Client
from retento.messaging.channels import HttpChannel, Outgoing, Result, json_or_none

GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXT = set("^{}\\[~]|€\f")  # two septets each (escape + char)
TEMPORARY = {20429, 20500, 20503, 30001, 30017}  # rate limits, server errors, queue overflow, carrier congestion


def segments(text: str) -> int:
    """How many SMS segments (billing units) a text takes."""
    if all(c in GSM7 or c in GSM7_EXT for c in text):
        length = sum(2 if c in GSM7_EXT else 1 for c in text)
        return 1 if length <= 160 else math.ceil(length / 153)
    units = len(text.encode("utf-16-le")) // 2  # characters outside the BMP take two UCS-2 units
    return 1 if units <= 70 else math.ceil(units / 67)


class TwilioSms(HttpChannel):
    name = "sms"
    idempotent = False  # the Messages API has no idempotency key
    reports_read = False  # SMS has no read receipts

    def __init__(self, *, http: Client, api_url: str, account_sid: str, auth_token: str, sender: str, status_callback: str,
                 timeout: float = 15.0) -> None:
        super().__init__(http=http, timeout=timeout, auth=(account_sid, auth_token))
        self.url = f"{api_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.sender, self.callback = sender, status_callback

    def send_one(self, msg: Outgoing) -> Result:
        form = {"To": msg.to, "Body": msg.text, "StatusCallback": self.callback}
        form["MessagingServiceSid" if self.sender.startswith("MG") else "From"] = self.sender
        resp = self.post(self.url, data=form)
        data = json_or_none(resp) or {}
        if resp.status_code in (200, 201) and data.get("sid"):
            units = int(data.get("num_segments") or 0) or segments(msg.text)
            return Result(msg.id, True, provider_id=data["sid"], units=units)
        code = data.get("code")
        return Result(msg.id, False, error=f"twilio {code or resp.status_code}: {data.get('message', resp.text)}"[:500],
                      temporary=resp.status_code in (429, 500, 502, 503) or code in TEMPORARY, units=0)


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the full URL followed by each POST param name+value, sorted."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def signature_ok(auth_token: str, url: str, params: Mapping[str, str], header: str | None) -> bool:
    return parsing.secret_equal(signature(auth_token, url, params), header)


# Twilio MessageStatus -> outbox status.
STATUS = {"sent": "sent", "delivered": "delivered", "read": "read", "undelivered": "failed", "failed": "failed"}
