"""Status groups and the statuses every new installation starts with (RetailCRM's codes where they exist)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from retento.orders.models import Status, StatusGroup

# code, English, Russian
GROUPS = [
    ("new", "New", "Новый"),
    ("approval", "Approval", "Согласование"),
    ("assembling", "Assembling", "Комплектация"),
    ("delivery", "Delivery", "Доставка"),
    ("complete", "Complete", "Выполнен"),
    ("cancel", "Cancelled", "Отменён"),
]

# code, group, English, Russian
STATUSES = [
    ("new", "new", "New", "Новый"),
    ("availability-confirmed", "approval", "Availability confirmed", "Наличие подтверждено"),
    ("client-confirmed", "approval", "Confirmed with customer", "Согласовано с клиентом"),
    ("prepayed", "approval", "Prepaid", "Предоплата поступила"),
    ("send-to-assembling", "assembling", "Sent to assembling", "Передано в комплектацию"),
    ("assembling", "assembling", "Assembling", "Комплектуется"),
    ("assembling-complete", "assembling", "Assembled", "Укомплектован"),
    ("ready-for-delivery", "delivery", "Ready for delivery", "Готов к доставке"),
    ("send-to-delivery", "delivery", "Handed to delivery", "Передан в доставку"),
    ("delivering", "delivery", "Delivering", "Доставляется"),
    ("redirect", "delivery", "Delivery rescheduled", "Доставка перенесена"),
    ("received", "complete", "Received by customer", "Получен покупателем"),
    ("complete", "complete", "Complete", "Выполнен"),
    ("no-call", "cancel", "No answer", "Недозвон"),
    ("no-product", "cancel", "Out of stock", "Нет в наличии"),
    ("already-buyed", "cancel", "Bought elsewhere", "Купил в другом месте"),
    ("delyvery-did-not-suit", "cancel", "Delivery did not suit", "Не устроила доставка"),
    ("prices-did-not-suit", "cancel", "Price did not suit", "Не устроила цена"),
    ("returned", "cancel", "Returned", "Возврат"),
    ("cancel-other", "cancel", "Cancelled, other reason", "Отменён по другой причине"),
]


def ensure_default_statuses(session: Session) -> int:
    """Insert the built-in status groups and statuses that are missing; returns how many were added."""
    have_groups = set(session.scalars(select(StatusGroup.code)))
    have = set(session.scalars(select(Status.code)))
    added = 0
    for i, (code, name, name_ru) in enumerate(GROUPS):
        if code not in have_groups:
            session.add(StatusGroup(code=code, name=name, name_ru=name_ru, ordering=(i + 1) * 10))
            added += 1
    session.flush()
    for i, (code, group, name, name_ru) in enumerate(STATUSES):
        if code not in have:
            session.add(Status(code=code, group_code=group, name=name, name_ru=name_ru, ordering=(i + 1) * 10,
                               active=True, builtin=True))
            added += 1
    session.flush()
    return added
