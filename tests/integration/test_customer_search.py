"""The console's customer search: part of a name, an email or a phone in any case, or an external id; on
PostgreSQL the trigram index answers it."""

from __future__ import annotations

from sqlalchemy import select, text

from retento.core.db.transactions import transaction
from retento.customers import queries
from retento.customers.models import Customer
from tests import factories as f


def found(app, q: str) -> list[str]:
    with transaction(app.sessions) as s:
        return [c.external_id for c in queries.list_customers(s, search=q, limit=50)]


def test_substring_over_names_email_phone_and_external_id(app):
    f.site(app, "shop")
    f.customer(app, external_id="c-1", first_name="Anna", last_name="Karenina", email="anna.k@example.com",
               phone="+79161234567")
    f.customer(app, external_id="c-2", first_name="Oblonsky", last_name="Stepan", email="stiva@example.org")
    f.customer(app, external_id="c_3", first_name="Levin", email="kostya100%@example.net", phone="+79031112233")
    assert found(app, "aren") == ["c-1"]  # inside a last name
    assert found(app, "LEV") == ["c_3"]  # any case
    assert found(app, "example.org") == ["c-2"]  # part of an email
    assert found(app, "stiva@example.org") == ["c-2"]
    assert found(app, "916 123") == ["c-1"]  # phone digits with punctuation
    assert found(app, "+7 (903) 111") == ["c_3"]
    assert found(app, "c_3") == ["c_3"]  # an external id, `_` not a wildcard
    assert found(app, "c-") == []  # external ids match whole
    assert found(app, "100%") == ["c_3"]  # `%` taken literally
    assert found(app, "_") == []  # not a wildcard either
    assert found(app, "a") == ["c-1", "c-2", "c_3"]  # one letter: every match, by id
    assert found(app, "nobody") == []


def test_postgresql_answers_from_the_trigram_index(app):
    if app.engine.dialect.name != "postgresql":
        return
    f.site(app, "shop")
    f.customer(app, external_id="c-1", last_name="Karenina")
    with transaction(app.sessions) as s:
        s.execute(text("SET LOCAL enable_seqscan = off"))
        q = select(Customer.id).where(queries._search("aren"))
        plan = "\n".join(r[0] for r in s.execute(text("EXPLAIN " + str(q.compile(
            dialect=s.get_bind().dialect, compile_kwargs={"literal_binds": True})))))
    assert "ix_customers_search" in plan, plan
