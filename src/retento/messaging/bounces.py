"""Late bounces: delivery status notifications (DSN, RFC 3464) that come back after the relay accepted an email.

Every email leaves with a VERP return path naming its message, `local+bounce-<token>@domain`; the token is
signed (tracking.token), so a report can only touch the message it was generated for. A report is a
`multipart/report; report-type=delivery-status` email whose `message/delivery-status` part says, per recipient,
`Action` (failed, delayed, delivered, relayed, expanded), `Status` (5.1.1, ...) and `Diagnostic-Code`.

What happens: `failed` marks the message failed ("bounced: 5.1.1 ...", which wakes its cascade to go on to the
next channel) and, for a permanent failure (5.x.x), withdraws the customer's email consent with source
`hard_bounce`, so no later campaign mails a dead address; `delivered` records delivery; `delayed` changes
nothing (the relay keeps trying). Replaying a report changes nothing more.

Intake: `POST /api/v1/messaging/bounces` with the raw report (an MTA pipe or a provider's inbound route), or
`retento bounces --maildir DIR` over the mailbox the bounce address delivers to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import Message as MimeMessage

from sqlalchemy.orm import Session

from retento.core.errors import DomainError, NotFound
from retento.messaging import service, statuses, tracking
from retento.messaging.models import Message

VERP = re.compile(rb"\+bounce-(\d+\.[A-Za-z0-9_-]{16})@")


@dataclass(frozen=True)
class Bounce:
    message_id: int
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str  # enhanced status code, e.g. 5.1.1 ("" if the report gives none)
    diagnostic: str

    @property
    def permanent(self) -> bool:
        return self.action == "failed" and self.status.startswith("5.")


def parse(raw: bytes, *, secret: str) -> Bounce:
    """The report's verdict for the message its signed VERP address names; DomainError (field `body`) if the
    bytes are not a delivery status report about one of our messages."""
    message_id = next((mid for m in VERP.finditer(raw)
                       if (mid := tracking.message_id(secret, m.group(1).decode())) is not None), None)
    if message_id is None:
        raise DomainError.one("body", "no bounce address of one of our messages (local+bounce-<token>@...)")
    report = message_from_bytes(raw, policy=policy.compat32)
    for part in report.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in _blocks(part):
                action = (block.get("Action") or "").strip().lower()
                if action:
                    status = (block.get("Status") or "").strip().split(" ")[0]
                    diagnostic = " ".join((block.get("Diagnostic-Code") or "").split())
                    return Bounce(message_id, action, status, diagnostic.partition(";")[2].strip() or diagnostic)
    raise DomainError.one("body", "not a delivery status report (no message/delivery-status part with an Action)")


def _blocks(part: MimeMessage) -> list[MimeMessage]:
    """The per-message and per-recipient field blocks of a message/delivery-status part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload
    text = payload if isinstance(payload, str) else ""
    return [message_from_bytes(b.strip().encode(), policy=policy.compat32) for b in re.split(r"\r?\n\r?\n", text)
            if b.strip()]


def record(session: Session, *, raw: bytes, secret: str, now: datetime) -> Bounce:
    """Apply a report (see the module's docstring); returns what it said."""
    bounce = parse(raw, secret=secret)
    msg = session.get(Message, bounce.message_id)  # another site's message, for a site-limited key: not found
    if msg is None:
        raise NotFound("body", f"message {bounce.message_id} not found")
    if msg.channel != "email":
        raise DomainError.one("body", f"message {bounce.message_id} is not an email")
    if bounce.action == "failed":
        reason = " ".join(x for x in ("bounced:", bounce.status, bounce.diagnostic) if x)
        statuses.record(session, updates=[statuses.Update(msg.id, "failed", now, reason)], now=now)
        if bounce.permanent:
            service.unsubscribe(session, message_id=msg.id, now=now, source="hard_bounce")
    elif bounce.action == "delivered":
        statuses.record(session, updates=[statuses.Update(msg.id, "delivered", now)], now=now)
    return bounce
