"""The operators' live stream (Server-Sent Events) over a real server: a customer's message posted to the
provider webhook arrives on an open stream without reloading; a reconnect with Last-Event-ID misses nothing;
a key limited to one site hears only that site."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

from retento.inbox.config import InboxSettings
from retento.inbox.wiring import configure
from tests import factories as f
from tests.api.conftest import Server
from tests.inbox import payloads as pl
from tests.inbox.conftest import TG_SECRET, key

TG = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"}


def events(lines: Iterator[str], n: int) -> list[dict]:
    """The next n events of a stream (ids, comments and blank lines skipped)."""
    out: list[dict] = []
    kind = None
    for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            out.append({"event": kind, **json.loads(line.removeprefix("data: "))})
            if len(out) == n:
                return out
    raise AssertionError("the stream ended")


def test_new_message_reaches_an_open_stream_and_a_reconnect_resumes(iapp):
    with Server(iapp) as srv, httpx.Client(base_url=srv.url, timeout=15) as web, \
            httpx.Client(base_url=srv.url, headers={"X-API-Key": key(iapp)}, timeout=15) as api:
        with api.stream("GET", "/api/v1/inbox/stream") as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            assert web.post("/api/v1/messaging/webhooks/telegram", headers=TG,
                            content=pl.tg_update(1, message=pl.tg_message(10, "Есть кто?"))).status_code == 200
            (ev,) = events(lines, 1)
            assert ev["event"] == "inbox_message" and ev["type"] == "inbox_message"
            p = ev["payload"]
            assert (p["direction"], p["channel"], p["state"], p["unread"]) == ("in", "telegram", "open", 1)
            dialog_id, seen = p["dialog_id"], ev["id"]
        # while nobody listens: an edit and a tag
        web.post("/api/v1/messaging/webhooks/telegram", headers=TG,
                 content=pl.tg_update(2, edited_message=pl.tg_message(10, "Есть кто-нибудь?", edit_date=pl.T0 + 5)))
        assert api.patch(f"/api/v1/inbox/dialogs/{dialog_id}", json={"tags": ["urgent"]}).status_code == 200
        with api.stream("GET", "/api/v1/inbox/stream", headers={"Last-Event-ID": str(seen)}) as r:
            edited, tagged = events(r.iter_lines(), 2)
        assert (edited["event"], edited["payload"]["change"]) == ("inbox_message_changed", "edited")
        assert (tagged["event"], tagged["payload"]["tags"], tagged["payload"]["change"]) == (
            "inbox_dialog_changed", ["urgent"], "tags")
        # a polling client: the whole stream since an id, ended after max_seconds
        r = api.get("/api/v1/inbox/stream", params={"after": 0, "max_seconds": 0.3})
        assert [line for line in r.text.splitlines() if line.startswith("event: ")] == [
            "event: inbox_message", "event: inbox_message_changed", "event: inbox_dialog_changed"]


def test_a_site_limited_key_hears_only_its_site(iapp):
    f.site(iapp, "outlet", timezone="Europe/Moscow")
    configure(iapp, InboxSettings(inbox_site="shop", inbox_accounts={"vk:654321": "outlet"}))
    outlet_only = key(iapp, "inbox:read", sites=["outlet"])
    with Server(iapp) as srv, httpx.Client(base_url=srv.url, timeout=15) as web, \
            httpx.Client(base_url=srv.url, headers={"X-API-Key": outlet_only}, timeout=15) as api:
        web.post("/api/v1/messaging/webhooks/telegram", headers=TG,
                 content=pl.tg_update(1, message=pl.tg_message(10, "в магазин")))
        vk = json.loads(pl.vk_new(7, "в аутлет"))
        vk["group_id"] = 654321
        assert web.post("/api/v1/messaging/webhooks/vk", content=json.dumps(vk)).status_code == 200
        with api.stream("GET", "/api/v1/inbox/stream", params={"after": 0}) as r:
            (ev,) = events(r.iter_lines(), 1)
        assert ev["payload"]["channel"] == "vk" and ev["site_id"] != 1
        assert api.get("/api/v1/inbox/stream", params={"site": "shop"}).status_code == 403
