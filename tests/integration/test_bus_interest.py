"""A subscriber's interest: the event types its configuration needs now. The others are passed over unread (a
subscriber with nothing configured reads no event), and what it needs later is handed over from then on."""

from __future__ import annotations

from sqlalchemy import select

from retento.core import bus as bus_module
from retento.core.bus import SubscriberCursor
from retento.core.db.transactions import transaction
from retento.triggers import service as triggers
from retento.triggers.timers import CHANGE_TYPES
from retento.triggers.wiring import engine_of
from tests import factories as f


def _record(app, names: list[str]) -> None:
    rows = [bus_module.event_row("custom", name=n, now=app.clock.now(), site_id=1, payload={}, ctx=f.API)
            for n in names]
    rows = [{**r, "type": r["name"]} for r in rows]  # a type per name: the interest is by type
    with transaction(app.sessions) as s:
        bus_module.record(s, rows)


def _position(app, name: str) -> int:
    with transaction(app.sessions) as s:
        return s.scalar(select(SubscriberCursor.position).where(SubscriberCursor.subscriber == name))


def test_only_the_types_of_interest_are_handed_over_and_the_cursor_passes_the_rest(app):
    f.site(app)
    wanted: set[str] | None = set()
    got: list[tuple[int, str]] = []
    asked: list[int] = []

    def interest(session):
        asked.append(1)
        return None if wanted is None else frozenset(wanted)

    app.bus.subscribe("picky", lambda s, e: got.append((e.id, e.type)), interest=interest)
    _record(app, ["a", "b", "a", "c"])
    assert app.bus.dispatch(names=["picky"]) == 0 and got == [] and asked
    with transaction(app.sessions) as s:
        top = s.scalar(select(bus_module.Event.id).order_by(bus_module.Event.id.desc()).limit(1))
    assert _position(app, "picky") == top  # passed over, not read again

    wanted = {"a", "c"}
    _record(app, ["b", "a", "c", "b", "b", "b", "a"])
    app.bus._batch = 2  # several batches, one of them with nothing wanted
    app.bus.dispatch(names=["picky"])
    assert [t for _, t in got] == ["a", "c", "a"] and [i for i, _ in got] == sorted(i for i, _ in got)

    wanted = None  # every type again
    _record(app, ["b", "c"])
    app.bus.dispatch(names=["picky"])
    assert [t for _, t in got][3:] == ["b", "c"]


def test_interest_narrows_a_typed_subscriber_and_never_widens_it(app):
    f.site(app)
    got: list[str] = []
    app.bus.subscribe("typed", lambda s, e: got.append(e.type), types=["a", "b"],
                      interest=lambda s: frozenset({"b", "z"}))
    _record(app, ["a", "b", "z", "b"])
    app.bus.dispatch(names=["typed"])
    assert got == ["b", "b"]


def test_many_types_in_small_batches_lose_and_repeat_nothing(app):
    """A typed subscriber reads a range of the (type, id) index per type it needs; a full batch of one type bounds
    the others' reads."""
    f.site(app)
    got: list[int] = []
    app.bus.subscribe("many", lambda s, e: got.append(e.id), types=list("abcdz"), interest=lambda s: frozenset("abcd"))
    names = [("abcde"[(k * 7) % 5]) for k in range(40)]
    _record(app, names)
    app.bus._batch = 3
    app.bus.dispatch(names=["many"])
    with transaction(app.sessions) as s:
        expected = list(s.scalars(select(bus_module.Event.id).where(bus_module.Event.type.in_(list("abcd")))
                                  .order_by(bus_module.Event.id)))
    assert got == expected and len(got) == 32


def _trigger(app, **raw) -> None:
    raw = {"name": "t", "actions": [{"type": "add_tag", "target": "order", "tag": "seen"}], **raw}
    with transaction(app.sessions) as s:
        triggers.create_trigger(s, raw=raw, now=app.clock.now())


def test_the_idle_engines_need_nothing_until_configured(app):
    f.site(app)
    with transaction(app.sessions) as s:
        assert [app.bus._subs[n].interest(s) for n in ("triggers", "journeys", "webhooks")] == [frozenset()] * 3
    _trigger(app, events=["order_created"])
    with transaction(app.sessions) as s:
        assert engine_of(app).interest(s) == frozenset({"order_created"})
    _trigger(app, name="later", events=["order_status_changed"], delay={"days": 3},
             on_change={"policy": "cancel", "fields": ["status"]})
    with transaction(app.sessions) as s:  # a pending run is cancelled by a change: the changes are needed too
        assert engine_of(app).interest(s) == frozenset({"order_created", "order_status_changed", *CHANGE_TYPES})


def test_a_trigger_made_after_events_were_passed_over_sees_the_next_ones(app):
    f.site(app)
    first = f.order(app)
    app.worker.tick()  # nothing configured: passed over
    _trigger(app, events=["order_created"])
    second = f.order(app)
    app.worker.tick()
    with transaction(app.sessions) as s:
        from retento.orders import service as orders

        assert (orders.get(s, first).tags, orders.get(s, second).tags) == ([], ["seen"])


def test_an_interest_needs_the_type_among_the_columns_read(app):
    import pytest

    with pytest.raises(ValueError, match="type"):
        app.bus.subscribe("blind", lambda s, e: None, columns=("id",), interest=lambda s: frozenset())


def test_a_failing_interest_hands_over_every_event(app):
    f.site(app)
    got: list[str] = []

    def broken(session):
        raise RuntimeError("configuration unreadable")

    app.bus.subscribe("careful", lambda s, e: got.append(e.type), interest=broken)
    app.bus.subscribe("after", lambda s, e: got.append("after:" + e.type))
    _record(app, ["a", "b"])
    app.bus.dispatch(names=["careful", "after"])
    assert got == ["a", "b", "after:a", "after:b"]
