"""Custom-field rules read the GIN index on PostgreSQL (`custom_fields @> ...`, alone for a plain string: the
planner then estimates it from the column's statistics) and match exactly the customers the plain comparison
matches, on both databases, for any stored values."""

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select, text, update
from sqlalchemy.dialects import postgresql

from retento.core.db.transactions import transaction
from retento.customers.models import Customer
from retento.segments import rules, service
from retento.segments.compiler import Context, builtin_types, compile_node, custom_field_exact, members_query
from tests import factories as f

C = Customer.__table__
# Strings that `->>` also returns for other JSON kinds (numbers, booleans, arrays, objects), plain ones, case
TEXTS = ["Moscow", "moscow", "Kazan", "5", "5.0", "true", "false", "null", "[1]", '{"a": 1}', "", " 5", 'Mo"s',
         "Пермь"]
stored = st.one_of(st.sampled_from(TEXTS), st.integers(-3, 6), st.sampled_from([5.0, 0.5, 1e2]), st.booleans(),
                   st.none(), st.lists(st.sampled_from(["Moscow", "5"]), max_size=2),
                   st.fixed_dictionaries({"a": st.integers(0, 2)}))
field = st.one_of(st.just({}), st.builds(lambda v: {"city": v}, stored),
                  st.builds(lambda v: {"city": v, "age": 30}, stored), st.builds(lambda v: {"other": v}, stored))
rule_value = st.one_of(st.sampled_from(TEXTS), st.integers(-3, 6), st.sampled_from([5.0, 0.5]), st.booleans())
rule = st.one_of(
    st.builds(lambda v: {"name": "city", "op": "eq", "value": v}, rule_value),
    st.builds(lambda v: {"name": "city", "op": "in", "value": v},
              st.lists(st.sampled_from(TEXTS), min_size=1, max_size=3)),
    st.builds(lambda v: {"name": "city", "op": "ne", "value": v}, st.sampled_from(TEXTS)),
)
PEOPLE = 8


@pytest.fixture
def people(app):
    f.site(app)
    return [f.customer(app, email=f"p{i}@example.com") for i in range(PEOPLE)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.lists(field, min_size=PEOPLE, max_size=PEOPLE), raw=rule, negate=st.booleans())
def test_custom_field_rules_match_the_plain_comparison(app, people, fields, raw, negate):
    tree = {"custom_field": raw}
    with transaction(app.sessions) as s:
        for cid, value in zip(people, fields, strict=True):
            s.execute(update(C).where(C.c.id == cid).values(custom_fields=value))
    with transaction(app.sessions) as s:
        got = service.preview(s, site="shop", raw_rules={"not": tree} if negate else tree, now=app.clock.now(),
                              sample=PEOPLE)
        exact = custom_field_exact(rules.CustomFieldRule.model_validate(raw))
        expected = set(s.scalars(select(C.c.id).where(~exact if negate else exact)))
    assert {c["id"] for c in got["sample"]} == expected, (fields, raw, negate)
    assert got["count"] == len(expected)


def _sql(raw):
    types = builtin_types()
    q = members_query(rules.parse({"custom_field": raw}, types), Context(site_id=1, now=None, types=types))
    return str(q.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def test_plain_strings_use_containment_and_other_values_do_not():
    alone = _sql({"name": "city", "op": "eq", "value": "Moscow"})
    assert "@>" in alone and "->>" not in alone  # no second condition whose selectivity the planner guesses
    assert _sql({"name": "city", "op": "in", "value": ["Moscow", "Kazan"]}).count("@>") == 2
    for raw in ({"name": "city", "op": "eq", "value": "5"}, {"name": "city", "op": "eq", "value": 5},
                {"name": "city", "op": "eq", "value": "true"}, {"name": "city", "op": "in", "value": ["a", "[1]"]},
                {"name": "city", "op": "ne", "value": "Moscow"}, {"name": "city", "op": "contains", "value": "M"}):
        assert "@>" not in _sql(raw), raw


def test_postgresql_answers_a_custom_field_rule_from_the_gin_index(app, people):
    if app.engine.dialect.name != "postgresql":
        pytest.skip("the GIN index exists on PostgreSQL only")
    with transaction(app.sessions) as s:
        for i, cid in enumerate(people):
            s.execute(update(C).where(C.c.id == cid).values(custom_fields={"city": "Moscow" if i % 2 else "Kazan"}))
    types = builtin_types()
    cond = compile_node(rules.parse({"custom_field": {"name": "city", "op": "eq", "value": "Moscow"}}, types),
                        Context(site_id=1, now=app.clock.now(), types=types))
    q = select(C.c.id).where(cond)  # the rule's own condition (the site filter would use the site's index here)
    with transaction(app.sessions) as s:
        for setting in ("enable_seqscan", "enable_indexscan"):  # 8 rows: the planner would rather scan them
            s.execute(text(f"SET LOCAL {setting} = off"))
        sql = str(q.compile(dialect=s.get_bind().dialect, compile_kwargs={"literal_binds": True}))
        plan = "\n".join(s.scalars(text("EXPLAIN " + sql)))
        assert "Bitmap Index Scan on ix_customers_custom_fields" in plan
        assert len(s.scalars(q).all()) == PEOPLE // 2
    assert json.dumps({"city": "Moscow"}) in sql
