"""What a worker logs while it sends (caplog): a summary per batch and channel at INFO, each message (and each
HTTP request) at DEBUG only, so a 40,000-message WhatsApp campaign is not 40,000 INFO lines."""

from __future__ import annotations

import logging

import pytest

from retento.core import logs
from tests.messaging import helpers as h


@pytest.fixture
def process_logging():
    """`logs.configure` as the worker process calls it, undone afterwards."""
    root, httpx_log = logging.getLogger(), logging.getLogger("httpx")
    level, filters = root.level, list(httpx_log.filters)
    logs.configure("INFO")
    yield
    root.setLevel(level)
    httpx_log.filters[:] = filters


def _campaign(app, phones: list[str]) -> None:
    cid = h.cascade(app, [("whatsapp", "t", 1)])
    for phone in phones:
        h.start(app, cid, h.customer(app, channels=("whatsapp",), external_id=phone, phone=phone))


def test_a_whatsapp_batch_is_one_info_line_and_each_message_a_debug_line(mapp, http_providers, caplog,
                                                                        process_logging):
    h.setup_site(mapp)
    h.template(mapp, "t", "whatsapp")
    _campaign(mapp, [f"+7916{n:07d}" for n in range(1, 21)] + ["+79161000000", "+79161429429"])
    caplog.set_level(logging.INFO)
    h.drain(mapp)
    assert len(http_providers.sent("whatsapp")) == 20
    info = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.getMessage() for r in info if "batch" in r.getMessage()] == [
        "whatsapp batch: 22 messages in 0.0 s: 20 sent, 1 failed, 1 to retry, 0 uncertain, 0 taken over"]
    assert not [r for r in info if r.name.startswith("httpx") or "HTTP Request" in r.getMessage()]
    assert len(info) <= 3  # the summary, not a line per message

    caplog.clear()
    caplog.set_level(logging.DEBUG)
    _campaign(mapp, ["+79162000001", "+79162000002", "+79162000000"])
    h.drain(mapp)
    per_message = [r.getMessage() for r in caplog.records
                   if r.name == "retento.messaging.outbox" and r.levelno == logging.DEBUG]
    assert len(per_message) == 3 and sum(m.startswith("whatsapp message ") and " sent (wamid." in m
                                         for m in per_message) == 2
    assert any("failed: whatsapp 131026" in m for m in per_message)
    requests = [r for r in caplog.records if r.name == "httpx" and "HTTP Request" in r.getMessage()]
    assert len(requests) == 3 and {r.levelname for r in requests} == {"DEBUG"}
