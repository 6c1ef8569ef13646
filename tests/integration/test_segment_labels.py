"""Tag, interest and consent rules read `customers.labels` on PostgreSQL (a GIN index answers `labels @> [...]`)
and the label tables on SQLite. After any writes through the customers service (create, edit, batch upsert) the
column equals what the label rows give, and every rule matches the customers the rows say, on both databases."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from retento.core.changes import ChangeContext, Source
from retento.core.db.transactions import transaction
from retento.customers import labels, service as customers
from retento.customers.models import Customer
from retento.segments import rules, service
from retento.segments.compiler import Context, builtin_types, members_query
from tests import factories as f

CTX = ChangeContext(source=Source.API)
RUNS = itertools.count()
TAGS = ["vip", "late", "b2b"]
CHANNELS = ["email", "sms"]
PEOPLE = 5

tag_sets = st.lists(st.sampled_from(TAGS), unique=True, max_size=3)
consents = st.dictionaries(st.sampled_from(CHANNELS), st.booleans(), max_size=2)
write = st.one_of(
    st.tuples(st.just("edit"), st.integers(0, PEOPLE - 1), tag_sets, st.lists(st.sampled_from(["x", "y"]),
                                                                               unique=True, max_size=2), consents),
    st.tuples(st.just("upsert"), st.lists(st.tuples(st.integers(0, PEOPLE - 1), tag_sets, consents), min_size=1,
                                          max_size=3)),
)
RULES = [
    {"tags": {"any": ["vip"]}}, {"tags": {"any": ["vip", "b2b"]}}, {"tags": {"all": ["vip", "late"]}},
    {"tags": {"none": ["vip"]}}, {"interests": {"any": ["x"]}}, {"interests": {"all": ["x", "y"]}},
    {"consent": {"channel": "email"}}, {"consent": {"channel": "sms", "granted": False}},
    {"all": [{"tags": {"any": ["vip"]}}, {"consent": {"channel": "email"}}]},
    {"not": {"any": [{"tags": {"all": ["late"]}}, {"consent": {"channel": "sms"}}]}},
    {"tags": {"none": ["vip", "b2b"]}},  # NOT over two containments on PostgreSQL
]


def expected(snap: dict, rule: dict) -> bool:
    """A rule's meaning over a customer's snapshot (its label rows), in Python."""
    if "all" in rule:
        return all(expected(snap, r) for r in rule["all"])
    if "any" in rule:
        return any(expected(snap, r) for r in rule["any"])
    if "not" in rule:
        return not expected(snap, rule["not"])
    if "consent" in rule:
        c = rule["consent"]
        return snap["consents"].get(c["channel"], {}).get("granted", False) is c.get("granted", True)
    (kind, spec), = rule.items()
    (mode, values), = spec.items()
    have = set(snap[kind])
    return {"any": bool(have & set(values)), "all": set(values) <= have, "none": not have & set(values)}[mode]


def _consents(given: dict[str, bool]) -> dict:
    return {ch: {"granted": g, "source": "test"} for ch, g in given.items()}


@pytest.fixture
def shop(app):
    f.site(app)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(first=st.lists(st.tuples(tag_sets, consents), min_size=PEOPLE, max_size=PEOPLE),
       writes=st.lists(write, max_size=4))
def test_labels_follow_every_write_and_rules_match_the_rows(app, shop, first, writes):
    now, run = app.clock.now(), next(RUNS)
    with transaction(app.sessions) as s:
        s.execute(delete(Customer))
        made = customers.create_many(s, items=[customers.parse_create(s, {
            "site": "shop", "external_id": f"r{run}e{n}", "tags": tags, "consents": _consents(given)})
            for n, (tags, given) in enumerate(first)], ctx=CTX, now=now)
        ids = [c.id for c in made]
    for w in writes:
        with transaction(app.sessions) as s:
            if w[0] == "edit":
                _, n, tags, interests, given = w
                data = customers.parse_edit(s, {"tags": tags, "interests": interests, "consents": _consents(given)},
                                            site_id=1)
                customers.edit(s, customer=customers.get(s, ids[n]), data=data, ctx=CTX, now=now)
            else:
                customers.upsert_many(s, items=[customers.parse_create(s, {
                    "site": "shop", "external_id": f"r{run}e{n}", "tags": tags, "consents": _consents(given)})
                    for n, tags, given in w[1]], ctx=CTX, now=now)
    with transaction(app.sessions) as s:
        stored = {cid: value for cid, value in s.execute(select(Customer.id, Customer.labels)).all()}
        assert stored == labels.current(s, ids)
        snaps = customers.snapshots(s, ids)
        for rule in RULES:
            got = service.preview(s, site="shop", raw_rules=rule, now=now, sample=PEOPLE)
            want = {cid for cid in ids if expected(snaps[cid], rule)}
            assert {c["id"] for c in got["sample"]} == want, (rule, snaps)
            assert got["count"] == len(want)


def test_labels_of_one_customer():
    assert labels.of(["vip", "b2b"], ["x"], {"email": {"granted": True}, "sms": {"granted": False}}) == [
        "consent:email", "interest:x", "tag:b2b", "tag:vip"]
    assert labels.of([], [], {}) == []


def test_each_database_reads_its_spelling():
    types = builtin_types()
    q = members_query(rules.parse(RULES[8], types), Context(site_id=1, now=None, types=types))
    pg = str(q.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    lite = str(q.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    assert "(customers.labels)::jsonb @> ('[\"tag:vip\"]')::jsonb" in pg
    assert "(customers.labels)::jsonb @> ('[\"consent:email\"]')::jsonb" in pg
    assert "customer_tags" not in pg and "customer_consents" not in pg
    assert "customer_tags" in lite and "customer_consents" in lite and "labels" not in lite
