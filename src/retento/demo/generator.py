"""The demo shop as data: sites, managers, catalogue, customers and orders with their status progressions.

Pure and deterministic: the same seed and `now` give the same shop (one `random.Random(seed)`, no global
state, no I/O). Every record is the input dict of a service schema (`SiteCreate`, `ManagerCreate`,
`ProductIn`, `CustomerCreate`, `OrderCreate`, `OrderEdit`), so tests and benchmarks can reuse it.
`manager_id` values are 1-based positions in `Shop.managers`; the loader maps them to stored ids.
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from itertools import accumulate
from typing import Any

from retento.core.money import round_money
from retento.demo import data as d
from retento.orders.statuses import STATUSES


class Weighted:
    """A weighted choice with its cumulative weights computed once (random.choices recomputes them per call)."""

    def __init__(self, pairs: list[tuple[Any, float]]) -> None:
        self.values = [v for v, _ in pairs]
        self.cum = list(accumulate(w for _, w in pairs))

    def __call__(self, rng: random.Random) -> Any:
        return self.values[bisect(self.cum, rng.random() * self.cum[-1])]


GROUP = {code: group for code, group, _en, _ru in STATUSES}
GROUP_ORDER = ["new", "approval", "assembling", "delivery", "complete", "cancel"]
# Orders younger than DETAILED_DAYS go through every status; up to OUTCOME_DAYS old they change once, to
# their outcome; older ones are recorded with their outcome (status changes are the costly part of loading).
DETAILED_DAYS = 21
OUTCOME_DAYS = 90
YEARS = 2
HOURS = Weighted(list(enumerate([1, 1, 1, 1, 2, 4, 6, 8, 9, 9, 9, 8, 8, 8, 9, 10, 10, 9, 7, 5, 3, 2, 1, 1])))
ENTRY_POINTS = Weighted([("purchase", 40), ("registration", 25), ("subscription", 12), ("lead_magnet", 8),
                         ("callback", 8), ("chat", 7)])
CANCEL = Weighted([("no-call", 25), ("prices-did-not-suit", 15), ("already-buyed", 15),
                   ("delyvery-did-not-suit", 10), ("no-product", 15), ("cancel-other", 20)])
OUTCOME = Weighted([("complete", 78), ("cancel", 18), ("returned", 4)])
LINES = Weighted([(1, 55), (2, 25), (3, 12), (4, 8)])
QUANTITY = Weighted([(1, 75), (2, 18), (3, 7)])
ZONES = {"RU": Weighted(d.RU_ZONES), "INTL": Weighted(d.INTL_ZONES)}
SITE_WEIGHTS = Weighted([(s[0], s[6]) for s in d.SITES])
DELIVERY = {"uyut": Weighted([("courier", 50), ("pickup", 30), ("russian-post", 10), ("cdek", 10)]),
            "cozyhome": Weighted([("dhl", 50), ("standard", 35), ("pickup", 15)]),
            "flora": Weighted([("courier", 90), ("pickup", 10)])}
PAYMENT = {"cozyhome": Weighted([("card", 70), ("paypal", 30)]),
           "ru": Weighted([("card-online", 45), ("sbp", 20), ("cash", 35)])}
USD_RATE = Decimal("1.08")


@dataclass
class Step:
    """One change of an order: `changes` is an OrderEdit input; `manager` made it (None: a robot did)."""

    at: datetime
    changes: dict[str, Any]
    manager: int | None


@dataclass
class DemoOrder:
    data: dict[str, Any]  # OrderCreate input
    steps: list[Step] = field(default_factory=list)

    @property
    def status(self) -> str:
        return next((s.changes["status"] for s in reversed(self.steps) if "status" in s.changes),
                    self.data.get("status", "new"))


@dataclass
class DemoProgram:
    """A site's loyalty program: launched at `launch` with `program` (a ProgramIn input); `members` join at their
    time (customer external id, joined at); the orders named in `pay_with_points` are paid in part with points
    (as much as the member's balance and the program's limits allow, when the order is created)."""

    site: str
    launch: datetime
    program: dict[str, Any]
    members: list[tuple[str, datetime]]
    pay_with_points: set[str]


@dataclass
class Shop:
    sites: list[dict[str, Any]]
    managers: list[dict[str, Any]]
    products: list[dict[str, Any]]
    customers: list[dict[str, Any]]
    orders: list[DemoOrder]
    loyalty: list[DemoProgram] = field(default_factory=list)


def generate(*, seed: int = 1, customers: int = 2000, orders: int = 10000, now: datetime) -> Shop:
    """A shop with `customers` customers and `orders` orders over the two years before `now`."""
    rng = random.Random(seed)
    start = now - timedelta(days=365 * YEARS)
    sites = [{"code": c, "name": n, "currency": cur, "currencies": accepted, "timezone": tz, "default_region": r,
              "url": f"https://{c}.example.com"} for c, n, cur, accepted, tz, r, _ in d.SITES]
    managers = [{"name": n, "email": e} for n, e in d.MANAGERS]
    products = [{"site": site, "offer_id": o, "name": n, "category": c, "kind": k, "price": p}
                for site, rows in d.CATALOGUE.items() for o, n, c, k, p in rows]
    people = [_customer(rng, n, start, now) for n in range(customers)]
    shop = Shop(sites, managers, products, people, _orders(rng, people, orders, start, now))
    shop.loyalty = [_loyalty(random.Random(f"{seed}:loyalty"), shop, now)]  # its own dice: the shop is unchanged
    return shop


LOYALTY_SITE = "uyut"
LOYALTY_DAYS = 180  # the program was launched this long before now


def _loyalty(rng: random.Random, shop: Shop, now: datetime) -> DemoProgram:
    """Уютный дом's program, launched LOYALTY_DAYS ago: most buyers join at their first order after the launch,
    some at sign-up or later; about a third of members' completed orders are paid in part with points."""
    launch = (now - timedelta(days=LOYALTY_DAYS)).replace(hour=9, minute=0, second=0, microsecond=0)
    program = {"name": "Уютный клуб", "currency": "RUB", "settings": {
        "percent": "3", "level_period_days": 365, "activation_days": 14, "expiry_days": 90,
        "levels": [{"code": "bronze", "name": "Бронза", "threshold": "0", "percent": "3"},
                   {"code": "silver", "name": "Серебро", "threshold": "30000", "percent": "5"},
                   {"code": "gold", "name": "Золото", "threshold": "100000", "percent": "7"}],
        "categories": {"Услуги": {"percent": "1"}},
        "multipliers": [{"name": "Неделя уюта", "starts_at": (launch + timedelta(days=60)).isoformat(),
                         "ends_at": (launch + timedelta(days=67)).isoformat(), "multiplier": "2"}],
        "welcome_bonus": "300", "max_redeem_share": "0.3", "min_order_sum": "1000", "warn_days": [7],
        "balance_thresholds": ["1000"]}}
    first_order: dict[str, datetime] = {}
    for o in shop.orders:
        if o.data["site"] == LOYALTY_SITE and o.data["created_at"] >= launch:
            first_order.setdefault(o.data["customer"]["external_id"], o.data["created_at"])
    members: dict[str, datetime] = {}
    for c in shop.customers:
        if c["site"] != LOYALTY_SITE:
            continue
        ext, created = c["external_id"], c["created_at"]
        if ext in first_order and rng.random() < 0.6:  # at the checkout of their first order since the launch
            members[ext] = max(first_order[ext] - timedelta(minutes=rng.randint(1, 20)), created, launch)
        elif created >= launch and rng.random() < 0.3:  # at sign-up
            members[ext] = created + timedelta(minutes=rng.randint(1, 10))
        elif created < launch and rng.random() < 0.05:  # some day after the launch
            members[ext] = _moment(rng, launch, now - timedelta(hours=1))
    pay = {o.data["number"] for o in shop.orders
           if o.data["site"] == LOYALTY_SITE and GROUP.get(o.status) == "complete"
           and o.data["customer"]["external_id"] in members
           and o.data["created_at"] > members[o.data["customer"]["external_id"]] and rng.random() < 0.35}
    return DemoProgram(LOYALTY_SITE, launch, program, sorted(members.items(), key=lambda m: (m[1], m[0])), pay)


