"""The support pages over HTTP (SQLite and PostgreSQL), with the real e5 embedder: uploading tickets, documentation
and tasks (re-import updates in place; a bad file names the field and writes nothing; a long import is the worker's,
batch by batch, and any process shows its progress), the ticket page with the assist beside it (similar tickets without the ticket
itself, a suggestion with sources, matched tasks), documentation links for typed text, marks counted once in the
usage report, the evaluation report, and the assist beside an inbox dialog."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from retento.api import create_app
from retento.assist import imports, synthetic
from retento.assist.wiring import configure
from retento.bootstrap import bootstrap
from retento.console.pages import support_imports
from retento.core.db.transactions import transaction
from retento.inbox import queries
from tests.assist.conftest import SessionE5
from tests.console.conftest import World, add_user, sign_in
from tests.inbox import helpers as h, payloads as pl
from tests.inbox.conftest import iapp, web  # noqa: F401 - fixtures
from tests.messaging.conftest import http_providers, smtp_server  # noqa: F401 - fixtures

SET = synthetic.generate(per_topic=2, queries_per_topic=1, duplicates=0, shops_per_industry=1)
EN_DOC = next(d for d in SET.docs if d["path"].startswith("en/"))


@pytest.fixture(scope="session")
def e5_model() -> SessionE5:
    return SessionE5()


@pytest.fixture
def assisted(world: World, e5_model: SessionE5) -> World:
    configure(world.app, embedder=e5_model)
    return world


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def upload(client: TestClient, token: str, kind: str, files: list[tuple[str, bytes]], **form: str):  # noqa: ANN201
    return client.post("/support/imports", data={"csrf_token": token, "site": "north", "kind": kind, **form},
                       files=[("file", (name, body)) for name, body in files])


def import_set(client: TestClient, token: str) -> None:
    for kind, name, body, extra in (
            ("tickets", "tickets.jsonl", jsonl(SET.tickets), {}),
            ("tasks", "tasks.json", json.dumps(SET.tasks).encode(), {}),
            ("docs", "guide.md", EN_DOC["content"].encode(), {"base_url": synthetic.DOCS_URL, "folder": "en"})):
        answer = upload(client, token, kind, [(name, body)], **extra)
        assert answer.status_code == 303, answer.text
        assert "Done:" in client.get(answer.headers["location"]).text


def done_line(html: str) -> str:
    found = re.search(r"Done: [^<]*", html)
    assert found, html
    return found.group(0)


def test_imports_then_reimport_updates_in_place(client: TestClient, assisted: World) -> None:
    token = sign_in(client, "admin@example.com")
    import_set(client, token)
    page = client.get("/support/imports").text
    assert re.search(r"Shop north</th><td class=\"num\">40</td><td class=\"num\">10</td><td class=\"num\">10</td>",
                     page), page
    changed = [dict(t) for t in SET.tickets]
    changed[0]["answer"] = "A different answer."
    answer = upload(client, token, "tickets", [("tickets.jsonl", jsonl(changed))])
    assert done_line(client.get(answer.headers["location"]).text) == "Done: 0 created, 1 updated, 39 unchanged."
    ticket = client.get(f"/support/north/tickets/{changed[0]['external_id']}")
    assert ticket.status_code == 200 and "A different answer." in ticket.text
    assert "/support/north/tickets/custom-field-type-en-0" in client.get("/support?q=custom&answered=yes").text
    assert "/support/north/tickets/" not in client.get("/support?q=custom&answered=no").text


def test_a_bad_file_names_the_field_and_writes_nothing(client: TestClient, assisted: World) -> None:
    token = sign_in(client, "marketer@example.com")
    rows = [dict(t) for t in SET.tickets[:3]]
    rows[2]["body"] = ""
    answer = upload(client, token, "tickets", [("t.jsonl", jsonl(rows))])
    assert answer.status_code == 400 and "record 3: body" in answer.text
    assert upload(client, token, "tickets", [("t.jsonl", b"{not json")]).status_code == 400
    assert upload(client, token, "tickets", []).status_code == 400
    answer = upload(client, token, "docs", [("a.md", b"# A\n\ntext")], base_url="ftp://x")
    assert answer.status_code == 400 and "base_url" in answer.text
    assert upload(client, token, "everything", [("t.jsonl", jsonl(rows[:2]))]).status_code == 400
    assert "Shop north</th><td class=\"num\">0</td>" in client.get("/support/imports").text


def test_a_long_import_is_the_workers_batch_by_batch_and_every_process_shows_its_progress(
        client: TestClient, assisted: World, e5_model: SessionE5, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support_imports, "BATCH", 7)
    token = sign_in(client, "admin@example.com")
    answer = upload(client, token, "tickets", [("tickets.jsonl", jsonl(SET.tickets))])
    job = answer.headers["location"].split("job=")[1]
    part = client.get(f"/support/imports/jobs/{job}").text
    assert "0 / 40" in part and "Importing" in part and "every 1s" in part  # the worker's, not this request's
    app = assisted.app
    imports.run_now(app.sessions, int(job), e5_model, app.clock)  # one batch, then the worker is killed
    other = bootstrap(app.settings, clock=app.clock)  # another process over the same database
    configure(other, embedder=e5_model)
    try:
        with TestClient(create_app(other), follow_redirects=False) as second:
            sign_in(second, "admin@example.com")
            assert "7 / 40" in second.get(f"/support/imports/jobs/{job}").text
            assert other.worker.tick() >= 5  # its worker does the other five batches
            part = second.get(f"/support/imports/jobs/{job}").text
    finally:
        other.close()
    assert "40 / 40" in part and done_line(part) == "Done: 40 created, 0 updated, 0 unchanged."
    assert "every 1s" not in part  # finished: no more polling
    assert done_line(client.get(f"/support/imports/jobs/{job}").text) == "Done: 40 created, 0 updated, 0 unchanged."
    assert client.get("/support/imports/jobs/nope").status_code == 404
    assert client.get("/support/imports/jobs/999999").status_code == 404


def test_the_assist_beside_a_ticket_and_the_doc_links(client: TestClient, assisted: World) -> None:
    token = sign_in(client, "admin@example.com")
    import_set(client, token)
    asked = next(t for t in SET.tickets if t["external_id"] == "custom-field-type-en-0")
    page = client.get("/support/north/tickets/custom-field-type-en-0")
    assert page.status_code == 200 and 'hx-get="/support/assist?site=north&amp;ticket=custom-field-type-en-0"' in page.text
    part = client.get("/support/assist?site=north&ticket=custom-field-type-en-0").text
    similar = re.findall(r'/support/north/tickets/([\w-]+)" translate="no">', part.split('id="similar-title"')[1])
    assert similar and "custom-field-type-en-0" not in similar and similar[0].startswith("custom-field-type-")
    assert asked["answer"] in part  # the closest past answer quoted (its twin's: the same topic's answer)
    assert "Past ticket" in part and "the guard removed nothing" in part
    assert "DEV-101" in part.split('id="tasks-title"')[1]  # the custom fields task matched
    links = client.get("/support/links", params={"site": "north", "text": "how to change the type of a custom field"})
    assert links.status_code == 200 and "Custom field types" in links.text.split("</li>")[0]
    other = client.get("/support/links", params={"site": "north", "text": "the customer did not get the password reset"})
    assert "Custom field types" not in other.text.split("</li>")[0]
    assert "Type a reply" in client.get("/support/links?site=north&text=").text
    assert client.get("/support/links?site=nowhere&text=x").status_code == 404
    assert client.get("/support/north/tickets/missing").status_code == 404


def test_marks_count_once_in_the_usage_report_and_roles(client: TestClient, assisted: World) -> None:
    token = sign_in(client, "admin@example.com")
    import_set(client, token)
    client.cookies.clear()
    token = sign_in(client, "operator@example.com")
    part = client.get("/support/assist?site=north&ticket=custom-field-type-en-0").text
    key = re.search(r'name="key" value="([^"]+)"', part).group(1)
    form = {"csrf_token": token, "site": "north", "ref": "ticket:custom-field-type-en-0", "key": key,
            "sources": "order-return-en-1\nen/guide.md#order-return", "waited": "90"}
    for _ in range(2):  # the same key: one mark
        answer = client.post("/support/marks", data={**form, "action": "used"})
        assert answer.status_code == 200 and "Marked used." in answer.text
    assert client.post("/support/marks", data={**form, "action": "bogus"}).status_code == 400
    assert upload(client, token, "tickets", [("t.jsonl", jsonl(SET.tickets[:1]))]).status_code == 403
    report = client.get("/support/report?site=north").text
    assert 'id="usage-marks">1<' in report and 'id="usage-used">1<' in report and 'id="usage-share">100%' in report
    assert 'data-chart="usage-data"' in report
    client.cookies.clear()
    token = sign_in(client, "marketer@example.com")
    assert client.post("/support/marks", data={**form, "csrf_token": token, "action": "used"}).status_code == 403
    client.cookies.clear()
    sign_in(client, "viewer@example.com")
    for path in ("/support", "/support/imports", "/support/report", "/support/north/tickets/custom-field-type-en-0"):
        page = client.get(path)
        assert page.status_code == 200 and 'method="post" action="/support' not in page.text, path
    assert "hx-post" not in client.get("/support/assist?site=north&ticket=custom-field-type-en-0").text


def test_the_evaluation_report(client: TestClient, assisted: World) -> None:
    token = sign_in(client, "admin@example.com")
    import_set(client, token)
    en = [q for q in SET.queries if q["language"] == "en"]
    answer = client.post("/support/report/eval", data={"csrf_token": token, "site": "north"},
                         files=[("file", ("queries.jsonl", jsonl(en)))])
    assert answer.status_code == 303, answer.text
    page = client.get(answer.headers["location"]).text
    row = page.split('<th scope="row"><span translate="no">north</span>')[1].split("</tr>")[0]
    cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row)
    assert cells[0] == "10" and cells[7] == "0"  # ten questions; no invented item shown
    assert float(cells[1]) > 0.5  # recall@5 of similar tickets
    bad = client.post("/support/report/eval", data={"csrf_token": token, "site": "north"},
                      files=[("file", ("q.jsonl", b'{"nothing": 1}\n'))])
    assert bad.status_code == 400 and "record 1: text" in bad.text


def test_the_assist_beside_an_inbox_dialog(iapp, web, e5_model: SessionE5, http_providers) -> None:  # noqa: ANN001, F811
    configure(iapp, embedder=e5_model)
    add_user(iapp, "admin@example.com", "admin")
    assert h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "How can I return the items of order #12345?"))
                      ).status_code == 200
    with transaction(iapp.sessions) as s:
        (dialog,) = queries.list_dialogs(s, site_ids=None, state=None, channel=None, assignee_id=None,
                                         unassigned=False, customer_id=None, after=None, limit=5)
    with TestClient(create_app(iapp), follow_redirects=False) as client:
        token = sign_in(client, "admin@example.com")
        part = client.get(f"/support/assist?dialog={dialog.id}").text
        assert "Nothing is imported for this site yet" in part  # and nothing was embedded for it
        answer = client.post("/support/imports", data={"csrf_token": token, "site": "shop", "kind": "tickets"},
                             files=[("file", ("t.jsonl", jsonl(SET.tickets)))])
        assert answer.status_code == 303
        page = client.get(f"/inbox?dialog={dialog.id}").text
        assert f'hx-get="/support/assist?dialog={dialog.id}"' in page and 'hx-get="/support/links?site=shop"' in page
        part = client.get(f"/support/assist?dialog={dialog.id}").text
        assert "order-return-" in part.split('id="similar-title"')[1]
        assert f'name="ref" value="dialog:{dialog.id}"' in part and 'name="waited" value="0.0"' in part
