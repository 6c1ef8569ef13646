"""Customers: normalised contacts, consents with time and source, edits and upserts through the service."""

from datetime import date

from sqlalchemy import select

from retento.core.bus import Event
from retento.core.db.transactions import transaction
from retento.customers import service
from tests import factories as f


def events_of(app, customer_id):
    with transaction(app.sessions) as s:
        return [(e.type, e.payload) for e in s.scalars(select(Event).where(Event.customer_id == customer_id)
                                                      .order_by(Event.id))]


def test_contacts_are_normalised_and_everything_is_kept(app):
    f.site(app)
    cid = f.customer(
        app, external_id="c1", first_name="Анна", last_name="Иванова", email="Anna.Ivanova@Example.RU",
        phone="+7 (916) 123-45-67", whatsapp_id="89161234567", telegram_id="123456789", vk_id="id42",
        birthday="1990-05-17", personal_dates={"wedding": "2015-08-01"}, timezone="Asia/Yekaterinburg",
        locale="ru-RU", custom_fields={"size": "M", "pets": 2}, tags=["vip", "vip", "b2c"],
        interests=["crm-marketing"], entry_point="lead_magnet", email_confirmed=True,
        consents={"email": {"granted": True, "source": "checkout", "at": "2026-03-01T10:00:00+03:00"},
                  "sms": {"granted": False, "source": "form"}},
    )
    with transaction(app.sessions) as s:
        c = service.get(s, cid)
        snap = service.snapshot(s, c)
    assert c.email == "anna.ivanova@example.ru"
    assert c.phone == c.whatsapp_id == "+79161234567"
    assert c.birthday == date(1990, 5, 17) and c.personal_dates == {"wedding": "2015-08-01"}
    assert snap["tags"] == ["b2c", "vip"] and snap["interests"] == ["crm-marketing"]
    assert snap["consents"]["email"]["granted"] is True and snap["consents"]["email"]["source"] == "checkout"
    assert snap["consents"]["email"]["at"].isoformat() == "2026-03-01T07:00:00+00:00"
    assert c.email_confirmed and c.email_confirmed_at == app.clock.now()
    types = [t for t, _ in events_of(app, cid)]
    assert types == ["customer_created", "subscribed", "unsubscribed", "email_confirmed"]


def test_phone_without_country_code_uses_the_sites_region(app):
    f.site(app, code="de", currency="EUR", default_region="DE", timezone="Europe/Berlin")
    cid = f.customer(app, site="de", phone="030 1234567")
    with transaction(app.sessions) as s:
        assert service.get(s, cid).phone == "+49301234567"


def test_edit_records_consent_changes_and_new_email_needs_confirmation(app, clock):
    f.site(app)
    cid = f.customer(app, email="a@example.com", email_confirmed=True,
                     consents={"email": {"granted": True, "source": "checkout"}})
    clock.advance(days=1)
    changes = f.edit_customer(app, cid, email="b@example.com",
                              consents={"email": {"granted": False, "source": "unsubscribe-link"}},
                              custom_fields={"size": "L"})
    fields = {c[0] for c in changes}
    assert {"email", "email_confirmed", "email_confirmed_at", "consents", "custom_fields"} <= fields
    types = [t for t, _ in events_of(app, cid)]
    assert types[-2:] == ["unsubscribed", "customer_changed"]
    with transaction(app.sessions) as s:
        c = service.get(s, cid)
        snap = service.snapshot(s, c)
    assert not c.email_confirmed
    assert snap["consents"]["email"] == {"granted": False, "at": clock.now(), "source": "unsubscribe-link"}


def test_upsert_by_external_id_updates_instead_of_duplicating(app):
    f.site(app)
    with transaction(app.sessions) as s:
        data = service.parse_create(s, {"site": "shop", "external_id": "c1", "first_name": "Ann"})
        c1, created1 = service.upsert(s, data=data, ctx=f.API, now=app.clock.now())
    with transaction(app.sessions) as s:
        data = service.parse_create(s, {"site": "shop", "external_id": "c1", "first_name": "Anna"})
        c2, created2 = service.upsert(s, data=data, ctx=f.API, now=app.clock.now())
    assert (created1, created2) == (True, False) and c1.id == c2.id
    with transaction(app.sessions) as s:
        assert service.get(s, c1.id).first_name == "Anna"


def test_custom_events_are_idempotent(app):
    f.site(app)
    cid = f.customer(app)
    with transaction(app.sessions) as s:
        c = service.get(s, cid)
        first = service.emit_custom_event(s, customer=c, name="cart_abandoned", payload={"sum": "10.00"},
                                          ctx=f.API, now=app.clock.now(), idempotency_key="cart-1")
    with transaction(app.sessions) as s:
        c = service.get(s, cid)
        again = service.emit_custom_event(s, customer=c, name="cart_abandoned", payload={"sum": "10.00"},
                                          ctx=f.API, now=app.clock.now(), idempotency_key="cart-1")
    assert (first, again) == (True, False)
    assert [t for t, _ in events_of(app, cid)].count("custom") == 1