def _moment(rng: random.Random, start: datetime, end: datetime, skew: float = 1.0) -> datetime:
    """A time between start and end, in shop hours; skew < 1 puts more of them near the end (a growing shop)."""
    days = max((end - start).days, 0)
    day = start + timedelta(days=int(days * rng.random() ** skew))
    at = day.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        hours=HOURS(rng), seconds=rng.randrange(3600))
    return min(max(at, start), end)


def _customer(rng: random.Random, n: int, start: datetime, now: datetime) -> dict[str, Any]:
    site = SITE_WEIGHTS(rng)
    russian_site = site in d.RUSSIAN_SITES
    lang = "ru" if rng.random() < (0.92 if russian_site else 0.15) else "en"
    female = rng.random() < (0.7 if site == "flora" else 0.55)
    created = _moment(rng, start, now - timedelta(hours=2), skew=0.8)
    c: dict[str, Any] = {"site": site, "external_id": f"{site[:2].upper()}-C{n + 1:06d}", "created_at": created,
                         "locale": lang}
    if lang == "ru":
        c["first_name"] = rng.choice(d.RU_FEMALE if female else d.RU_MALE)
        c["last_name"] = _russian_surname(rng.choice(d.RU_SURNAMES), female)
        if rng.random() < 0.7:
            c["patronymic"] = rng.choice(d.RU_PATRONYMIC)[1 if female else 0]
    else:
        c["first_name"] = rng.choice(d.EN_FEMALE if female else d.EN_MALE)
        c["last_name"] = rng.choice(d.EN_SURNAMES)
    region = "RU" if russian_site or (lang == "ru" and rng.random() < 0.5) else rng.choice(["DE", "DE", "GB"])
    if rng.random() < 0.85:
        c["email"] = _email(rng, c["first_name"], c["last_name"])
    if rng.random() < 0.8 or "email" not in c:
        c["phone"] = _phone(rng, region)
    if rng.random() < (0.35 if russian_site else 0.1):
        c["telegram_id"] = str(rng.randrange(10**8, 7 * 10**9))
    if "phone" in c and rng.random() < 0.3:
        c["whatsapp_id"] = c["phone"]
    if russian_site and rng.random() < 0.2:
        c["vk_id"] = f"id{rng.randrange(10**5, 9 * 10**8)}"
    c["timezone"] = ZONES["RU" if region == "RU" else "INTL"](rng)
    if rng.random() < 0.75:
        c["birthday"] = date(now.year - rng.randint(18, 75), rng.randint(1, 12), rng.randint(1, 28))
    if rng.random() < 0.15:
        key = rng.choice(["wedding", "spouse_birthday", "child_birthday", "mother_birthday"])
        c["personal_dates"] = {key: date(now.year - rng.randint(1, 30), rng.randint(1, 12), rng.randint(1, 28))}
    c["entry_point"] = ENTRY_POINTS(rng)
    c["consents"] = _consents(rng, c, created, now)
    if "email" in c:
        c["email_confirmed"] = rng.random() < 0.55
    if rng.random() < 0.25:
        c["tags"] = rng.sample(d.TAGS[lang], rng.randint(1, 2))
    if rng.random() < 0.5:
        interests = list(d.INTERESTS[site].values())
        c["interests"] = rng.sample(interests, rng.randint(1, min(3, len(interests))))
    if rng.random() < 0.2:
        c["manager_id"] = rng.choice(d.SITE_MANAGERS[site])
    if russian_site and rng.random() < 0.3:
        c["custom_fields"] = {"loyalty_card": f"{site[:2].upper()}-{rng.randrange(10**6):06d}"}
    if rng.random() < 0.1:
        c.setdefault("custom_fields", {})["preferred_contact"] = rng.choice(["phone", "email", "messenger"])
    return c


