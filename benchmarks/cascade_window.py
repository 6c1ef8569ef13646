"""`retento bench cascade`, part 3: emails/s with several workers, and the waiting window each email was granted.

A campaign of `emails` members starts on an ordered cascade email (window `wait`) -> WhatsApp. `workers`
worker processes send the emails over SMTP to a local server (aiosmtpd in its own process) on the real clock,
timed from the start to the last email recorded. Baseline: the same number of processes sending the same
number of messages of the same size with a minimal `smtplib` client (one connection each), i.e. the local
server's own maximum.
Then the cascade job runs on a frozen clock stepped by `tick` from the campaign's start + window until every
run has moved on, as a worker's timer would see it. The window granted to a member is the time from their
email's `sent_at` to the moment their WhatsApp step was planned; the rule is send time + window, so every
member should get the window, the last email as much as the first (before issue 21 the window ran from the
campaign's start, so the last email got the window minus the time it waited to be sent).
"""

from __future__ import annotations

import smtplib
import socket
import statistics
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from benchmarks.cascade import SPAWN, _setup, _timed
from benchmarks.targets import Target
from retento.bootstrap import bootstrap
from retento.core.clock import FrozenClock, SystemClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.messaging import campaigns, outbox, planner, service
from retento.messaging.config import MessagingSettings
from retento.messaging.models import Message
from retento.messaging.schemas import CampaignIn, CascadeIn, PolicyIn
from retento.messaging.wiring import configure
from retento.migrate import migrate


@dataclass
class WindowResult:
    backend: str
    emails: int
    workers: int
    send_s: float
    client_s: float
    wait_s: float
    tick_s: float
    granted: list[float]  # seconds from each email's send to its next step, sorted
    delays: list[float]  # seconds from the campaign's start to each email's send, sorted

    @property
    def rate(self) -> float:
        return self.emails / self.send_s

    @property
    def ratio(self) -> float:
        return self.send_s / self.client_s

    def granted_at(self, q: float) -> float:
        return self.granted[min(len(self.granted) - 1, int(q * len(self.granted)))]

    @property
    def old_rule_min(self) -> float:
        """What the last email would have got with the window counted from the campaign's start."""
        return self.wait_s - self.delays[-1]


def _serve(port_queue: Any) -> None:
    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            return "250 2.0.0 Ok: queued"

    with socket.socket() as probe:  # a free port (the controller checks it is up by connecting to it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    port_queue.put(port)
    threading.Event().wait()


def _settings(port: int) -> MessagingSettings:
    return MessagingSettings(smtp_host="127.0.0.1", smtp_port=port, email_from="news@bench.example",
                             messaging_secret="bench", public_url="http://127.0.0.1:8000", send_batch=500)


def _worker(url: str, port: int, barrier: Any) -> None:
    app = bootstrap(Settings(database_url=url), clock=SystemClock())
    messaging = configure(app, _settings(port))
    barrier.wait()
    while outbox.send_due(app.sessions, messaging, app.clock):
        pass
    app.close()


def _client(port: int, count: int, size: int, barrier: Any) -> None:
    body = ("From: news@bench.example\r\nTo: c0@example.com\r\nSubject: =?utf-8?b?0JHQvtC90YPRgdGL?=\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n").encode() + b"x" * size
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        barrier.wait()
        for i in range(count):
            smtp.sendmail("news+bounce-x@bench.example", [f"c{i}@example.com"], body)


def run(target: Target, *, emails: int, workers: int, wait: timedelta, tick: timedelta,
        progress: Any) -> WindowResult:
    start = datetime.now(timezone.utc).replace(microsecond=0)
    clock = FrozenClock(start)
    app = bootstrap(Settings(database_url=target.url), clock=clock)
    migrate(app)
    _setup(app, emails, ("email", "whatsapp"), progress)
    with transaction(app.sessions) as s:  # the window is what is measured: no quiet hours, no cap
        service.set_policy(s, site="bench", data=PolicyIn(quiet_start=None, quiet_end=None, cap_count=None),
                           now=start)
        steps = [{"channel": ch, "template": "t", "wait_hours": wait.total_seconds() / 3600}
                 for ch in ("email", "whatsapp")]
        cascade = service.create_cascade(s, data=CascadeIn(site="bench", name="w", steps=steps), now=start)
        service.create_campaign(s, data=CampaignIn(cascade_id=cascade.id, name="w", everyone=True), now=start)
    with transaction(app.sessions) as s:
        campaigns.start_due_campaigns(s, now=start)
    app.close()

    ports: Any = SPAWN.Queue()
    server = SPAWN.Process(target=_serve, args=(ports,), daemon=True)
    server.start()
    port = ports.get(timeout=30)
    try:
        task = progress.add_task(f"emails over SMTP ({emails:,}, {workers} workers)", total=None)
        send_s = _timed(_worker, [(target.url, port)] * workers)
        progress.update(task, total=1, completed=1)
        app = bootstrap(Settings(database_url=target.url), clock=clock)
        with transaction(app.sessions) as s:
            sent = s.scalar(select(func.count()).where(Message.channel == "email", Message.status == "sent"))
        if sent != emails:
            raise RuntimeError(f"window bench: {sent} of {emails} emails were sent")
        share = [emails // workers + (1 if i < emails % workers else 0) for i in range(workers)]
        client_s = _timed(_client, [(port, k, 400) for k in share])
    finally:
        server.terminate()
        server.join()

    with transaction(app.sessions) as s:
        last = s.scalar(select(func.max(Message.sent_at)).where(Message.channel == "email"))
    task = progress.add_task("cascade timer ticks", total=int((last - start) / tick) + 2)
    clock.advance(start + wait - clock.now())
    while clock.now() <= last + wait + tick:
        while True:
            with transaction(app.sessions) as s:
                if not planner.advance_due(s, now=clock.now(), limit=app.messaging.settings.cascade_batch):
                    break
        clock.advance(tick)
        progress.advance(task)
    email, nxt = aliased(Message), aliased(Message)
    with transaction(app.sessions) as s:
        pairs = s.execute(select(email.sent_at, nxt.created_at).join(nxt, nxt.run_id == email.run_id).where(
            email.channel == "email", nxt.channel == "whatsapp")).all()
    app.close()
    if len(pairs) != emails:
        raise RuntimeError(f"window bench: {len(pairs)} of {emails} runs went on to WhatsApp")
    granted = sorted((planned - sent).total_seconds() for sent, planned in pairs)
    delays = sorted((sent - start).total_seconds() for sent, _ in pairs)
    return WindowResult(target.backend, emails, workers, send_s, client_s, wait.total_seconds(),
                        tick.total_seconds(), granted, delays)


def table(results: list[WindowResult], versions: dict[str, str]) -> list[str]:
    lines = ["| backend | emails | workers | sending s | emails/s | minimal SMTP client s | ratio | window s "
             "| tick s | granted min / p50 / p99 / max s | send delay max s | old rule: last email's window s |",
             "| --- |" + " ---: |" * 11]
    for r in results:
        lines.append(
            f"| {versions.get(r.backend, r.backend)} | {r.emails:,} | {r.workers} | {r.send_s:.1f} | {r.rate:,.0f} "
            f"| {r.client_s:.1f} | {r.ratio:.2f}x | {r.wait_s:,.0f} | {r.tick_s:g} | {r.granted[0]:,.1f} / "
            f"{statistics.median(r.granted):,.1f} / {r.granted_at(0.99):,.1f} / {r.granted[-1]:,.1f} "
            f"| {r.delays[-1]:,.1f} | {r.old_rule_min:,.1f} |")
    return lines

