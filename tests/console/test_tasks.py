"""The console's Tasks page over HTTP: mine (the manager with the user's email), overdue, open and done in pages
by key; create (due in the user's time zone, recorded as the user's), complete, reopen and reassign through the
tasks service; bad input named; another site's customer refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from retento.core.db.transactions import transaction
from retento.sites import service as sites
from retento.sites.schemas import ManagerCreate
from retento.tasks import service as tasks
from tests import factories as f
from tests.console.conftest import sign_in


def managers(app) -> tuple[int, int]:  # noqa: ANN001
    with transaction(app.sessions) as s:
        me = sites.create_manager(s, data=ManagerCreate(name="Olga Operator", email="Operator@Example.com"),
                                  now=app.clock.now()).id
        other = sites.create_manager(s, data=ManagerCreate(name="Pavel Other", email="pavel@example.com"),
                                     now=app.clock.now()).id
    return me, other


def all_tasks(app) -> list:  # noqa: ANN001
    with transaction(app.sessions) as s:
        return [(t.id, t.title, t.manager_id, t.done, t.due_at, t.actor_type, t.source)
                for t in tasks.list_tasks(s, limit=1000)]


def test_an_operator_creates_completes_and_reassigns_tasks(client, world) -> None:  # noqa: ANN001
    app = world.app
    me, other = managers(app)
    customer = f.customer(app, site="north", email="c@example.com")
    csrf = sign_in(client, "operator@example.com")
    page = client.get("/tasks")
    assert page.status_code == 200 and 'aria-current="page">Mine<' in page.text and "No tasks here." in page.text

    made = client.post("/tasks", data={"title": "Call back", "text": "about the sofa", "due_at": "2026-03-01T10:00",
                                       "manager_id": str(me), "customer_id": str(customer), "view": "mine",
                                       "csrf_token": csrf})
    assert made.status_code == 303 and made.headers["location"].startswith("/tasks?view=mine&saved=")
    (tid, title, manager, done, due, actor, source), = all_tasks(app)
    assert (title, manager, done, actor, source) == ("Call back", me, False, "user", "user")
    assert due == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)  # 10:00 in Moscow, the user's zone

    mine = client.get("/tasks?view=mine").text
    assert "Call back" in mine and f'href="/customers/{customer}"' in mine
    overdue = client.get("/tasks?view=overdue").text
    assert "Call back" in overdue if due < app.clock.now() else "No tasks here." in overdue

    assert client.post(f"/tasks/{tid}/assign", data={"manager_id": str(other), "view": "mine",
                                                      "csrf_token": csrf}).status_code == 303
    assert all_tasks(app)[0][2] == other
    assert "Call back" not in client.get("/tasks?view=mine").text
    assert "Call back" in client.get(f"/tasks?view=open&manager={other}").text
    assert "Call back" not in client.get(f"/tasks?view=open&manager={me}").text

    assert client.post(f"/tasks/{tid}/done", data={"view": "open", "csrf_token": csrf}).status_code == 303
    assert all_tasks(app)[0][3] is True
    assert "Call back" in client.get("/tasks?view=done").text
    assert "Call back" not in client.get("/tasks?view=open").text
    assert client.post(f"/tasks/{tid}/done", data={"done": "false", "csrf_token": csrf}).status_code == 303
    assert all_tasks(app)[0][3] is False


def test_overdue_is_open_tasks_due_before_now(client, world) -> None:  # noqa: ANN001
    app = world.app
    now = app.clock.now()
    with transaction(app.sessions) as s:
        from retento.core.changes import ChangeContext
        from retento.tasks.schemas import TaskCreate

        for title, due in (("late", now - timedelta(hours=1)), ("soon", now + timedelta(hours=1)), ("whenever", None)):
            tasks.create_task(s, data=TaskCreate(title=title, due_at=due), ctx=ChangeContext.system(), now=now)
    sign_in(client, "viewer@example.com")
    page = client.get("/tasks?view=overdue").text
    assert "late" in page and "soon" not in page and "whenever" not in page and "overdue" in page
    assert 'method="post" action="/tasks' not in page  # a viewer gets no forms that change anything


def test_lists_page_by_key(client, world) -> None:  # noqa: ANN001
    app = world.app
    with transaction(app.sessions) as s:
        from retento.core.changes import ChangeContext
        from retento.tasks.schemas import TaskCreate

        for n in range(55):
            tasks.create_task(s, data=TaskCreate(title=f"task number {n}"), ctx=ChangeContext.system(),
                              now=app.clock.now())
    sign_in(client, "admin@example.com")
    first = client.get("/tasks?view=open").text
    assert "task number 49<" in first and "task number 50<" not in first
    after = re.search(r'href="/tasks\?view=open&amp;after=(\d+)"', first)
    assert after, "no next page link"
    second = client.get(f"/tasks?view=open&after={after.group(1)}").text
    assert "task number 50<" in second and "task number 54<" in second and "task number 49<" not in second


def test_bad_input_is_named_and_nothing_is_written(client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "operator@example.com")
    for data, field in (({"title": ""}, "title"), ({"title": "x", "due_at": "tomorrow"}, "due_at"),
                        ({"title": "x", "customer_id": "abc"}, "customer_id"),
                        ({"title": "x", "customer_id": "999999"}, "customer_id"),
                        ({"title": "x", "manager_id": "777"}, "manager_id")):
        answer = client.post("/tasks", data={**data, "csrf_token": csrf})
        assert answer.status_code in (400, 404), (data, answer.status_code)
        assert f'<code translate="no">{field}</code>' in answer.text, (data, answer.text[-2000:])
    assert all_tasks(world.app) == []
    assert client.post("/tasks/999/done", data={"csrf_token": csrf}).status_code == 404


def test_another_sites_customer_is_not_found_for_a_site_limited_user(client, world) -> None:  # noqa: ANN001
    south = f.customer(world.app, site="south", email="s@example.com")
    csrf = sign_in(client, "north@example.com")
    answer = client.post("/tasks", data={"title": "peek", "customer_id": str(south), "csrf_token": csrf})
    assert answer.status_code == 400 and '<code translate="no">customer_id</code>' in answer.text
    assert all_tasks(world.app) == []


def test_a_form_sent_twice_creates_one_task(client, world) -> None:  # noqa: ANN001
    app = world.app
    csrf = sign_in(client, "operator@example.com")
    page = client.get("/tasks?view=open").text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page).group(1)
    assert key != re.search(r'name="idempotency_key" value="([^"]+)"', client.get("/tasks").text).group(1)
    form = {"title": "Ring the courier", "view": "open", "idempotency_key": key, "csrf_token": csrf}
    first, second = client.post("/tasks", data=form), client.post("/tasks", data=form)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]  # the same task shown as saved
    assert [t[1] for t in all_tasks(app)] == ["Ring the courier"]
    client.post("/tasks", data={**form, "idempotency_key": key + "x"})  # another form: another task
    assert [t[1] for t in all_tasks(app)] == ["Ring the courier", "Ring the courier"]
    sign_in(client, "admin@example.com")  # the key is the user's: another user's form with it is theirs
    client.post("/tasks", data={**form, "csrf_token": csrf_of_page(client)})
    assert len(all_tasks(app)) == 3


def csrf_of_page(client) -> str:  # noqa: ANN001
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/tasks").text).group(1)