def _russian_surname(male: str, female: bool) -> str:
    if not female:
        return male
    return male[:-2] + "ая" if male.endswith("ий") else male + "а"


def _email(rng: random.Random, first: str, last: str) -> str:
    def ascii_(text: str) -> str:
        text = text.lower()
        for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
            text = text.replace(a, b)
        text = "".join(d.TRANSLIT.get(ch, ch) for ch in text)
        return "".join(ch for ch in text if ch.isascii() and ch.isalnum())

    style = rng.randrange(3)
    local = (f"{ascii_(first)}.{ascii_(last)}" if style == 0 else f"{ascii_(first)[0]}{ascii_(last)}" if style == 1
             else f"{ascii_(last)}{rng.randrange(1960, 2008)}")
    return f"{local}{rng.randrange(100) if rng.random() < 0.4 else ''}@{rng.choice(d.EMAIL_DOMAINS)}"


def _phone(rng: random.Random, region: str) -> str:
    if region == "RU":
        return f"+7{rng.choice(d.RU_MOBILE)}{rng.randrange(10**7):07d}"
    if region == "DE":
        prefix, digits = rng.choice(d.DE_MOBILE)
        return f"+49{prefix}{rng.randrange(10**digits):0{digits}d}"
    return f"+44{rng.choice(d.GB_MOBILE)}{rng.randrange(10**6):06d}"


