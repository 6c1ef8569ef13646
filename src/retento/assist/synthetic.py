"""A synthetic labelled set in Russian and English (pure, seeded): documentation pages with a section per support
topic, past tickets asked in several phrasings with the topic's answer, new tickets asked in held-out phrasings
(labelled with the relevant past tickets, section, task and reference answer), known near-duplicates,
development tasks, and shop catalogues of the twelve industries. Used by tests, `retento assist eval` and
`retento bench assist`."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from retento.assist.industry import INDUSTRIES

DOCS_URL = "https://docs.retento.example"


@dataclass(frozen=True)
class Topic:
    key: str
    heading: dict[str, str]
    doc: dict[str, str]
    answer: dict[str, str]
    task: str
    asks: dict[str, list[str]]  # the last phrasing of each language is held out for the new tickets


TOPICS = (
    Topic("order-return",
          {"en": "Returning an order", "ru": "Возврат заказа"},
          {"en": "An order is returned from its card: choose the items, the reason, and press Return. "
                 "The refund goes to the customer's payment method.",
           "ru": "Заказ возвращают из карточки заказа: выберите товары, причину и нажмите «Вернуть». "
                 "Деньги возвращаются на способ оплаты покупателя."},
          {"en": "Open the order card, choose the items and the reason, then press Return; the refund goes back "
                 "to the payment method within 3 days.",
           "ru": "Откройте карточку заказа, выберите товары и причину и нажмите «Вернуть»; деньги вернутся на "
                 "способ оплаты в течение 3 дней."},
          "Returns: partial return of an order with several items",
          {"en": ["How do I return order {n}?", "I want to send back the items of order {n}",
                  "Customer asks for a refund for order {n}, how to process the return?",
                  "Need to make a return for {n}, the client does not want the goods"],
           "ru": ["Как оформить возврат заказа {n}?", "Клиент хочет вернуть товары из заказа {n}",
                  "Покупатель просит вернуть деньги за заказ {n}, как сделать возврат?",
                  "Нужно сделать возврат по заказу {n}, товар не подошёл"]}),
    Topic("custom-field-type",
          {"en": "Custom field types", "ru": "Типы пользовательских полей"},
          {"en": "A custom field's type is fixed when it is created and cannot be changed. Create a new field "
                 "of the type you need and copy the values.",
           "ru": "Тип пользовательского поля задаётся при создании и не меняется. Создайте новое поле нужного "
                 "типа и перенесите значения."},
          {"en": "The type of a custom field cannot be changed after it is created: create a new field with the "
                 "right type and copy the values into it.",
           "ru": "Тип пользовательского поля после создания изменить нельзя: создайте новое поле нужного типа и "
                 "перенесите в него значения."},
          "Custom fields: allow converting a string field to a number",
          {"en": ["Can I change the type of custom field {w}?", "How to switch custom field {w} from text to number",
                  "The custom field {w} has a wrong type, can it be changed?",
                  "We made field {w} a string by mistake and need it to be a date"],
           "ru": ["Можно ли поменять тип пользовательского поля {w}?",
                  "Как изменить тип поля {w} с текста на число",
                  "У пользовательского поля {w} неправильный тип, можно исправить?",
                  "Мы по ошибке сделали поле {w} строкой, а нужна дата"]}),
    Topic("tag-condition",
          {"en": "Checking tags in conditions", "ru": "Проверка тегов в условиях"},
          {"en": "To check whether a customer has a tag in a trigger condition, use `tags.contains('vip')`. "
                 "Comparing the whole list with == does not work.",
           "ru": "Чтобы проверить тег клиента в условии триггера, используйте `tags.contains('vip')`. "
                 "Сравнение всего списка через == не работает."},
          {"en": "Check the tag with `tags.contains('vip')` in the trigger condition; comparing the list with == "
                 "never matches.",
           "ru": "Проверяйте тег через `tags.contains('vip')` в условии триггера; сравнение списка через == не "
                 "срабатывает."},
          "Triggers: condition editor should suggest tags.contains",
          {"en": ["How do I check that the customer has tag {w} in a trigger?",
                  "Trigger condition on tag {w} does not fire", "My condition tags == {w} never matches, why?",
                  "What is the right way to test for a tag like {w} in trigger rules"],
           "ru": ["Как в триггере проверить, что у клиента есть тег {w}?", "Условие по тегу {w} не срабатывает",
                  "Условие tags == {w} никогда не выполняется, почему?",
                  "Как правильно проверять тег {w} в условиях триггера"]}),
    Topic("webhook-events",
          {"en": "Webhook events", "ru": "События вебхуков"},
          {"en": "Webhooks deliver the events order_created, order_changed, customer_created and "
                 "customer_changed. Subscribe in Settings, Webhooks.",
           "ru": "Вебхуки доставляют события order_created, order_changed, customer_created и customer_changed. "
                 "Подписка в разделе Настройки, Вебхуки."},
          {"en": "Subscribe to order_changed in Settings, Webhooks: it is sent on every change of an order.",
           "ru": "Подпишитесь на событие order_changed в Настройки, Вебхуки: оно приходит при каждом изменении "
                 "заказа."},
          "Webhooks: send the changed fields with order_changed",
          {"en": ["Which webhook tells me an order changed? {n}", "How to get notified when order {n} is updated",
                  "I need a callback when an order status changes, like for {n}",
                  "Is there an event for order modifications? we track {n}"],
           "ru": ["Какой вебхук приходит при изменении заказа? {n}", "Как узнать, что заказ {n} обновился",
                  "Нужно уведомление при смене статуса заказа, например {n}",
                  "Есть ли событие на изменение заказа? следим за {n}"]}),
    Topic("password-reset",
          {"en": "Resetting a password", "ru": "Сброс пароля"},
          {"en": "On the sign-in page press Forgot password: a link valid for one hour is sent to the user's "
                 "email. An admin can also set a new password on the Users page.",
           "ru": "На странице входа нажмите «Забыли пароль»: на почту придёт ссылка, действующая час. "
                 "Администратор также может задать пароль на странице «Пользователи»."},
          {"en": "Press Forgot password on the sign-in page; the link in the email works for one hour. An admin "
                 "can also set a new password on the Users page.",
           "ru": "Нажмите «Забыли пароль» на странице входа; ссылка из письма действует час. Администратор может "
                 "задать новый пароль на странице «Пользователи»."},
          "Users: password reset link expires too early",
          {"en": ["I forgot my password, account {w}", "How to reset the password for user {w}",
                  "Cannot log in as {w}, password lost", "Operator {w} needs a new password, how?"],
           "ru": ["Забыл пароль от аккаунта {w}", "Как сбросить пароль пользователя {w}",
                  "Не могу войти под {w}, потерян пароль", "Оператору {w} нужен новый пароль, как сделать?"]}),
    Topic("email-bounce",
          {"en": "Undelivered emails", "ru": "Недоставленные письма"},
          {"en": "An address that bounced is marked undeliverable and skipped by later cascades; the message "
                 "report shows the bounce reason.",
           "ru": "Адрес, с которого письмо вернулось, помечается недоставляемым и пропускается в следующих "
                 "каскадах; причина видна в отчёте о сообщениях."},
          {"en": "The address bounced, so it is marked undeliverable and skipped; see the reason in the message "
                 "report and ask the customer for a new email.",
           "ru": "Письмо вернулось, адрес помечен недоставляемым и пропускается; причина в отчёте о сообщениях, "
                 "попросите у клиента новый адрес."},
          "Messaging: let operators clear the undeliverable mark",
          {"en": ["Emails to {w} are not delivered", "Why does the customer {w} not receive our newsletters",
                  "Mail to {w} bounces back", "Our campaign skipped {w}, what happened?"],
           "ru": ["Письма на {w} не доходят", "Почему клиент {w} не получает рассылки",
                  "Письма на {w} возвращаются", "Кампания пропустила {w}, что случилось?"]}),
    Topic("loyalty-points",
          {"en": "Loyalty points expiry", "ru": "Сгорание бонусных баллов"},
          {"en": "Points expire after the period set in the loyalty program; the customer is warned 7 days "
                 "before. Expired points are shown in the account's ledger.",
           "ru": "Баллы сгорают через срок, заданный в программе лояльности; клиента предупреждают за 7 дней. "
                 "Сгоревшие баллы видны в истории счёта."},
          {"en": "Points expire after the program's period, with a warning 7 days before; the account's ledger "
                 "shows the expired points.",
           "ru": "Баллы сгорают по сроку программы, предупреждение приходит за 7 дней; сгоревшие баллы видны в "
                 "истории счёта."},
          "Loyalty: let a program extend points on a new purchase",
          {"en": ["Where did the bonus points of {w} go?", "Customer {w} says points disappeared",
                  "Points of {w} expired without notice?", "Why was the loyalty balance of {w} reduced"],
           "ru": ["Куда пропали бонусные баллы клиента {w}?", "Клиент {w} говорит, что баллы исчезли",
                  "Баллы {w} сгорели без предупреждения?", "Почему уменьшился бонусный баланс {w}"]}),
    Topic("import-csv",
          {"en": "Importing customers from CSV", "ru": "Загрузка клиентов из CSV"},
          {"en": "Customers are imported from a CSV file with a header row; the externalId column makes the "
                 "import repeatable, rows with errors are reported with their line.",
           "ru": "Клиентов загружают из CSV-файла со строкой заголовков; колонка externalId делает загрузку "
                 "повторяемой, строки с ошибками показываются с номером."},
          {"en": "Import the CSV with a header row and an externalId column; a repeated import updates the same "
                 "customers, and rows with errors are listed with their line number.",
           "ru": "Загрузите CSV со строкой заголовков и колонкой externalId; повторная загрузка обновит тех же "
                 "клиентов, строки с ошибками будут перечислены с номерами."},
          "Import: accept semicolon separated CSV",
          {"en": ["How do I import customers from file {w}.csv?", "Upload of {w}.csv created duplicates",
                  "CSV import of {w} fails on some rows", "What format should {w}.csv have for customer import"],
           "ru": ["Как загрузить клиентов из файла {w}.csv?", "Загрузка {w}.csv создала дубли",
                  "Импорт CSV {w} падает на некоторых строках", "Какой формат нужен у {w}.csv для загрузки клиентов"]}),
    Topic("whatsapp-window",
          {"en": "WhatsApp 24-hour window", "ru": "Окно 24 часа в WhatsApp"},
          {"en": "WhatsApp allows free text only within 24 hours of the customer's last message; later, answer "
                 "with an approved template.",
           "ru": "WhatsApp разрешает свободный текст только в течение 24 часов после последнего сообщения "
                 "клиента; позже отвечайте одобренным шаблоном."},
          {"en": "More than 24 hours passed since the customer's last WhatsApp message, so only an approved "
                 "template can be sent.",
           "ru": "С последнего сообщения клиента в WhatsApp прошло больше 24 часов, поэтому можно отправить "
                 "только одобренный шаблон."},
          "Inbox: show the time left in the WhatsApp window",
          {"en": ["Cannot reply to {w} in WhatsApp", "WhatsApp message to {w} is rejected",
                  "Why can't the operator answer {w} on WhatsApp", "Reply to {w} via WhatsApp gives an error"],
           "ru": ["Не могу ответить {w} в WhatsApp", "Сообщение {w} в WhatsApp отклонено",
                  "Почему оператор не может ответить {w} в WhatsApp", "Ответ {w} через WhatsApp выдаёт ошибку"]}),
    Topic("segment-refresh",
          {"en": "How segments are updated", "ru": "Как обновляются сегменты"},
          {"en": "Dynamic segments are recomputed when customers or orders change; a static segment changes "
                 "only when members are added or removed by hand.",
           "ru": "Динамические сегменты пересчитываются при изменении клиентов и заказов; статический сегмент "
                 "меняется только при ручном добавлении или удалении."},
          {"en": "Dynamic segments follow changes of customers and orders on their own; a static one changes only "
                 "when you add or remove members.",
           "ru": "Динамические сегменты сами следят за изменениями клиентов и заказов; статический меняется "
                 "только при ручном добавлении и удалении."},
          "Segments: show when a segment was last recomputed",
          {"en": ["Segment {w} did not update", "Customer is missing from segment {w}",
                  "How often is segment {w} recalculated?", "Segment {w} shows old members"],
           "ru": ["Сегмент {w} не обновился", "Клиента нет в сегменте {w}", "Как часто пересчитывается сегмент {w}?",
                  "В сегменте {w} старые участники"]}),
)

NAMES = ("alpha", "vip", "gold", "north", "promo", "winter", "retail", "mila", "ivan", "store7", "kids", "b2b")

PRODUCTS: dict[str, list[str]] = {
    "clothes_shoes": ["Summer dress", "Cotton t-shirt", "Slim jeans", "Leather boots", "Running sneakers",
                      "Платье вечернее", "Джинсы прямые", "Кроссовки беговые", "Куртка зимняя", "Носки хлопковые"],
    "home_garden": ["Garden hose 20 m", "Tomato seeds", "Flower pot", "Bath towel", "Frying pan",
                    "Семена огурцов", "Садовый шланг", "Грабли веерные", "Кастрюля 3 л", "Штора блэкаут"],
    "auto": ["Winter tire R16", "Engine oil 5W-30", "Wiper blades", "Car battery 60Ah", "Brake pads",
             "Шины летние R15", "Моторное масло", "Свеча зажигания", "Автомобильный аккумулятор", "Фара левая"],
    "electronics": ["Smartphone 128GB", "Wireless headphones", "USB-C cable", "Laptop 15 inch", "Power bank",
                    "Смартфон 256 ГБ", "Наушники беспроводные", "Ноутбук игровой", "Монитор 27", "Роутер Wi-Fi"],
    "gifts": ["Gift box", "Souvenir magnet", "Greeting card", "Gift certificate", "Party balloons",
              "Подарочный набор", "Сувенирный брелок", "Открытка ручной работы", "Подарочный сертификат",
              "Воздушные шары"],
    "cosmetics": ["Matte lipstick", "Volume mascara", "Face cream", "Hair shampoo", "Nail polish",
                  "Помада матовая", "Тушь для ресниц", "Крем для лица", "Шампунь для волос", "Сыворотка"],
    "sport": ["Yoga mat", "Dumbbells 5 kg", "Mountain bike", "Football ball", "Tennis racket",
              "Коврик для йоги", "Гантели 3 кг", "Велосипед горный", "Мяч футбольный", "Палатка туристическая"],
    "kids": ["Baby stroller", "Lego set", "Doll house", "Diapers size 3", "Baby rattle",
             "Коляска прогулочная", "Кукла", "Подгузники", "Детская кроватка", "Погремушка"],
    "pets": ["Dog leash", "Cat litter", "Dry dog food", "Aquarium 50 l", "Cat scratching post",
             "Поводок для собак", "Наполнитель для кошек", "Корм для щенков", "Ошейник", "Когтеточка"],
    "food": ["Ground coffee", "Green tea", "Dark chocolate", "Cheddar cheese", "Wildflower honey",
             "Кофе в зёрнах", "Чай чёрный", "Шоколад горький", "Сыр твёрдый", "Мёд липовый"],
    "flowers": ["Red roses bouquet", "Tulips 25", "Peonies", "Orchid in pot", "Lilies bouquet",
                "Букет роз", "Тюльпаны", "Пионы", "Орхидея", "Хризантемы"],
    "furniture": ["Corner sofa", "Armchair", "Wardrobe 2 doors", "Double bed", "Dining table",
                  "Диван угловой", "Кресло", "Шкаф-купе", "Кровать двуспальная", "Стол обеденный"],
}
assert tuple(PRODUCTS) == INDUSTRIES


@dataclass
class Labelled:
    """The material to import and the labelled questions."""

    docs: list[dict[str, str]] = field(default_factory=list)  # {path, content}
    tickets: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    queries: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)  # groups of ticket external ids
    catalogues: list[dict[str, Any]] = field(default_factory=list)  # {industry, products: [{name, category}]}


def _fill(template: str, rng: random.Random) -> str:
    return template.format(n=f"#{rng.randint(10000, 99999)}", w=rng.choice(NAMES))


def docs() -> list[dict[str, str]]:
    out = []
    for lang in ("en", "ru"):
        lines = [f"# {'Support guide' if lang == 'en' else 'Руководство поддержки'}", ""]
        for t in TOPICS:
            lines += [f"## {t.heading[lang]} {{#{t.key}}}", "", t.doc[lang], ""]
        out.append({"path": f"{lang}/guide.md", "content": "\n".join(lines)})
    return out


def doc_id(lang: str, topic: Topic) -> str:
    return f"{lang}/guide.md#{topic.key}"


def generate(*, per_topic: int = 6, queries_per_topic: int = 2, duplicates: int = 3, shops_per_industry: int = 5,
             seed: int = 7) -> Labelled:
    """`per_topic` past tickets per topic and language, `queries_per_topic` new ones (held-out phrasing)."""
    rng = random.Random(seed)
    out = Labelled(docs=docs())
    for ti, t in enumerate(TOPICS):
        out.tasks.append({"external_id": f"DEV-{100 + ti}", "title": t.task,
                          "description": t.doc["en"], "status": rng.choice(["open", "in progress"]),
                          "url": f"https://tracker.retento.example/DEV-{100 + ti}"})
        for lang in ("en", "ru"):
            asks = t.asks[lang]
            ids = []
            for i in range(per_topic):
                tid = f"{t.key}-{lang}-{i}"
                ids.append(tid)
                out.tickets.append({"external_id": tid, "subject": "", "body": _fill(asks[i % (len(asks) - 1)], rng),
                                    "answer": t.answer[lang], "resolution": "answered", "tags": [t.key],
                                    "language": lang})
            for q in range(queries_per_topic):
                out.queries.append({"text": _fill(asks[-1], rng), "language": lang, "topic": t.key,
                                    "relevant_tickets": ids, "relevant_docs": [doc_id(lang, t)],
                                    "relevant_task": f"DEV-{100 + ti}", "reference_answer": t.answer[lang],
                                    "id": f"q-{t.key}-{lang}-{q}"})
    for d in range(duplicates):
        base = rng.choice(out.tickets)
        copy = {**base, "external_id": f"{base['external_id']}-dup{d}"}
        out.tickets.append(copy)
        out.duplicates.append([base["external_id"], copy["external_id"]])
    for industry, pool in PRODUCTS.items():
        for _ in range(shops_per_industry):
            products = [{"name": p, "category": None} for p in rng.sample(pool, 6)]
            other = rng.choice([i for i in PRODUCTS if i != industry])
            products.append({"name": rng.choice(PRODUCTS[other]), "category": None})
            rng.shuffle(products)
            out.catalogues.append({"industry": industry, "products": products})
    return out


def bulk_tickets(n: int, seed: int = 11) -> list[dict[str, Any]]:
    """`n` varied past tickets over the topics (the benchmark's 100,000), with words and numbers mixed in."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = TOPICS[i % len(TOPICS)]
        lang = "en" if rng.random() < 0.5 else "ru"
        asks = t.asks[lang][:-1]
        extra = " ".join(rng.choice(NAMES) for _ in range(rng.randint(0, 3)))
        out.append({"external_id": f"T{i}", "subject": "", "body": f"{_fill(rng.choice(asks), rng)} {extra}".strip(),
                    "answer": t.answer[lang], "language": lang, "tags": [t.key]})
    return out
