"""The console's Triggers pages over HTTP: the editor (a wrong condition pointed at, then saved), the condition
check as typed, dry runs, switching, pending delayed runs (fire now, cancel one or all), the run log and the last
24 hours' counts, explain for an order, ready-made templates."""

from __future__ import annotations

import json
import re

from retento.core.db.transactions import transaction
from retento.triggers import service as triggers
from tests import factories as f
from tests.console.conftest import sign_in

FORM = {"name": "big orders", "events": ["order_created"], "condition": "order.total > 100.0",
        "actions": "- type: add_tag\n  target: order\n  tag: big\n", "active": "on"}


def trigger_id(app, name: str) -> int:  # noqa: ANN001
    with transaction(app.sessions) as s:
        return triggers.find_trigger(s, name).id


def test_a_marketer_creates_a_trigger_after_a_wrong_condition_and_edits_it(client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "marketer@example.com")
    page = client.get("/triggers/new")
    assert page.status_code == 200 and 'hx-get="/triggers/condition"' in page.text
    wrong = client.post("/triggers", data={**FORM, "condition": "order.totl > 100.0", "csrf_token": csrf})
    assert wrong.status_code == 400
    assert "order has no field &#39;totl&#39;" in wrong.text
    assert 'value="big orders"' in wrong.text and "order.totl &gt; 100.0</textarea>" in wrong.text  # kept
    bad_yaml = client.post("/triggers", data={**FORM, "actions": "- [", "csrf_token": csrf})
    assert bad_yaml.status_code == 400 and "not YAML" in bad_yaml.text
    made = client.post("/triggers", data={**FORM, "delay_hours": "2", "limit_per": ["order", "", ""],
                                          "limit_max": ["1", "", ""], "limit_period_days": ["30", "", ""],
                                          "sites": ["north"], "csrf_token": csrf})
    assert made.status_code == 303, made.text
    tid = trigger_id(world.app, "big orders")
    assert made.headers["location"] == f"/triggers/{tid}?saved=1"
    with transaction(world.app.sessions) as s:
        d = triggers.get_trigger(s, tid).definition
    assert d["delay"] == {"minutes": 0, "hours": 2, "days": 0}
    assert d["limits"] == [{"per": "order", "max": 1, "period_days": 30}] and d["sites"] == ["north"]
    assert d["actions"] == [{"type": "add_tag", "target": "order", "tag": "big"}]

    edit = client.get(f"/triggers/{tid}/edit")
    assert "tag: big" in edit.text and 'name="delay_hours" type="number" min="0" value="2"' in edit.text
    changed = client.post(f"/triggers/{tid}/edit", data={**FORM, "condition": "order.total > 200.0",
                                                         "csrf_token": csrf})
    assert changed.status_code == 303
    shown = client.get(f"/triggers/{tid}")
    assert "order.total &gt; 200.0" in shown.text and "<dd>2 ·" in shown.text
    off = client.post(f"/triggers/{tid}/active", data={"active": "", "csrf_token": csrf})
    assert off.status_code == 303
    listed = client.get("/triggers").text
    assert re.search(r"big orders</a></td>\s*<td>Off</td>", listed)
    assert client.post("/triggers/9999/edit", data={**FORM, "csrf_token": csrf}).status_code == 404


def test_the_condition_is_checked_as_typed_and_the_wrong_part_marked(client, world) -> None:  # noqa: ANN001
    sign_in(client, "viewer@example.com")
    wrong = client.get("/triggers/condition", params={"condition": 'event.type == "a" && order.totl > 1'},
                       headers={"HX-Request": "true"})
    assert wrong.status_code == 200
    assert "<mark>order.totl</mark>" in wrong.text and "order has no field" in wrong.text
    syntax = client.get("/triggers/condition", params={"condition": "order.total >> 3"}).text
    assert "syntax error" in syntax and "order.total &gt;<mark>&gt;</mark> 3" in syntax
    assert "The condition is valid." in client.get("/triggers/condition",
                                                   params={"condition": "order.total > 3"}).text


