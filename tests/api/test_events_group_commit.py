"""`POST /api/v1/events` from concurrent clients: the events that queue up while a transaction commits are stored
in one shared transaction (group commit); each request is answered only after its event committed, a bad
request fails alone with its own 4xx, and an idempotency key repeated inside one batch stores one event."""

from __future__ import annotations

import threading
import time

import httpx
from sqlalchemy import event, func, select

from retento.bus import Event
from retento.db import transaction
from tests import factories as f
from tests.api.conftest import make_key


def test_queued_events_commit_together_and_a_bad_one_fails_alone(app, server):
    f.site(app)
    cid = f.customer(app)
    _, key = make_key(app)
    held, release = threading.Event(), threading.Event()
    commits: list[str] = []

    def hold_first(session) -> None:
        if threading.current_thread().name == "group-commit" and not held.is_set():
            held.set()
            assert release.wait(30)

    def count(session) -> None:
        if threading.current_thread().name == "group-commit":
            commits.append("commit")

    event.listen(app.sessions, "before_commit", hold_first)
    event.listen(app.sessions, "after_commit", count)
    answers: dict[str, httpx.Response] = {}

    def post(label: str, body: dict) -> None:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=60) as http:
            answers[label] = http.post("/api/v1/events", json=body)

    def start(label: str, body: dict) -> threading.Thread:
        t = threading.Thread(target=post, args=(label, body))
        t.start()
        return t

    threads = [start("first", {"name": "viewed", "customer": {"id": cid}, "payload": {"n": "first"}})]
    assert held.wait(30)  # the first request's transaction is committing; the next ones queue behind it
    threads += [start(f"ok{n}", {"name": "viewed", "customer": {"id": cid}, "payload": {"n": n}}) for n in range(9)]
    threads += [start(f"same{n}", {"name": "cart", "customer": {"id": cid}, "idempotency_key": "k1"}) for n in (1, 2)]
    threads.append(start("bad", {"name": "viewed", "customer": {"id": 999_999}}))
    deadline = time.monotonic() + 30
    while app.group_commit.queued < 12:
        assert time.monotonic() < deadline, f"only {app.group_commit.queued} requests queued"
        threads[0].join(0.01)
    release.set()
    for t in threads:
        t.join(60)

    assert commits == ["commit", "commit"]  # the first alone, then the eleven good ones together
    statuses = {label: r.status_code for label, r in answers.items()}
    assert statuses == {**{label: 201 for label in answers if label != "bad"}, "bad": 404}
    assert answers["bad"].json()["errors"][0]["field"] == "customer"
    assert sorted(answers[f"same{n}"].json()["accepted"] for n in (1, 2)) == [False, True]
    with transaction(app.sessions) as s:
        stored = s.scalars(select(Event.payload).where(Event.type == "custom", Event.name == "viewed")).all()
        assert sorted(str(p["n"]) for p in stored) == sorted(["first", *map(str, range(9))])
        assert s.scalar(select(func.count()).select_from(Event).where(Event.name == "cart")) == 1


def test_an_answered_event_is_stored(app, client):
    f.site(app)
    cid = f.customer(app)
    for n in range(3):
        assert client.post("/api/v1/events", json={"name": "viewed", "customer": {"id": cid},
                                                   "payload": {"n": n}}).status_code == 201
        with transaction(app.sessions) as s:  # durable before the answer: visible to any other session at once
            assert s.scalar(select(func.count()).select_from(Event).where(Event.name == "viewed")) == n + 1