def _consents(rng: random.Random, c: dict[str, Any], created: datetime, now: datetime) -> dict[str, Any]:
    channels = {"email": "email" in c, "sms": "phone" in c, "whatsapp": "whatsapp_id" in c,
                "telegram": "telegram_id" in c, "vk": "vk_id" in c, "push": True}
    shares = {"email": 0.75, "sms": 0.4, "whatsapp": 0.7, "telegram": 0.8, "vk": 0.5, "push": 0.2}
    out = {}
    for channel, possible in channels.items():
        if not possible or rng.random() >= shares[channel]:
            continue
        granted = rng.random() < 0.85
        at = created + timedelta(minutes=rng.randint(1, 60)) if granted else _moment(rng, created, now)
        out[channel] = {"granted": granted, "at": min(at, now), "source": rng.choice(d.CONSENT_SOURCES)}
    return out


def _orders(rng: random.Random, people: list[dict[str, Any]], count: int, start: datetime,
            now: datetime) -> list[DemoOrder]:
    if not people or not count:
        return []
    leads = {"subscription", "lead_magnet", "chat", "callback"}
    weights = [0.0 if p["entry_point"] in leads and rng.random() < 0.5 else min(rng.paretovariate(1.2), 12.0)
               for p in people]
    if not any(weights):
        weights = [1.0] * len(people)
    by_time = sorted(range(len(people)), key=lambda n: people[n]["created_at"])
    since = [people[n]["created_at"] + timedelta(minutes=30) for n in by_time]
    cum = list(accumulate(weights[n] for n in by_time))
    timed = []
    for n in range(count):
        at = _moment(rng, since[0], now - timedelta(minutes=1), skew=0.8)
        known = bisect(since, at)  # customers who had signed up by then
        if known == 0 or cum[known - 1] == 0:
            known = max(known, 1)
            at = max(at, since[0])
        pick = bisect(cum, rng.random() * cum[known - 1], hi=known - 1) if cum[known - 1] else rng.randrange(known)
        timed.append((at, n, by_time[pick]))
    first: dict[int, int] = {}
    for i, (at, _n, owner) in enumerate(timed):
        if owner not in first or at < timed[first[owner]][0]:
            first[owner] = i
    for owner, i in first.items():
        if people[owner]["entry_point"] == "purchase":  # they appeared by buying: the first order is at sign-up
            timed[i] = (people[owner]["created_at"] + timedelta(minutes=rng.randint(2, 40)), timed[i][1], owner)
    for n, person in enumerate(people):
        if person["entry_point"] == "purchase" and n not in first:
            person["entry_point"] = "registration"
    timed.sort()
    numbers = {code: 1000 * (i + 1) for i, (code, *_rest) in enumerate(d.SITES)}
    out = []
    for at, _n, owner in timed:
        person = people[owner]
        site = person["site"]
        numbers[site] += 1
        out.append(_order(rng, person, f"{site[:2].upper()}-{numbers[site]}", at, now))
    forced = max(8, count // 250)  # the newest orders stand in every open group, whatever the dice said
    for i, order in enumerate(out[-forced:]):
        _hold(order, GROUP_ORDER[i % 4], now)
    for order in out[:-forced]:
        if order.data["created_at"] < now - timedelta(days=OUTCOME_DAYS):
            _settle(order)
    return out


def _order(rng: random.Random, person: dict[str, Any], number: str, at: datetime, now: datetime) -> DemoOrder:
    site = person["site"]
    currency = "USD" if site == "cozyhome" and rng.random() < 0.2 else None
    items = _items(rng, site, person.get("interests") or [], currency)
    goods = any(i["kind"] == "product" for i in items)
    items_total = sum((round_money(Decimal(i["price"]) * i["quantity"]) - Decimal(i.get("discount", "0"))
                       for i in items), Decimal(0))
    order: dict[str, Any] = {"site": site, "external_id": number, "number": number, "created_at": at,
                             "customer": {"external_id": person["external_id"]}, "items": _plain(items)}
    if currency:
        order["currency"] = currency
    discount = Decimal(0)
    if rng.random() < 0.08:
        discount = (items_total * Decimal("0.05")).quantize(Decimal(1), rounding=ROUND_DOWN)
        order["discount_total"] = str(discount)
    delivery = _delivery(rng, site, at, items_total, goods, person.get("locale", "ru"))
    order["delivery"] = delivery
    total = items_total - discount + Decimal(delivery["cost"])
    pay_type, paid_now = _payment(rng, site)
    order["payment"] = ({"type": pay_type, "status": "paid", "paid_amount": str(total)} if paid_now
                        else {"type": pay_type, "status": "not-paid"})
    manager = rng.choice(d.SITE_MANAGERS[site])
    if rng.random() < 0.3:
        order["manager_id"] = manager
    if rng.random() < 0.1:
        order["customer_comment"] = rng.choice(d.COMMENTS["ru" if site in d.RUSSIAN_SITES else "en"])
    demo = DemoOrder(order)
    demo.steps = _progress(rng, site, at, now, goods=goods, paid=paid_now, total=total, manager=manager,
                           assign="manager_id" not in order, pickup=delivery["type"] == "pickup")
    return demo


def _plain(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**i, "quantity": str(i["quantity"])} for i in items]