def test_dry_run_of_an_unsaved_and_a_saved_trigger(client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "marketer@example.com")
    small = f.order(world.app, site="north", items=[{"name": "x", "price": "50.00"}])
    big = f.order(world.app, site="north", items=[{"name": "x", "price": "500.00"}])
    answer = client.post("/triggers/dry-run", data={**FORM, "over": "orders", "limit": "100", "csrf_token": csrf},
                         headers={"HX-Request": "true"})
    assert answer.status_code == 200
    assert "Matched 1 of 2 evaluated." in answer.text and f'href="/orders/{big}"' in answer.text
    assert f'href="/orders/{small}"' not in answer.text
    wrong = client.post("/triggers/dry-run", data={**FORM, "condition": "nope > 1", "csrf_token": csrf},
                        headers={"HX-Request": "true"})
    assert wrong.status_code == 200 and "unknown variable" in wrong.text  # htmx swaps 2xx answers only
    assert client.post("/triggers/dry-run", data={**FORM, "condition": "nope", "csrf_token": csrf}).status_code == 400
    client.post("/triggers", data={**FORM, "csrf_token": csrf})
    saved = client.post("/triggers/dry-run", data={"trigger_id": str(trigger_id(world.app, "big orders")),
                                                   "over": "orders", "csrf_token": csrf})
    assert "Matched 1 of 2 evaluated." in saved.text


def test_a_long_dry_run_shows_its_progress_step_by_step(client, world) -> None:  # noqa: ANN001
    """Each request evaluates `console_dry_run_step` inputs and answers the result so far with a progress bar and
    an element that asks for the next step (htmx, on load) carrying the state; the steps add up to one dry run."""
    world.app.settings.console_dry_run_step = 2
    csrf = sign_in(client, "marketer@example.com")
    totals = ["500.00", "50.00", "700.00", "20.00", "900.00"]
    ids = [f.order(world.app, site="north", items=[{"name": "x", "price": p}]) for p in totals]
    form = {**FORM, "over": "orders", "limit": "100", "csrf_token": csrf}
    answer = client.post("/triggers/dry-run", data=form, headers={"HX-Request": "true"})
    seen = []
    while 'hx-trigger="load"' in answer.text:
        assert re.search(r'<progress id="dry-run-progress" value="(\d+)" max="5"', answer.text)
        seen.append(int(re.search(r'value="(\d+)" max="5"', answer.text).group(1)))
        assert "So far: matched" in answer.text
        carry = json.loads(re.search(r"hx-vals='([^']*)'", answer.text).group(1))
        answer = client.post("/triggers/dry-run", data={**form, **{k: str(v) for k, v in carry.items()}},
                             headers={"HX-Request": "true"})
        assert answer.status_code == 200
    assert seen == [2, 4]
    assert "<progress" not in answer.text and "Matched 3 of 5 evaluated." in answer.text
    assert all(f'href="/orders/{i}"' in answer.text for i, p in zip(ids, totals, strict=True) if p != "50.00"
               and p != "20.00")
    limited = client.post("/triggers/dry-run", data={**form, "limit": "3"}, headers={"HX-Request": "true"})
    carry = json.loads(re.search(r"hx-vals='([^']*)'", limited.text).group(1))
    assert carry["total"] == 3
    last = client.post("/triggers/dry-run", data={**form, "limit": "3", **{k: str(v) for k, v in carry.items()}},
                       headers={"HX-Request": "true"})
    assert "<progress" not in last.text and "Matched 2 of 3 evaluated." in last.text  # 900, 20, 700
    bad = client.post("/triggers/dry-run", data={**form, "state": "{oops"}, headers={"HX-Request": "true"})
    assert bad.status_code == 200 and "Matched" not in bad.text


