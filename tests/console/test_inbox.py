"""The operators' inbox in the console over HTTP (SQLite and PostgreSQL): customers' messages posted to the real
provider webhooks show in the list with unread counts; an operator answers (the reply reaches the local provider
server through the outbox), quick replies, notes, assignment, state and tags go through the inbox service; bad
input names the field; a viewer reads only; an operator of one site sees only its dialogs; the channel chart; a
Russian-speaking operator gets the pages in Russian."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from retento.api import create_app
from retento.core.db.transactions import transaction
from retento.inbox import queries, service as inbox
from tests import factories as f
from tests.console.conftest import add_user, sign_in
from tests.inbox import helpers as h, payloads as pl
from tests.inbox.conftest import iapp, key, web  # noqa: F401 - fixtures
from tests.inbox.test_report import generate_year
from tests.messaging import helpers as mh
from tests.messaging.conftest import http_providers, smtp_server  # noqa: F401 - fixtures


@pytest.fixture
def people(iapp) -> dict[str, int]:  # noqa: F811
    return {role: add_user(iapp, f"{role}@example.com", role) for role in ("admin", "operator", "viewer")} | {
        "olga": add_user(iapp, "olga@example.com", "operator")}


@pytest.fixture
def console(iapp, people) -> Iterator[TestClient]:  # noqa: F811
    with TestClient(create_app(iapp), follow_redirects=False) as c:
        yield c


def only_dialog(app) -> int:  # noqa: ANN001
    with transaction(app.sessions) as s:
        (d,) = queries.list_dialogs(s, site_ids=None, state=None, channel=None, assignee_id=None,
                                      unassigned=False, customer_id=None, after=None, limit=5)
        return d.id


def keep(token: str, **extra: str) -> dict[str, str]:
    return {"csrf_token": token, "state": "open", "channel": "", "who": "", **extra}


def key_of(html: str) -> str:
    found = re.search(r'name="key" value="([^"]+)"', html)
    assert found, "no reply key on the page"
    return found.group(1)


def test_an_operator_answers_assigns_notes_tags_and_closes(console, iapp, web, people, http_providers):  # noqa: F811
    token = sign_in(console, "operator@example.com")
    assert h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "Где мой заказ?"))).status_code == 200
    h.telegram(web, pl.tg_update(2, message=pl.tg_message(11, "Жду ответа", reply_to_message=pl.tg_message(10))))
    did = only_dialog(iapp)
    listing = console.get("/inbox").text
    assert "Mario Bros" in listing and f'href="/inbox?state=open&amp;dialog={did}"' in listing
    assert re.search(r'Telegram</a>\s*<span class="muted">1</span> <span class="badge">2<', listing), "unread"
    page = console.get(f"/inbox?dialog={did}").text
    assert "Где мой заказ?" in page and "Жду ответа" in page and 'class="quote"' in page
    assert f'hx-post="/inbox/dialogs/{did}/read"' in page and 'data-live="/inbox/stream"' in page
    assert "5551234" in page  # the customer's card: their Telegram id

    answer = console.post(f"/inbox/dialogs/{did}/reply", data=keep(token, text="Уже в пути!", key=key_of(page)))
    assert answer.status_code == 303 and answer.headers["location"] == f"/inbox?state=open&dialog={did}&saved=1"
    again = console.post(f"/inbox/dialogs/{did}/reply", data=keep(token, text="Уже в пути!", key=key_of(page)))
    assert again.status_code == 303  # the same key: the first reply, not a second one
    h.drain(iapp)
    (sent,) = http_providers.sent("telegram")
    assert sent["chat_id"] == "5551234" and sent["body"]["text"] == "Уже в пути!"
    page = console.get(f"/inbox?dialog={did}&state=waiting").text
    assert re.search(r'class="msg out".*?operator@example.com.*?<span class="status">Sent</span>', page, re.S)

    assert console.post(f"/inbox/dialogs/{did}/note", data=keep(token, text="Звонил в доставку",
                                                                key="n1")).status_code == 303
    assert console.post(f"/inbox/dialogs/{did}/assign",
                        data=keep(token, assignee_id=str(people["olga"]))).status_code == 303
    assert console.post(f"/inbox/dialogs/{did}/tags", data=keep(token, value="delivery, urgent")).status_code == 303
    assert console.post(f"/inbox/dialogs/{did}/read", data={"csrf_token": token}).status_code == 204
    with transaction(iapp.sessions) as s:
        d = inbox.get_dialog(s, did)
        assert (d.assignee_id, d.tags, d.unread, d.state) == (people["olga"], ["delivery", "urgent"], 0, "waiting")
    page = console.get(f"/inbox?dialog={did}&state=waiting").text
    assert 'class="msg note"' in page and "Звонил в доставку" in page
    assert re.search(r'id="dialog-assignee"><span translate="no">olga@example.com</span>', page)
    assert console.post(f"/inbox/dialogs/{did}/state", data=keep(token, to="closed")).status_code == 303
    closed = console.get("/inbox?state=closed").text
    assert "Mario Bros" in closed and "Mario Bros" not in console.get("/inbox?state=open").text
    assert "Mario Bros" not in console.get("/inbox?state=closed&who=me").text  # Olga's, not this operator's


def test_bad_input_names_the_field_and_whatsapp_needs_a_quick_reply(console, iapp, web, people,  # noqa: F811
                                                                    http_providers):  # noqa: F811
    token = sign_in(console, "operator@example.com")
    h.whatsapp(web, pl.wa_inbound([pl.wa_text("wamid.in1", "Здравствуйте")]))
    did = only_dialog(iapp)
    empty = console.post(f"/inbox/dialogs/{did}/reply", data=keep(token, text="  ", key="k1"))
    assert empty.status_code == 400 and "text" in empty.text and "Please correct the input." in empty.text
    assert console.post(f"/inbox/dialogs/{did}/assign", data=keep(token, assignee_id=str(people["viewer"]))
                        ).status_code == 400
    assert console.post(f"/inbox/dialogs/{did}/state", data=keep(token, to="gone")).status_code == 400
    assert console.post("/inbox/dialogs/999999/note", data=keep(token, text="x", key="k2")).status_code == 404
    iapp.clock.advance(timedelta(hours=24, seconds=1))
    console.cookies.clear()
    token = sign_in(console, "operator@example.com")  # a day later: a new session
    tpl = mh.template(iapp, "order_update", "whatsapp", body="Ваш заказ в пути", provider_template="order_update")
    page = console.get(f"/inbox?dialog={did}").text
    assert "more than 24 hours old" in page and f'<option value="{tpl}"' in page
    late = console.post(f"/inbox/dialogs/{did}/reply", data=keep(token, text="Вы тут?", key="k3"))
    assert late.status_code == 400 and "template_id" in late.text and "Вы тут?" in late.text  # the text kept
    quick = console.post(f"/inbox/dialogs/{did}/reply", data=keep(token, template_id=str(tpl), key="k4"))
    assert quick.status_code == 303
    h.drain(iapp)
    assert http_providers.sent("whatsapp")[-1]["body"]["template"]["name"] == "order_update"


def test_a_viewer_reads_and_changes_nothing(console, iapp, web, people):  # noqa: F811
    h.vk(web, pl.vk_new(501, "Привет"))
    did = only_dialog(iapp)
    token = sign_in(console, "viewer@example.com")
    page = console.get(f"/inbox?dialog={did}")
    assert page.status_code == 200 and "Привет" in page.text
    assert "/reply" not in page.text and "hx-post" not in page.text
    for path in ("reply", "note", "assign", "state", "tags", "read"):
        answer = console.post(f"/inbox/dialogs/{did}/{path}", data=keep(token, text="x", key="v", to="closed"))
        assert answer.status_code == 403, path
    with TestClient(create_app(iapp), headers={"X-API-Key": key(iapp)}) as api:
        assert [m["text"] for m in h.messages(api, did)] == ["Привет"]


def test_an_operator_of_one_site_sees_only_its_dialogs(console, iapp, web):  # noqa: F811
    other = f.site(iapp, "south", currency="EUR")
    h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "Со своего сайта")))
    did = only_dialog(iapp)
    with transaction(iapp.sessions) as s:
        d = inbox.get_dialog(s, did)
        d.site_id = other  # the dialog belongs to the other shop
    add_user(iapp, "north@example.com", "operator", site_ids=[1])
    token = sign_in(console, "north@example.com")
    assert "Со своего сайта" not in console.get("/inbox").text
    assert console.get(f"/inbox?dialog={did}").status_code == 404
    assert console.get(f"/inbox/dialogs/{did}/messages").status_code == 404
    assert console.post(f"/inbox/dialogs/{did}/note", data=keep(token, text="x", key="s1")).status_code == 404


def test_the_stream_needs_a_session(console):
    assert console.get("/inbox/stream").status_code == 303


def test_channel_shares_over_months(console, iapp):  # noqa: F811
    generate_year(iapp)
    sign_in(console, "viewer@example.com")
    page = console.get("/inbox/report", params={"from": "2025-01", "to": "2025-12"})
    assert page.status_code == 200
    chart = json.loads(re.search(r'<script type="application/json" id="share-data">(.*?)</script>', page.text,
                                 re.S).group(1))
    shares = {s["name"]: s["data"] for s in chart["series"] if s["type"] == "bar"}
    assert {k: (round(v[0]), round(v[-1])) for k, v in shares.items()} == {
        "Telegram": (8, 16), "WhatsApp": (34, 27), "VK": (11, 27), "Instagram": (47, 30)}
    assert "×2.26" in page.text and len(chart["xAxis"]["data"]) == 12
    assert console.get("/inbox/report", params={"from": "2025-13"}).status_code == 400
    assert "No customer messages" in console.get("/inbox/report", params={"from": "2027-01"}).text


def test_the_inbox_and_its_report_in_russian(console, iapp, web):  # noqa: F811
    add_user(iapp, "ru@example.com", "operator", locale="ru")
    sign_in(console, "ru@example.com")
    empty = console.get("/inbox").text
    assert '<html lang="ru">' in empty and "Входящие" in empty and "Здесь диалогов нет." in empty
    h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "Где мой заказ?")))
    page = console.get(f"/inbox?dialog={only_dialog(iapp)}").text
    assert "Где мой заказ?" in page and "Ответ клиенту" in page and "Отправить" in page
    assert "Reply to the customer" not in page and "No dialogs here." not in page
    report = console.get("/inbox/report").text
    assert "Каналы по месяцам" in report and "Channels over months" not in report