def _items(rng: random.Random, site: str, interests: list[str], currency: str | None) -> list[dict[str, Any]]:
    rows = d.CATALOGUE[site]
    goods = [r for r in rows if r[3] == "product"]
    services = {r[1]: r for r in rows if r[3] == "service"}
    liked = {cat for cat, code in d.INTERESTS[site].items() if code in interests}
    chosen: list[tuple[str, ...]] = []
    if site == "uyut" and rng.random() < 0.03:  # a service on its own
        chosen.append(services[rng.choice(["Сборка мебели", "Установка светильника"])])
    else:
        for _ in range(LINES(rng)):
            pool = [r for r in goods if r[2] in liked] if liked and rng.random() < 0.6 else goods
            row = rng.choice(pool or goods)
            if row not in chosen:
                chosen.append(row)
        chosen += _services(rng, site, {r[2] for r in chosen}, services)
    out = []
    for offer, _name, _category, kind, price in chosen:
        quantity = 1 if kind == "service" else QUANTITY(rng)
        unit = Decimal(price) if currency is None else round_money(Decimal(price) * USD_RATE)
        item: dict[str, Any] = {"offer_id": offer, "quantity": quantity, "price": str(unit), "kind": kind}
        if kind == "product" and rng.random() < 0.08:
            step = Decimal(1) if site in d.RUSSIAN_SITES else Decimal("0.1")
            share = Decimal(rng.randint(5, 15)) / 100
            item["discount"] = str((unit * quantity * share).quantize(step, rounding=ROUND_DOWN))
        out.append(item)
    return out


