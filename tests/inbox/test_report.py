"""The channel-share report over a generated year of dialogs reproduces the source's figures (PRODUCT.md 7):
within a year Telegram 8 -> 16 %, VK 11 -> 27 %, WhatsApp 34 -> 27 %, Instagram 47 -> 30 % of messages, the
monthly total x2.26; through the API, `retento inbox report` and `retento report inbox` (beside the other domains'
reports)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from retento.cli import app as cli
from retento.core.config import get_settings
from retento.core.db.transactions import transaction
from retento.inbox.models import Dialog, Message
from tests import factories as f

START = {"telegram": 8, "vk": 11, "whatsapp": 34, "instagram": 47}
END = {"telegram": 16, "vk": 27, "whatsapp": 27, "instagram": 30}
FIRST_MONTH_TOTAL = 500


def generate_year(app) -> None:
    """Twelve months from 2025-01; the total grows linearly to x2.26 and each channel's share linearly from its
    start to its end; one dialog per customer per channel, a few messages each."""
    now = app.clock.now()
    with transaction(app.sessions) as s:
        dialog_rows, message_rows, peer = [], [], 0
        for m in range(12):
            month = datetime(2025 + (m // 12), m % 12 + 1, 1, tzinfo=timezone.utc)
            total = round(FIRST_MONTH_TOTAL * (1 + 1.26 * m / 11))
            for ch in START:
                share = (START[ch] + (END[ch] - START[ch]) * m / 11) / 100
                n = round(total * share)
                for i in range(0, n, 5):  # a dialog every five messages
                    peer += 1
                    dialog_rows.append({"id": peer, "site_id": 1, "customer_id": 1, "channel": ch, "account": "",
                                        "peer": str(peer), "state": "closed", "tags": [], "unread": 0,
                                        "last_message_at": month, "created_at": month + timedelta(hours=i),
                                        "updated_at": now})
                    for k in range(min(5, n - i)):
                        message_rows.append({"site_id": 1, "dialog_id": peer, "direction": "in", "kind": "text",
                                             "provider_id": f"{peer}:{k}", "text": "?", "created_at": now,
                                             "sent_at": month + timedelta(days=(i + k) % 27, minutes=k)})
        s.execute(insert(Dialog), dialog_rows)
        s.execute(insert(Message), message_rows)


@pytest.fixture
def year(iapp):
    f.customer(iapp, first_name="Many")
    generate_year(iapp)
    return iapp


def test_report_reproduces_the_channel_shares_and_growth(year, api):
    r = api.get("/api/v1/inbox/report", params={"site": "shop"})
    assert r.status_code == 200, r.text
    data = r.json()
    first, last = data["months"][0], data["months"][-1]
    assert (first["month"], last["month"], len(data["months"])) == ("2025-01", "2025-12", 12)
    assert {ch: round(v["share"] * 100) for ch, v in first["channels"].items()} == START
    assert {ch: round(v["share"] * 100) for ch, v in last["channels"].items()} == END
    assert round(data["growth"], 2) == 2.26
    assert first["dialogs"] == sum(v["dialogs"] for v in first["channels"].values()) > 0
    r = api.get("/api/v1/inbox/report", params={"from": "2025-06-01T00:00:00Z", "to": "2025-07-01T00:00:00Z"})
    assert [m["month"] for m in r.json()["months"]] == ["2025-06"]


def test_retento_inbox_report(year, db_url, monkeypatch):
    monkeypatch.setenv("RETENTO_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(cli, ["inbox", "report", "--format", "json"])
        assert r.exit_code == 0, r.output
        assert round(json.loads(r.stdout)["growth"], 2) == 2.26
        r = CliRunner().invoke(cli, ["inbox", "report", "--site", "shop"])
        assert r.exit_code == 0 and "2025-12" in r.output and "x2.26" in r.output, r.output
        r = CliRunner().invoke(cli, ["report", "inbox", "--site", "shop", "--format", "json"])
        assert r.exit_code == 0, r.output
        data = json.loads(r.stdout)
        assert {ch: round(v["share"] * 100) for ch, v in data["months"][0]["channels"].items()} == START
        assert {ch: round(v["share"] * 100) for ch, v in data["months"][-1]["channels"].items()} == END
        assert round(data["growth"], 2) == 2.26
        r = CliRunner().invoke(cli, ["report", "inbox", "--format", "csv"])
        assert r.exit_code == 0 and r.stdout.splitlines()[0].startswith("month,messages"), r.output
    finally:
        get_settings.cache_clear()
