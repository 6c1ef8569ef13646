"""Building messaging test data through the public API and services."""

from __future__ import annotations

from typing import Any

from retento.core.db.transactions import transaction
from retento.messaging import service
from retento.messaging.schemas import CascadeIn, PolicyIn, PriceIn, TemplateIn
from tests import factories as f

ALL = ("email", "sms", "whatsapp", "telegram", "vk", "push")


def setup_site(app, prices: dict[str, str] | None = None, policy: dict[str, Any] | None = None) -> None:
    f.site(app, timezone="Europe/Moscow")
    prices = prices or {"email": "0.03", "whatsapp": "5.6", "sms": "3.5", "telegram": "0", "vk": "0", "push": "0"}
    with transaction(app.sessions) as s:
        now = app.clock.now()
        for ch, price in prices.items():
            service.set_price(s, site="shop", channel=ch, data=PriceIn(price=price, currency="RUB"), now=now)
        service.set_policy(s, site="shop", data=PolicyIn(**(policy or {})), now=now)


def template(app, name: str, channel: str, language: str = "ru", **kw: Any) -> int:
    kw.setdefault("body", "Здравствуйте, {{ customer.first_name }}! Баланс: {{ loyalty.balance }}")
    if channel == "email":
        kw.setdefault("subject", "Бонусы для {{ customer.first_name }}")
        kw.setdefault("html", '<html><body><p>Привет, {{ customer.first_name }}!</p>'
                              '<a href="https://shop.example/bonus?a=1&b=2">Бонусы</a></body></html>')
    with transaction(app.sessions) as s:
        return service.save_template(s, data=TemplateIn(site="shop", name=name, channel=channel,
                                                        language=language, **kw), now=app.clock.now()).id


def cascade(app, steps: list[tuple[str, str, float]], mode: str = "ordered", go_on: str = "not_read") -> int:
    data = CascadeIn(site="shop", name="c", mode=mode, steps=[
        {"channel": ch, "template": t, "wait_hours": w, "go_on": go_on} for ch, t, w in steps])
    with transaction(app.sessions) as s:
        return service.create_cascade(s, data=data, now=app.clock.now()).id


def customer(app, channels=ALL, **kw: Any) -> int:
    kw.setdefault("first_name", "Анна")
    kw.setdefault("email", f"anna{kw.get('external_id', '')}@example.com")
    kw.setdefault("phone", "+79161234567")
    kw.setdefault("telegram_id", "5551234")
    kw.setdefault("vk_id", "7770001")
    kw.setdefault("consents", {ch: {"granted": True, "source": "checkout"} for ch in channels})
    return f.customer(app, **kw)


def start(app, cascade_id: int, customer_id: int, **kw: Any) -> int:
    with transaction(app.sessions) as s:
        return service.start_cascade(s, cascade_id=cascade_id, customer_id=customer_id, now=app.clock.now(),
                                     **kw).id


def drain(app, limit: int = 100) -> int:
    total = 0
    for _ in range(limit):
        n = app.worker.tick()
        total += n
        if n == 0:
            return total
    raise AssertionError("worker did not settle")


def messages(app, **where: Any) -> list:
    from sqlalchemy import select

    from retento.messaging.models import Message

    with transaction(app.sessions) as s:
        q = select(Message).order_by(Message.id)
        for k, v in where.items():
            q = q.where(getattr(Message, k) == v)
        return list(s.scalars(q))


def run(app, run_id: int):
    from retento.messaging.models import Run

    with transaction(app.sessions) as s:
        return s.get(Run, run_id)