def _services(rng: random.Random, site: str, categories: set[str], services: dict[str, tuple]) -> list[tuple]:
    wanted = []
    if site == "uyut":
        wanted = [("Сборка мебели", 0.5 if "Мебель" in categories else 0), ("Подъём на этаж",
                  0.15 if "Мебель" in categories else 0), ("Установка светильника",
                  0.3 if "Освещение" in categories else 0), ("Подарочная упаковка", 0.08)]
    elif site == "cozyhome":
        wanted = [("Gift wrapping", 0.1), ("Furniture assembly", 0.4 if "Furniture" in categories else 0),
                  ("Extended warranty, 2 years", 0.08 if categories & {"Furniture", "Lighting"} else 0)]
    elif site == "flora":
        wanted = [("Открытка с текстом", 0.35), ("Доставка ко времени", 0.25), ("Фотоотчёт о вручении", 0.15)]
    return [services[name] for name, p in wanted if rng.random() < p]


def _delivery(rng: random.Random, site: str, at: datetime, items_total: Decimal, goods: bool,
              lang: str) -> dict[str, Any]:
    kind = DELIVERY[site](rng)
    if site == "uyut":
        cost = {"courier": "0" if items_total >= 5000 else "390", "pickup": "0", "russian-post": "350",
                "cdek": "290"}[kind]
    elif site == "cozyhome":
        cost = {"dhl": "0" if items_total >= 150 else "9.90", "standard": "4.90", "pickup": "0"}[kind]
    else:
        cost = "350" if kind == "courier" else "0"
    if not goods:
        kind, cost = "none", "0"
    days = (0 if rng.random() < 0.6 else 1) if site == "flora" else rng.randint(1, 5)
    out: dict[str, Any] = {"type": kind, "cost": cost, "date": (at + timedelta(days=days)).date()}
    if kind not in ("pickup", "none"):
        city, streets = rng.choice(d.CITIES["RU" if site in d.RUSSIAN_SITES else "INTL"])
        out["address"] = {"city": city, "street": rng.choice(streets), "building": str(rng.randint(1, 120))}
        if lang == "ru" and rng.random() < 0.7:
            out["address"]["flat"] = str(rng.randint(1, 300))
    return out


def _payment(rng: random.Random, site: str) -> tuple[str, bool]:
    if site == "cozyhome":
        return PAYMENT["cozyhome"](rng), rng.random() < 0.9
    kind = PAYMENT["ru"](rng)
    return kind, kind != "cash" and rng.random() < 0.85


# status, probability of passing through it, gap before it in hours (min, max), made by a robot
PATH = [
    ("availability-confirmed", 0.5, (0.2, 6), False),
    ("client-confirmed", 1.0, (0.2, 12), False),
    ("send-to-assembling", 0.6, (0.5, 8), True),
    ("assembling", 0.3, (0.5, 12), False),
    ("assembling-complete", 1.0, (1, 24), False),
    ("ready-for-delivery", 0.7, (0.2, 6), False),
    ("send-to-delivery", 0.8, (1, 12), False),
    ("delivering", 0.4, (1, 24), False),
    ("redirect", 0.03, (12, 48), False),
    ("received", 0.6, (2, 72), False),
    ("complete", 1.0, (2, 72), True),
]


