"""Migration 0010 moves the trigger webhook calls into the webhooks outbox (and back on downgrade), on both
databases."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from retento.core.db.transactions import transaction
from retento.migrate import alembic_config
from retento.triggers import service
from retento.webhooks.models import WebhookDelivery

CALL = ("INSERT INTO trigger_webhook_calls (trigger_id, idempotency_key, url, secret, body, state, attempts, next_at, "
        "last_status, last_error, created_at, sent_at) VALUES (:t, :key, 'https://hooks.example.com/x', :secret, "
        "'{\"trigger\": {\"id\": 1}}', :state, :attempts, :at, :status, :error, :at, :sent)")


def test_calls_move_into_webhook_deliveries_and_back(app, clock):
    with transaction(app.sessions) as s:
        tid = service.create_trigger(s, raw={"name": "hook", "events": ["order_created"], "actions": [
            {"type": "webhook", "url": "https://hooks.example.com/x"}]}, now=clock.now()).id
    with app.engine.connect() as conn:
        cfg = alembic_config(app.engine.url.render_as_string(hide_password=False))
        cfg.attributes["connection"] = conn
        try:
            command.downgrade(cfg, "0009_trigger_misses")
            conn.execute(text(CALL), [
                {"t": tid, "key": "k-pending", "secret": "s3cret-key", "state": "pending", "attempts": 1,
                 "at": clock.now(), "status": 503, "error": "HTTP 503", "sent": None},
                {"t": tid, "key": "k-sent", "secret": None, "state": "sent", "attempts": 2, "at": clock.now(),
                 "status": 200, "error": None, "sent": clock.now()}])
            conn.commit()
            command.upgrade(cfg, "head")
            conn.commit()
        finally:
            command.upgrade(cfg, "head")
            conn.commit()
    with transaction(app.sessions) as s:
        rows = s.query(WebhookDelivery).order_by(WebhookDelivery.id).all()
        assert [(d.idempotency_key, d.trigger_id, d.subscription_id, d.status, d.attempts, d.last_status_code,
                 d.secret, d.event_type, d.payload) for d in rows] == [
            ("k-pending", tid, None, "pending", 1, 503, "s3cret-key", "trigger", {"trigger": {"id": 1}}),
            ("k-sent", tid, None, "delivered", 2, 200, None, "trigger", {"trigger": {"id": 1}})]
        assert rows[0].next_attempt_at == clock.now() and rows[1].next_attempt_at is None
        assert rows[1].delivered_at == clock.now()
    with app.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        try:
            command.downgrade(cfg, "0009_trigger_misses")
            conn.commit()
            back = conn.execute(text("SELECT idempotency_key, state, attempts FROM trigger_webhook_calls "
                                     "ORDER BY id")).all()
            assert [tuple(r) for r in back] == [("k-pending", "pending", 1), ("k-sent", "sent", 2)]
        finally:
            command.upgrade(cfg, "head")
            conn.commit()
