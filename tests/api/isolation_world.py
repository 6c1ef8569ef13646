"""Two shops with one of everything, for the site-isolation tests: site `ashop` (the caller's) and site `bshop`
(the other shop). Everything personal of bshop contains the marker `qzmark`, which nothing of ashop contains, so a
response that leaks it is found by a substring search; ids and codes the tests send (external ids, the site code,
template names) carry no marker, since an error message may repeat the caller's own input."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from retento.assist.models import Item as AssistItem, Mark as AssistMark
from retento.core.db.transactions import transaction
from retento.inbox.models import Connection, Dialog, Exclusion, Message as InboxMessage
from retento.journeys import service as journeys
from retento.loyalty import service as loyalty
from retento.loyalty.schemas import JoinIn, ProgramIn, ProgramSettings
from retento.messaging import service as messaging
from retento.messaging.models import Message
from retento.messaging.schemas import CampaignIn, CascadeIn, DeviceIn, PolicyIn, PriceIn, TemplateIn
from retento.segments import analytics, service as segments
from retento.segments.schemas import InitiativeIn, MembersIn, SegmentCreate
from retento.tasks import service as tasks
from retento.tasks.schemas import TaskCreate
from retento.triggers import service as triggers
from retento.webhooks import service as webhooks
from retento.webhooks.schemas import WebhookIn
from tests import factories as f

MARK = "qzmark"  # in every personal value of bshop (long enough not to turn up in a random secret)


@dataclass
class Shop:
    code: str
    site_id: int = 0
    customer_id: int = 0
    customer_external_id: str = ""
    order_id: int = 0
    order_external_id: str = ""
    product_id: int = 0
    template_id: int = 0
    template_name: str = ""
    cascade_id: int = 0
    campaign_id: int = 0
    segment_id: int = 0
    static_segment_id: int = 0
    task_id: int = 0
    trigger_id: int = 0
    timer_id: int = 0
    message_id: int = 0
    sub_id: int = 0
    delivery_id: int = 0
    account_id: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def journey(code: str, mark: str) -> dict[str, Any]:
    """A small journey of the shop (isolation_calls posts the other shop's one too)."""
    return {"name": f"Welcome {mark}", "site": code, "entry": {"kind": "customer_created"},
            "steps": [{"id": "hello", "type": "add_tag", "tag": f"hello-{mark}", "next": "wait"},
                      {"id": "wait", "type": "wait", "hours": 2, "next": "bye"},
                      {"id": "bye", "type": "add_tag", "tag": "bye"}]}


def _shop(app: Any, code: str, mark: str) -> Shop:
    """One shop: customer, order, product, template, cascade, campaign, segments, task, trigger with a pending
    run, message, webhook subscription, device, policy, prices, initiative, RFM scores. `mark` goes into
    every personal value."""
    shop = Shop(code)
    shop.site_id = f.site(app, code, name=f"{code.title()} Ltd", timezone="Europe/Moscow")
    shop.customer_external_id, shop.order_external_id = f"{code[0]}-c-1", f"{code[0]}-o-1"
    shop.product_id = f.product(app, f"{code[0]}-sku-1", site_code=code, name=f"Kettle {mark}")
    shop.customer_id = f.customer(
        app, site=code, external_id=shop.customer_external_id, first_name=f"Boris{mark}", last_name=f"Ivanov{mark}",
        email=f"boris.{mark}@{code}.example", tags=[f"vip{mark}"],
        consents={"email": {"granted": True, "source": "checkout"}})
    with transaction(app.sessions) as s:
        now = app.clock.now()
        messaging.set_price(s, site=code, channel="email", data=PriceIn(price="0.03", currency="RUB"), now=now)
        messaging.set_policy(s, site=code, data=PolicyIn(quiet_start=None, quiet_end=None), now=now)
        tpl = messaging.save_template(s, data=TemplateIn(
            site=code, name=f"{code[0]}-welcome", channel="email", subject=f"Hello {mark}",
            body=f"Dear {{{{ customer.first_name }}}}, {mark}"), now=now)
        shop.template_id, shop.template_name = tpl.id, tpl.name
        cascade = messaging.create_cascade(s, data=CascadeIn(site=code, name=f"Cascade {mark}", steps=[
            {"channel": "email", "template": tpl.name, "wait_hours": 24}]), now=now)
        shop.cascade_id = cascade.id
        shop.campaign_id = messaging.create_campaign(s, data=CampaignIn(
            cascade_id=cascade.id, name=f"Campaign {mark}", customer_ids=[shop.customer_id],
            start_at=now + timedelta(days=30)), now=now).id
        static = segments.create(s, data=SegmentCreate(site=code, code=f"{code[0]}-list", name=f"List {mark}",
                                                       kind="static"), now=now)
        segments.change_members(s, segment=static, data=MembersIn(customer_ids=[shop.customer_id]), add=True,
                                now=now)
        shop.static_segment_id = static.id
        shop.segment_id = segments.create(s, data=SegmentCreate(
            site=code, code=f"{code[0]}-all", name=f"All {mark}", rules={"orders": {"metric": "count", "op": "gte", "value": 1}}), now=now).id
        shop.task_id = tasks.create_task(s, data=TaskCreate(title=f"Call {mark}", customer_id=shop.customer_id),
                                         ctx=f.API, now=now).id
        shop.trigger_id = triggers.create_trigger(s, raw={
            "name": f"Welcome {mark}", "events": ["order_created"], "sites": [code], "delay": {"days": 1},
            "actions": [{"type": "create_task", "title": f"Follow up {mark}"}]}, now=now).id
        shop.sub_id = webhooks.create(s, data=WebhookIn(url=f"https://hooks.{code}.example/{mark}",
                                                        event_types=["*"], description=f"Hook {mark}"),
                                      site_ids=[shop.site_id], now=now).id
        shop.extra["device_token"] = f"device-token-of-{code}"
        messaging.register_device(s, data=DeviceIn(customer_id=shop.customer_id, token=shop.extra["device_token"]),
                                  now=now)
        analytics.record_initiative(s, data=InitiativeIn(site=code, name=f"Launch {mark}", started_at=now),
                                    source="api", now=now)
        run = messaging.start_cascade(s, cascade_id=cascade.id, customer_id=shop.customer_id, now=now)
        shop.extra["program_id"] = loyalty.set_program(s, site=code, data=ProgramIn(name=f"Club {mark}", currency="RUB", settings=ProgramSettings(
            welcome_bonus=Decimal(50))), now=now).id
        shop.extra["journey_id"] = journeys.apply(s, raw=journey(code, mark), now=now)[0].id
        shop.account_id = loyalty.join(s, data=JoinIn(site=code, customer_id=shop.customer_id), ctx=f.API, now=now)[0].id
        loyalty.credit(s, account_id=shop.account_id, amount=Decimal(10), reason=f"Sorry {mark}", idempotency_key="k",
                       ctx=f.API, now=now)
    shop.order_id = f.order(app, site=code, external_id=shop.order_external_id, number=f"{code[0]}-1001",
                            status="complete", customer={"id": shop.customer_id},
                            customer_comment=f"Leave at the door {mark}")
    _settle(app)
    with transaction(app.sessions) as s:
        now = app.clock.now()
        analytics.compute_rfm(s, site_id=shop.site_id, now=now)
        shop.message_id = s.query(Message.id).filter(Message.run_id == run.id).scalar()
        timer = triggers.pending(s, trigger_id=shop.trigger_id)[0]
        shop.timer_id, shop.extra["event_id"] = timer.id, timer.event_id  # the order's order_created event
        shop.delivery_id = webhooks.deliveries(s, subscription_id=shop.sub_id, after_id=0, limit=1)[0].id
        # the inbox: a Telegram dialog with a message, a business connection, an excluded contact
        conn = f"conn-{code}"
        s.add(Connection(id=conn, site_id=shop.site_id, user_id=f"9{shop.site_id}", user_chat_id=f"9{shop.site_id}",
                         user_name=f"Owner {mark}", can_reply=True, enabled=True, created_at=now, updated_at=now))
        d = Dialog(site_id=shop.site_id, customer_id=shop.customer_id, channel="telegram", account="",
                   peer=f"77{shop.site_id}", title=f"Chat {mark}", state="open", tags=[mark], unread=1,
                   last_message_at=now, created_at=now, updated_at=now)
        s.add(d)
        s.flush()
        s.add(InboxMessage(site_id=shop.site_id, dialog_id=d.id, direction="in", provider_id="1", kind="text",
                           text=f"Hello {mark}", sent_at=now, created_at=now))
        s.add(Exclusion(site_id=shop.site_id, channel="telegram", peer=f"66{shop.site_id}", created_at=now))
        shop.extra.update(dialog_id=d.id, connection_id=conn, peer=f"66{shop.site_id}")
        # the assist: a past ticket (a zero vector: found by its words) and a mark of a suggestion
        s.add(AssistItem(site_id=shop.site_id, kind="ticket", external_id=f"T-{mark}", title=f"Return {mark}",
                         body=f"How do I return an order {mark}", answer=f"From the card {mark}", tags=[],
                         language="en", meta={}, vector=bytes(384 * 4), embedder="e5-small", rev=1, created_at=now,
                         updated_at=now))
        s.add(AssistMark(site_id=shop.site_id, ticket=f"T-{mark}", action="used", sources=[mark],
                         idempotency_key=f"k-{mark}", created_at=now))
    return shop


def _settle(app: Any) -> None:
    for _ in range(50):
        if app.worker.tick() == 0:
            return
    raise AssertionError("the worker did not settle")


def build(app: Any) -> tuple[Shop, Shop]:
    """(ashop, bshop): the caller's shop and the other one."""
    return _shop(app, "ashop", "aa"), _shop(app, "bshop", MARK)