def _progress(rng: random.Random, site: str, at: datetime, now: datetime, *, goods: bool, paid: bool,
              total: Decimal, manager: int, assign: bool, pickup: bool) -> list[Step]:
    """The statuses an order went through, in time order, up to `now`."""
    outcome = OUTCOME(rng)
    speed = 6.0 if site == "flora" else 1.0
    path = [(s, p, gaps, robot) for s, p, gaps, robot in PATH
            if goods or GROUP[s] in ("approval", "complete")]
    if pickup:
        path = [row for row in path if row[0] not in ("send-to-delivery", "delivering", "redirect")]
    steps: list[Step] = []
    t = at
    stop = rng.randint(0, 3) if outcome == "cancel" else None
    for i, (status, p, (lo, hi), robot) in enumerate(path):
        if stop is not None and i >= stop:
            break
        if p < 1.0 and rng.random() >= p:
            continue
        if status == "complete" and steps and steps[-1].changes["status"] == "received" and rng.random() < 0.15:
            break  # some shops leave delivered orders at "received by customer"
        t += timedelta(hours=rng.uniform(lo, hi) / speed)
        changes: dict[str, Any] = {"status": status}
        if GROUP[status] == "complete" and not paid:
            changes["payment"] = {"status": "paid", "paid_amount": str(total)}
            paid = True
        steps.append(Step(t, changes, None if robot else manager))
    if outcome == "cancel":
        t += timedelta(hours=rng.uniform(0.5, 48) / speed)
        steps.append(Step(t, {"status": CANCEL(rng)}, manager))
    elif outcome == "returned":
        t += timedelta(days=rng.uniform(3, 14))
        steps.append(Step(t, {"status": "returned", "payment": {"status": "refunded"}}, manager))
    if assign and steps:
        steps[0].changes["manager_id"] = manager
    if at < now - timedelta(days=DETAILED_DAYS):
        steps = _outcome_only(steps)
    return [s for s in steps if s.at <= now]


def _settle(order: DemoOrder) -> None:
    """Record an old order with its outcome: its steps' changes go into the order itself."""
    for step in order.steps:
        for key, value in step.changes.items():
            old = order.data.get(key)
            order.data[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
    order.steps = []


def _outcome_only(steps: list[Step]) -> list[Step]:
    """Old orders: only the final status changes are replayed, carrying what the skipped steps changed."""
    final = [s for s in steps if GROUP.get(s.changes.get("status", ""), "") in ("complete", "cancel")]
    keep = final[-2:] if final and final[-1].changes.get("status") == "returned" else final[-1:]
    if not keep:
        return steps[-1:]
    carried: dict[str, Any] = {}
    for s in steps[: steps.index(keep[0])]:
        carried.update({k: v for k, v in s.changes.items() if k != "status"})
    keep[0].changes = {**carried, **keep[0].changes}
    return keep


def _hold(order: DemoOrder, group: str, now: datetime) -> None:
    """Keep an order open in `group`: its steps up to that group, spread between its creation and now."""
    limit = GROUP_ORDER.index(group)
    steps = [s for s in order.steps if GROUP_ORDER.index(GROUP[s.changes["status"]]) <= limit]
    created = order.data["created_at"]
    if group != "new" and not any(GROUP[s.changes["status"]] == group for s in steps):
        steps.append(Step(created, {"status": next(c for c, g in GROUP.items() if g == group)}, None))
    span = (now - created) / (len(steps) + 1)
    for i, s in enumerate(steps, start=1):
        s.at = created + span * i
    order.steps = steps
