"""Late bounces: a DSN (RFC 3464) to the VERP return path of a real email fails that message, moves its cascade
on, withdraws email consent on a permanent failure; forged or foreign reports change nothing."""

import mailbox
import re

from typer.testing import CliRunner

from retento.core.db.transactions import transaction
from retento.customers.models import Consent
from tests.messaging import helpers as h


def dsn(verp: str, *, action: str = "failed", status: str = "5.1.1", rcpt: str = "anna@example.com") -> bytes:
    """A report as Postfix writes it: human part, delivery-status, the returned headers."""
    return (
        f"Return-Path: <>\r\nDelivered-To: {verp}\r\nFrom: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        f"To: {verp}\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n\r\n'
        "--B1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n"
        "--B1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\nArrival-Date: Mon, 2 Mar 2026 09:00:01 +0000\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nOriginal-Recipient: rfc822;{rcpt}\r\nAction: {action}\r\n"
        f"Status: {status}\r\nRemote-MTA: dns; mail.example.com\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{rcpt}>: Recipient address\r\n    rejected: User unknown\r\n\r\n"
        "--B1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Return-Path: <{verp}>\r\nFrom: news@shop.example\r\nTo: {rcpt}\r\nSubject: =?utf-8?b?0JHQvtC90YPRgdGL?=\r\n"
        "\r\n--B1--\r\n"
    ).encode()


def _send_email(app, smtp_server):
    h.setup_site(app)
    h.template(app, "bonus", "email")
    h.template(app, "bonus", "whatsapp", body="Анна, у вас бонусы")
    cid = h.cascade(app, [("email", "bonus", 24), ("whatsapp", "bonus", 24)])
    anna = h.customer(app, channels=("email", "whatsapp"))
    h.start(app, cid, anna)
    h.drain(app)
    (mail,) = smtp_server.messages
    return anna, mail["from"]


def _email_consent(app, customer_id):
    with transaction(app.sessions) as s:
        c = s.get(Consent, (customer_id, "email"))
        return c.granted, c.source


def test_hard_bounce_fails_the_email_moves_the_cascade_on_and_withdraws_consent(mapp, client, smtp_server):
    anna, verp = _send_email(mapp, smtp_server)
    (email,) = h.messages(mapp)
    assert email.status == "sent"

    r = client.post("/api/v1/messaging/bounces", content=dsn(verp), headers={"content-type": "message/rfc822"})
    assert r.status_code == 200, r.text
    assert r.json() == {"message_id": email.id, "action": "failed", "status": "5.1.1",
                        "diagnostic": "550 5.1.1 <anna@example.com>: Recipient address rejected: User unknown"}
    (email,) = h.messages(mapp)
    assert email.status == "failed" and email.reason.startswith("bounced: 5.1.1 550 5.1.1")
    assert _email_consent(mapp, anna) == (False, "hard_bounce")
    h.drain(mapp)  # the failed step wakes the run: WhatsApp goes now, not after the 24 h window
    assert [m.channel for m in h.messages(mapp)] == ["email", "whatsapp"]

    again = client.post("/api/v1/messaging/bounces", content=dsn(verp))
    assert again.status_code == 200  # a replayed report changes nothing more
    h.drain(mapp)
    assert [(m.channel, m.status) for m in h.messages(mapp)] == [("email", "failed"), ("whatsapp", "sent")]


def test_forged_foreign_and_temporary_reports_change_nothing(mapp, client, smtp_server):
    anna, verp = _send_email(mapp, smtp_server)
    mid, sig = re.search(r"\+bounce-(\d+)\.([^@]+)@", verp).groups()
    forged = verp.replace(f"{mid}.{sig}", f"{int(mid) + 1}.{sig}")
    r = client.post("/api/v1/messaging/bounces", content=dsn(forged))
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "body", r.text
    r = client.post("/api/v1/messaging/bounces", content=b"Subject: hello\r\n\r\nnot a report, " + verp.encode())
    assert r.status_code == 400 and "delivery status" in r.json()["errors"][0]["reason"]
    r = client.post("/api/v1/messaging/bounces", content=dsn(verp, action="delayed", status="4.4.7"))
    assert r.status_code == 200 and r.json()["action"] == "delayed"
    (email,) = h.messages(mapp)
    assert email.status == "sent" and _email_consent(mapp, anna) == (True, "checkout")


def test_bounces_are_read_from_a_maildir_once(mapp, smtp_server, tmp_path, monkeypatch):
    anna, verp = _send_email(mapp, smtp_server)
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    box.add(dsn(verp))
    box.add(b"Subject: out of office\r\n\r\nI am away.")  # not a report: skipped, marked seen
    for k, v in {"RETENTO_DATABASE_URL": mapp.settings.database_url, "RETENTO_MESSAGING_SECRET": "s3cret"}.items():
        monkeypatch.setenv(k, v)
    from retento.cli import app as cli
    from retento.core.config import get_settings

    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(cli, ["bounces", "--maildir", str(tmp_path / "bounces")])
        assert r.exit_code == 0, r.output
        assert "failed: 1" in r.output and "not ours: 1" in r.output
        (email,) = h.messages(mapp)
        assert email.status == "failed" and _email_consent(mapp, anna) == (False, "hard_bounce")
        r = CliRunner().invoke(cli, ["bounces", "--maildir", str(tmp_path / "bounces")])
        assert "failed: 0" in r.output  # both were moved to cur/ and marked seen
        assert all(box.get_message(k).get_subdir() == "cur" for k in box.iterkeys())
        bad = CliRunner().invoke(cli, ["bounces", "--maildir", str(tmp_path / "nope")])
        assert bad.exit_code == 2 and "--maildir" in bad.output
    finally:
        get_settings.cache_clear()