def test_pending_runs_fire_cancel_run_log_and_counts(client, world) -> None:  # noqa: ANN001
    app = world.app
    csrf = sign_in(client, "marketer@example.com")
    client.post("/triggers", data={**FORM, "name": "late", "condition": "true", "delay_hours": "2",
                                   "csrf_token": csrf})
    tid = trigger_id(app, "late")
    a, b, c, d = (f.order(app, site="north") for _ in range(4))
    app.worker.tick()
    page = client.get(f"/triggers/{tid}").text
    assert "Pending delayed runs (4)" in page
    with transaction(app.sessions) as s:
        runs = {t.order_id: t.id for t in triggers.pending(s, trigger_id=tid)}
    assert client.post(f"/triggers/{tid}/pending/{runs[a]}/fire", data={"csrf_token": csrf}).status_code == 303
    assert client.post(f"/triggers/{tid}/pending/{runs[b]}/cancel", data={"csrf_token": csrf}).status_code == 303
    again = client.post(f"/triggers/{tid}/pending/{runs[b]}/cancel", data={"csrf_token": csrf})
    assert again.status_code == 409 and "already cancelled" in again.text
    page = client.get(f"/triggers/{tid}").text
    assert "Pending delayed runs (2)" in page
    assert re.search(r"when due</td>\s*<td>acted</td>", page) and "cancelled by hand" in page
    assert "matched 4, acted 1, failed 0" in page
    assert client.post(f"/triggers/{tid}/pending/cancel", data={"csrf_token": csrf}).status_code == 303
    assert "Pending delayed runs (0)" in client.get(f"/triggers/{tid}").text
    listed = client.get("/triggers").text
    row = re.search(r"late</a></td>(.*?)</tr>", listed, re.DOTALL).group(1)
    assert re.findall(r'class="num[^"]*">(\d+)</td>', row) == ["0", "4", "1", "0"]  # pending, matched, acted, failed
    assert {c, d}  # both cancelled with "cancel all"


def test_explain_why_it_did_or_did_not_fire_for_an_order(client, world) -> None:  # noqa: ANN001
    app = world.app
    csrf = sign_in(client, "marketer@example.com")
    client.post("/triggers", data={**FORM, "csrf_token": csrf})
    tid = trigger_id(app, "big orders")
    small = f.order(app, site="north", items=[{"name": "x", "price": "50.00"}])
    big = f.order(app, site="north", items=[{"name": "x", "price": "500.00"}])
    app.worker.tick()
    no = client.get(f"/triggers/{tid}/explain", params={"order": str(small), "customer": ""},
                    headers={"HX-Request": "true"})
    assert no.status_code == 200 and "not matched" in no.text and "order.total = 50.0" in no.text
    yes = client.get(f"/triggers/{tid}/explain", params={"order": str(big), "customer": ""}).text
    assert "<td>acted</td>" in yes
    neither = client.get(f"/triggers/{tid}/explain", params={"order": "", "customer": ""})
    assert neither.status_code == 400 and "give exactly one of" in neither.text
    assert client.get(f"/triggers/{tid}/explain", params={"order": "x"}).status_code == 400
    assert client.get(f"/triggers/{tid}/explain", params={"order": "999999"}).status_code == 404


def test_a_ready_made_trigger_is_installed_with_its_parameters(client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "marketer@example.com")
    page = client.get("/triggers/templates")
    assert page.status_code == 200 and 'action="/triggers/templates/courier-17-minutes"' in page.text
    made = client.post("/triggers/templates/courier-17-minutes", data={"param_minutes": "20", "csrf_token": csrf})
    assert made.status_code == 303, made.text
    with transaction(world.app.sessions) as s:
        t = triggers.list_triggers(s)[0]
    assert made.headers["location"] == f"/triggers/{t.id}?saved=1" and t.definition["delay"]["minutes"] == 20
    assert client.post("/triggers/templates/nope", data={"csrf_token": csrf}).status_code == 400


def test_a_viewer_reads_the_pages_without_forms(client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "marketer@example.com")
    client.post("/triggers", data={**FORM, "csrf_token": csrf})
    tid = trigger_id(world.app, "big orders")
    client.post("/signout", data={"csrf_token": csrf})
    sign_in(client, "viewer@example.com")
    for path in ["/triggers", f"/triggers/{tid}", "/triggers/new", "/triggers/templates"]:
        page = client.get(path)
        assert page.status_code == 200, path
        assert re.findall(r'<form method="post" action="([^"]+)"', page.text) == ["/signout"], path
        assert "hx-post" not in page.text, path
