"""Migration 0025 adds customers.labels and fills it from the tag, interest and consent rows, on both databases;
down and up again."""

from __future__ import annotations

from alembic import command
from sqlalchemy import select

from retento.core.db.transactions import transaction
from retento.customers.models import Customer
from retento.migrate import alembic_config
from retento.segments import service
from tests import factories as f


def test_upgrade_fills_labels_from_the_rows(app):
    f.site(app)
    a = f.customer(app, tags=["vip", "b2b"], interests=["tea"], consents={
        "email": {"granted": True}, "sms": {"granted": False}})
    b = f.customer(app)
    c = f.customer(app, consents={"whatsapp": {"granted": True}})
    with app.engine.connect() as conn:
        cfg = alembic_config(app.engine.url.render_as_string(hide_password=False))
        cfg.attributes["connection"] = conn
        try:
            command.downgrade(cfg, "0024_customer_search_trgm")
            conn.commit()
            command.upgrade(cfg, "head")
            conn.commit()
        finally:
            command.upgrade(cfg, "head")
            conn.commit()
    with transaction(app.sessions) as s:
        assert {cid: labels for cid, labels in s.execute(select(Customer.id, Customer.labels)).all()} == {
            a: ["consent:email", "interest:tea", "tag:b2b", "tag:vip"], b: [], c: ["consent:whatsapp"]}
        got = service.preview(s, site="shop", raw_rules={"all": [{"tags": {"any": ["vip"]}},
                                                                 {"consent": {"channel": "email"}}]},
                              now=app.clock.now())
        assert got["count"] == 1 and [x["id"] for x in got["sample"]] == [a]
