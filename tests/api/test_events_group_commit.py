"""`POST /api/v1/events` from concurrent clients: the events that queue up while a transaction commits are stored
in one shared transaction (group commit); each request is answered only after its event committed, a bad
request fails alone with its own 4xx, and an idempotency key repeated inside one batch stores one event."""

from __future__ import annotations

import threading
import time

import httpx
from sqlalchemy import event, func, select

from retento.core import scoping
from retento.core.bus import Event
from retento.core.db.transactions import transaction
from tests import factories as f
from tests.api.conftest import make_key


class Held:
    """Holds the committer's first transaction just before its commit, until `release_when_queued`; records the
    site scope of every transaction it commits."""

    def __init__(self, app) -> None:
        self.held, self.release = threading.Event(), threading.Event()
        self.commits: list[frozenset[int] | None] = []
        self.app = app
        event.listen(app.sessions, "before_commit", self._before)
        event.listen(app.sessions, "after_commit", self._after)

    def _before(self, session) -> None:
        if threading.current_thread().name == "group-commit" and not self.held.is_set():
            self.held.set()
            assert self.release.wait(30)

    def _after(self, session) -> None:
        if threading.current_thread().name == "group-commit":
            self.commits.append(scoping.of(session))

    def release_when_queued(self, n: int, threads: list[threading.Thread]) -> None:
        deadline = time.monotonic() + 30
        while self.app.group_commit.queued < n:
            assert time.monotonic() < deadline, f"only {self.app.group_commit.queued} requests queued"
            threads[0].join(0.01)
        self.release.set()
        for t in threads:
            t.join(60)


def post(server, key: str, body: dict, answers: dict[str, httpx.Response], label: str) -> threading.Thread:
    """POST the event in a thread of its own; its answer goes to answers[label]."""
    def go() -> None:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=60) as http:
            answers[label] = http.post("/api/v1/events", json=body)

    t = threading.Thread(target=go)
    t.start()
    return t


def test_queued_events_commit_together_and_a_bad_one_fails_alone(app, server):
    f.site(app)
    cid = f.customer(app)
    _, key = make_key(app)
    committer = Held(app)
    answers: dict[str, httpx.Response] = {}

    def start(label: str, body: dict) -> threading.Thread:
        return post(server, key, body, answers, label)

    threads = [start("first", {"name": "viewed", "customer": {"id": cid}, "payload": {"n": "first"}})]
    assert committer.held.wait(30)  # the first request's transaction is committing; the next ones queue behind it
    threads += [start(f"ok{n}", {"name": "viewed", "customer": {"id": cid}, "payload": {"n": n}}) for n in range(9)]
    threads += [start(f"same{n}", {"name": "cart", "customer": {"id": cid}, "idempotency_key": "k1"}) for n in (1, 2)]
    threads.append(start("bad", {"name": "viewed", "customer": {"id": 999_999}}))
    committer.release_when_queued(12, threads)

    assert len(committer.commits) == 2  # the first alone, then the eleven good ones together
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


def test_requests_of_keys_limited_to_different_sites_share_no_transaction(app, server):
    f.site(app, "a")
    f.site(app, "b")
    in_a, in_b = f.customer(app, site="a"), f.customer(app, site="b")
    keys = {"a": make_key(app, sites=["a"], name="a")[1], "b": make_key(app, sites=["b"], name="b")[1],
            "all": make_key(app, name="all")[1]}
    committer = Held(app)
    answers: dict[str, httpx.Response] = {}

    def start(label: str, key: str, cid: int) -> threading.Thread:
        return post(server, keys[key], {"name": label, "customer": {"id": cid}}, answers, label)

    threads = [start("first", "all", in_a)]
    assert committer.held.wait(30)
    threads += [start("a1", "a", in_a), start("b1", "b", in_b), start("a2", "a", in_a), start("a-sees-b", "a", in_b),
                start("all1", "all", in_b)]
    committer.release_when_queued(5, threads)
    assert {label: r.status_code for label, r in answers.items()} == {
        "first": 201, "a1": 201, "b1": 201, "a2": 201, "a-sees-b": 404, "all1": 201}
    # the first; then a transaction per key scope: every site, site a (its two events), site b
    assert sorted(len(scope or ()) for scope in committer.commits) == [0, 0, 1, 1]
    with transaction(app.sessions) as s:
        stored = dict(s.execute(select(Event.name, Event.customer_id).where(Event.type == "custom")).all())
    assert stored == {"first": in_a, "a1": in_a, "a2": in_a, "b1": in_b, "all1": in_b}


def test_set_based_work_of_queued_requests_is_one_call_and_a_failing_call_runs_each_alone(app):
    """`run_many`: the items queued behind a committing transaction reach their store in one call, each caller
    gets its own answer; when that call raises, each item runs alone and only the bad one fails."""
    from retento.core.bus import event_row, record
    from retento.core.changes import ChangeContext

    calls: list[list[str]] = []

    def store(s, items: list[str]) -> list[str]:
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("bad item")
        record(s, [event_row("custom", name=i, ctx=ChangeContext.system(), now=app.clock.now()) for i in items])
        return [i.upper() for i in items]

    committer = Held(app)
    answers: dict[str, object] = {}

    def start(item: str) -> threading.Thread:
        def go() -> None:
            try:
                answers[item] = app.group_commit.run_many(store, item)
            except ValueError as exc:
                answers[item] = exc
        t = threading.Thread(target=go)
        t.start()
        return t

    threads = [start("first")]
    assert committer.held.wait(30)
    threads += [start(i) for i in ("a", "b", "c")]
    committer.release_when_queued(3, threads)
    assert answers == {"first": "FIRST", "a": "A", "b": "B", "c": "C"}
    assert sorted(map(sorted, calls[1:])) == [["a", "b", "c"]]  # the three queued ones: one call
    calls.clear()
    bad_committer = Held(app)
    threads = [start("x")]
    assert bad_committer.held.wait(30)
    threads += [start(i) for i in ("y", "bad", "z")]
    bad_committer.release_when_queued(3, threads)
    assert isinstance(answers["bad"], ValueError)
    assert (answers["y"], answers["z"]) == ("Y", "Z")
    assert sorted(calls[1]) == ["bad", "y", "z"] and sorted(map(tuple, calls[2:])) == [("bad",), ("y",), ("z",)]
    with transaction(app.sessions) as s:
        names = s.scalars(select(Event.name).where(Event.type == "custom")).all()
    assert sorted(names) == ["a", "b", "c", "first", "x", "y", "z"]
