"""Email over SMTP: multipart text + HTML, List-Unsubscribe with one-click (RFC 8058), VERP bounce address.

One SMTP connection carries a whole batch (a fresh connection per message costs a TCP and EHLO round trip
each). A 5xx reply to RCPT/DATA is a hard bounce (permanent failure); 4xx is temporary and retried.
Bounces that come back later as DSN emails are recorded through the bounce address (`record_bounce`).
"""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from retento.messaging.channels import Outgoing, Result


class SmtpEmail:
    name = "email"
    reports_delivered = False  # acceptance by the relay is not delivery; bounces report failure
    reports_read = True  # through the open pixel
    idempotent = False

    def __init__(self, *, host: str, port: int = 25, user: str | None = None, password: str | None = None,
                 starttls: bool = False, timeout: float = 30.0, sender: str, unsubscribe_mailto: str | None = None):
        self.host, self.port, self.user, self.password = host, port, user, password
        self.starttls, self.timeout, self.sender, self.mailto = starttls, timeout, sender, unsubscribe_mailto
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._smtp is None:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            smtp.ehlo()
            if self.starttls:
                smtp.starttls()
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self.password or "")
            self._smtp = smtp
        return self._smtp

    def build(self, msg: Outgoing) -> EmailMessage:
        m = EmailMessage()
        m["From"] = self.sender
        m["To"] = msg.to
        m["Subject"] = msg.subject or ""
        m["Date"] = formatdate(usegmt=True)
        m["Message-ID"] = make_msgid(idstring=f"r{msg.id}", domain=self.sender.rpartition("@")[2] or None)
        m["X-Retento-Message"] = str(msg.id)
        if msg.unsubscribe_url:
            targets = [f"<{msg.unsubscribe_url}>"]
            if self.mailto:
                targets.append(f"<mailto:{self.mailto}?subject=unsubscribe-{msg.id}>")
            m["List-Unsubscribe"] = ", ".join(targets)
            m["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        m.set_content(msg.text)
        if msg.html:
            m.add_alternative(msg.html, subtype="html")
        return m

    def send(self, batch: Sequence[Outgoing]) -> list[Result]:
        out: list[Result] = []
        for msg in batch:
            try:
                smtp = self._connect()
                refused = smtp.send_message(self.build(msg), from_addr=msg.bounce_address or self.sender,
                                            to_addrs=[msg.to])
                if refused:
                    code, text = next(iter(refused.values()))
                    out.append(_refused(msg.id, code, text))
                else:
                    out.append(Result(msg.id, True, provider_id=f"smtp-{msg.id}"))
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                out.append(_refused(msg.id, code, text))
            except smtplib.SMTPResponseException as exc:
                out.append(_refused(msg.id, exc.smtp_code, exc.smtp_error))
                self._reset()
            except (smtplib.SMTPException, OSError) as exc:
                out.append(Result(msg.id, False, error=f"smtp: {exc!r}"[:500], temporary=True))
                self.close()
        return out

    def _reset(self) -> None:
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._smtp = None


def _refused(message_id: int, code: int, text: bytes | str) -> Result:
    reason = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    if 500 <= code < 600:
        return Result(message_id, False, error=f"bounced: {code} {reason}"[:500])
    return Result(message_id, False, error=f"deferred: {code} {reason}"[:500], temporary=True)
