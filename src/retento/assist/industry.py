"""A shop's industry from its catalogue (pure): each product name and category votes for the industries whose
words it contains (Russian and English, stemmed); the industry with most votes wins, its share of the catalogue
is the confidence, and below `MIN_CONFIDENCE` the answer is `unknown`. The twelve industries of PRODUCT.md."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from retento.assist import text

MIN_CONFIDENCE = 0.35

_WORDS: dict[str, str] = {
    "clothes_shoes": "dress shirt t-shirt tshirt jeans trousers pants skirt jacket coat hoodie sweater blouse sneakers "
                     "shoes boots sandals heels loafers socks underwear apparel clothing footwear scarf cap "
                     "платье рубашка футболка джинсы брюки юбка куртка пальто худи свитер блузка кроссовки туфли "
                     "ботинки сапоги сандалии носки белье одежда обувь шарф кепка пиджак",
    "home_garden": "garden hose shovel rake seeds seedlings pot planter fertilizer lawn mower towel bedding curtain "
                   "kitchen pan saucepan dishes plate mug cleaning detergent lamp decor "
                   "сад садовый шланг лопата грабли семена рассада горшок кашпо удобрение газон газонокосилка "
                   "полотенце постельное штора кухня сковорода кастрюля посуда тарелка кружка уборка моющее лампа "
                   "декор",
    "auto": "car tire tyre wheel rim brake oil filter spark plug wiper battery bumper headlight motor engine antifreeze "
            "автомобиль авто шина шины диск колесо тормозной масло фильтр свеча дворник аккумулятор бампер фара "
            "двигатель антифриз автомобильный моторное",
    "electronics": "smartphone phone laptop tablet headphones earbuds charger cable usb monitor keyboard mouse "
                   "television tv speaker camera router powerbank processor ssd "
                   "смартфон телефон ноутбук планшет наушники зарядка кабель монитор клавиатура мышь телевизор "
                   "колонка камера роутер пауэрбанк процессор электроника",
    "gifts": "gift souvenir present card wrapping balloon mug-print keychain magnet box surprise certificate party "
             "подарок подарочный сувенир открытка упаковка шар шарики брелок магнит сюрприз сертификат праздник",
    "cosmetics": "lipstick mascara cream serum shampoo conditioner perfume fragrance nail polish foundation powder "
                 "lotion skincare makeup mask "
                 "помада тушь крем сыворотка шампунь бальзам духи парфюм лак тональный пудра лосьон косметика "
                 "макияж маска уход",
    "sport": "dumbbell barbell yoga mat treadmill bicycle bike ball racket fitness protein sportswear skis skates "
             "tent backpack hiking swimming "
             "гантели штанга коврик йога беговая велосипед мяч ракетка фитнес протеин спортивный лыжи коньки палатка "
             "рюкзак туризм плавание тренажер",
    "kids": "toy doll lego stroller diaper baby infant children kids pacifier rattle crib puzzle constructor "
            "игрушка кукла конструктор коляска подгузники малыш младенец детский детская дети соска погремушка "
            "кроватка пазл",
    "pets": "dog cat puppy kitten pet food-for-pets leash collar litter aquarium fish bird cage scratching kibble "
            "собака собак кошка кошек щенок котенок питомец поводок ошейник наполнитель аквариум рыбок птиц клетка "
            "когтеточка корм",
    "food": "coffee tea chocolate cheese bread pasta honey juice spices snacks cookies grocery sausage fruit "
            "vegetables organic "
            "кофе чай шоколад сыр хлеб макароны мед мёд сок специи снеки печенье продукты колбаса фрукты овощи",
    "flowers": "roses rose tulips bouquet peonies flowers flower orchid lilies chrysanthemum florist "
               "розы роза тюльпаны букет пионы цветы цветок орхидея лилии хризантемы флорист",
    "furniture": "sofa armchair wardrobe bed table chair shelf dresser cabinet mattress bookcase desk couch "
                 "диван кресло шкаф кровать стол стул полка комод тумба матрас стеллаж мебель",
}
INDUSTRIES = tuple(_WORDS)
LEXICON: dict[str, str] = {}
for _industry, _text in _WORDS.items():
    for _w in text.words(_text):
        LEXICON.setdefault(_w, _industry)


@dataclass(frozen=True)
class Industry:
    industry: str  # one of INDUSTRIES or "unknown"
    confidence: float
    votes: dict[str, int]
    products: int


def classify(products: list[tuple[str, str | None]], *, min_confidence: float = MIN_CONFIDENCE) -> Industry:
    """(name, category) of each product."""
    votes: Counter[str] = Counter()
    for name, category in products:
        found = Counter(LEXICON[w] for w in text.words(f"{name} {category or ''}") if w in LEXICON)
        if found:
            votes[found.most_common(1)[0][0]] += 1
    if not votes or not products:
        return Industry("unknown", 0.0, dict(votes), len(products))
    best, n = votes.most_common(1)[0]
    confidence = n / len(products)
    return Industry(best if confidence >= min_confidence else "unknown", round(confidence, 4), dict(votes),
                    len(products))
