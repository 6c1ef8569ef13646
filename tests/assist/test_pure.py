"""The assist's pure parts: the index (incremental updates, BM25 with Russian and English stemming, RRF), the
grounding guard against adversarial suggestions, documentation sections, the industry classifier on the synthetic
set, the composed answer, near-duplicate grouping and the evaluation metrics on a hand-made set. The deterministic
hash embedder stands in for the model here only."""

from __future__ import annotations

import numpy as np
import pytest

from retento.assist import compose, evaluate, guard, index, industry, sections, synthetic, text
from retento.assist.embed import HashEmbedder
from retento.assist.index import Collection, fuse
from retento.assist.service import groups

EMB = HashEmbedder(64)


def _coll(texts: dict[int, str]) -> Collection:
    c = Collection(EMB.dim, capacity=2)
    c.upsert_many([(i, EMB.passage([t])[0], text.words(t)) for i, t in texts.items()])
    return c


def _search(c: Collection, q: str, k: int = 3) -> list[int]:
    return [h.item_id for h in c.search(EMB.query([q])[0], text.words(q), k)]


def test_stemming_reads_russian_and_english() -> None:
    assert text.words("Возвраты заказов") == text.words("возврат заказа")
    assert text.words("returning orders") == text.words("return order")
    assert text.language("Как вернуть заказ?") == "ru" and text.language("How to return?") == "en"


def test_index_grows_updates_in_place_and_removes() -> None:
    c = _coll({1: "return an order", 2: "reset the password", 3: "webhook for order changes"})
    assert len(c) == 3 and c.matrix.shape[0] >= 3  # grew past its capacity of 2
    assert _search(c, "password reset")[0] == 2
    c.upsert_many([(2, EMB.passage(["tag condition in triggers"])[0], text.words("tag condition in triggers"))])
    assert len(c) == 3
    assert _search(c, "trigger tag condition")[0] == 2
    assert 2 not in [r for r, _ in c.lexical_top(text.words("password"), 3)]  # old words gone
    c.remove(1)
    assert len(c) == 2 and 1 not in _search(c, "return an order", 3)
    c.upsert_many([(1, EMB.passage(["return an order"])[0], text.words("return an order"))])
    assert _search(c, "return an order")[0] == 1 and len(c) == 3


def test_bm25_matches_russian_word_forms() -> None:
    c = _coll({1: "Как оформить возврат заказа", 2: "Сброс пароля оператора", 3: "Тип пользовательского поля"})
    assert [r for r, _ in c.lexical_top(text.words("возвраты заказов"), 3)][:1] == [0]


def test_vector_top_is_exact_against_brute_force() -> None:
    rng = np.random.default_rng(3)
    c = Collection(16)
    vecs = rng.normal(size=(300, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    c.upsert_many([(i + 1, v, []) for i, v in enumerate(vecs)])
    q = vecs[5] + 0.1 * vecs[9]
    exact = np.argsort(-(vecs @ q))[:5] + 1
    assert [c.ids[r] for r, _ in c.vector_top(q, 5)] == exact.tolist()


def test_rrf_rewards_agreement() -> None:
    ids = [10, 20, 30, 40]
    cos = np.array([0.9, 0.8, 0.7, 0.1])
    hits = fuse([0, 1, 2], [2, 3, 0], lambda rows: cos[rows], ids, 4)
    assert [h.item_id for h in hits][:2] == [10, 30]  # in both rankings beats first-in-one
    assert hits[0].vector_rank == 1 and hits[0].lexical_rank == 3
    assert hits[-1].item_id in (20, 40)


@pytest.fixture
def grounding() -> guard.Grounding:
    g = guard.Grounding()
    g.add_section(heading="Webhook events", anchor="webhook-events", url="https://docs.example/api#webhook-events")
    g.add_text("Events: `order_created`, `order_changed`. Call `changeSet.sourceOfChange('api')` to mark the source. "
               "The loyalty module keeps points. See https://docs.example/api")
    g.add_identifiers(["customers.upload", "wsOrderCallback"])
    return g


def test_guard_keeps_what_exists(grounding: guard.Grounding) -> None:
    ok = ("Subscribe to `order_changed`, see [Webhook events](https://docs.example/api#webhook-events). "
          "Use changeSet.sourceOfChange('api') and the loyalty module; wsOrderCallback and customers.upload exist. "
          "Read section «Webhook events» and #webhook-events.")
    out = guard.guard(ok, grounding)
    assert out.removed == [] and out.text == ok


@pytest.mark.parametrize(("bad", "kind"), [
    ("Listen to the `wsMessageCallback` websocket event.", "identifier"),
    ("Listen to wsMessageCallback on the socket.", "identifier"),
    ("Open the returns module to refund it.", "module"),
    ("Откройте модуль returns и оформите возврат.", "module"),
    ("Pass the manager: changeSet.sourceOfChange('manager').", "call"),
    ("Details: https://docs.example/api/returns-v2 explain it.", "link"),
    ("See [the guide](https://docs.example/guide/returns).", "link"),
    ("Read section «Changing custom field types».", "section"),
    ("Смотрите раздел «Смена типа поля».", "section"),
    ("Jump to #custom-field-migration.", "anchor"),
    ("Call /api/v1/returns/create with the order.", "identifier"),
    ("Set order.return_reason_code to 3.", "identifier"),
])
def test_guard_removes_invented_items(grounding: guard.Grounding, bad: str, kind: str) -> None:
    good = "Subscribe to `order_changed`."
    out = guard.guard(f"{good} {bad} Thanks!", grounding)
    assert [r.kind for r in out.removed] == [kind]
    assert out.text == f"{good} Thanks!"


def test_guard_counts_each_invented_item(grounding: guard.Grounding) -> None:
    adversarial = ("Use `wsMessageCallback` and `returnsModule.create(order)` from [docs](https://evil.example/x).\n"
                   "Changing the type: see section «Custom field type change» at #type-change.\n"
                   "Subscribe to `order_created`.")
    out = guard.guard(adversarial, grounding)
    assert out.text == "Subscribe to `order_created`."
    assert sorted(r.kind for r in out.removed) == ["anchor", "call", "identifier", "link", "section"]
    assert evaluate.count_invented(out.text, grounding) == 0


def test_markdown_and_html_sections() -> None:
    md = "# Orders\nIntro\n## Returns {#ret}\nFrom the card.\n```\n# code, not a heading\n```\n## Returns\nAgain"
    got = sections.parse("guide/orders.md", md, base_url="https://docs.example/")
    assert [(s.heading, s.anchor, s.url) for s in got] == [
        ("Orders", "orders", "https://docs.example/guide/orders#orders"),
        ("Returns", "ret", "https://docs.example/guide/orders#ret"),
        ("Returns", "returns", "https://docs.example/guide/orders#returns")]
    assert "# code, not a heading" in got[1].text
    html = ('<html><body><nav>menu</nav><h1 id="top">Возврат</h1><p>Из карточки</p><h2>Поля и типы</h2>'
            '<p>Тип <code>string</code> не меняется</p><script>x()</script></body></html>')
    got = sections.parse("api.html", html, base_url="/docs")
    assert [(s.heading, s.anchor, s.url, s.text) for s in got] == [
        ("Возврат", "top", "/docs/api.html#top", "Из карточки"),
        ("Поля и типы", "поля-и-типы", "/docs/api.html#поля-и-типы", "Тип string не меняется")]


def test_industry_on_the_synthetic_set() -> None:
    data = synthetic.generate(shops_per_industry=8, seed=5)
    right = sum(industry.classify([(p["name"], p["category"]) for p in c["products"]]).industry == c["industry"]
                for c in data.catalogues)
    accuracy = right / len(data.catalogues)
    assert len({c["industry"] for c in data.catalogues}) == 12 and accuracy >= 0.8, accuracy
    vague = industry.classify([("Item 1", None), ("Thing 2", "misc"), ("Dog leash", None), ("Tulips", None)])
    assert vague.industry == "unknown" and vague.confidence < industry.MIN_CONFIDENCE


def test_compose_quotes_the_best_answer_and_close_sections() -> None:
    t = [compose.Candidate(compose.Source("ticket", "T1", "Return", None, 0.9), "Use the order card."),
         compose.Candidate(compose.Source("ticket", "T2", "Other", None, 0.85), "Something else.")]
    d = [compose.Candidate(compose.Source("doc", "g#ret", "Returns", "/g#ret", 0.85), "..."),
         compose.Candidate(compose.Source("doc", "g#far", "Far", "/g#far", 0.81), "...")]
    answer, sources = compose.compose("en", t, d)
    assert answer == "Use the order card.\n\nSee also:\n- [Returns](/g#ret)"
    assert [s.external_id for s in sources] == ["T1", "g#ret"]
    answer, sources = compose.compose("ru", [], [])
    assert sources == [] and answer == compose.LABELS["ru"]["none"]


def test_groups_join_near_duplicates_transitively() -> None:
    m = np.array([[1, 0], [0.999, 0.045], [0.998, 0.063], [0, 1]], dtype=np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    assert groups(m, 0.998, block=2) == [[0, 1, 2]]


def test_metrics_on_a_hand_made_set() -> None:
    assert evaluate.recall_at(["a", "x", "b", "y", "z", "c"], {"a", "b", "c"}) == pytest.approx(2 / 3)
    assert evaluate.recall_at(["x", "a"], {"a"}) == 1.0
    assert evaluate.reciprocal_rank(["x", "y", "a"], {"a"}) == pytest.approx(1 / 3)
    assert evaluate.reciprocal_rank(["x"], {"a"}) == 0.0
    assert evaluate.matches("Open the order card and press Return.", "Press Return in the order card")
    assert not evaluate.matches("Reset the password.", "Press Return in the order card")
    g = guard.Grounding()
    g.add_text("Use `order_changed`.")
    answers = {"q1": ("Press Return in the order card.", ["a", "x"]), "q2": ("Use `wsMessageCallback`.", ["y", "b"])}
    queries = [{"text": "q1", "relevant_tickets": ["a"], "reference_answer": "Press Return in the order card"},
               {"text": "q2", "relevant_tickets": ["b"], "reference_answer": "Use order_changed"}]
    got = evaluate.run(queries, lambda q: {"similar": answers[q][1], "docs": [], "tasks": [],
                                           "answer": answers[q][0], "removed": 0}, g)
    assert got["recall_at_5"] == 1.0 and got["mrr"] == 0.75 and got["match_share"] == 0.5
    assert got["invented"] == 1 and got["queries"] == 2


def test_reduced_prefilter_keeps_exact_ranking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past REDUCE_AT items the main directions pick candidates, the full vectors rank them; updates after that
    are projected too."""
    monkeypatch.setattr(index, "REDUCE_AT", 500)
    monkeypatch.setattr(index, "REDUCED_DIM", 24)
    monkeypatch.setattr(index, "PREFILTER", 60)
    rng = np.random.default_rng(8)
    vecs = (rng.normal(size=(2000, 24)) @ rng.normal(size=(24, 64)) + 0.3 * rng.normal(size=(2000, 64)))
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    c = Collection(64)
    c.upsert_many([(i, v, []) for i, v in enumerate(vecs[:1500])])
    assert c.basis is not None
    c.upsert_many([(i, v, []) for i, v in enumerate(vecs[1500:], start=1500)])
    c.upsert_many([(7, vecs[1999], [])])  # moved onto another item's place
    vecs[7] = vecs[1999]
    found = []
    for q in vecs[rng.integers(0, 2000, 50)] + 0.05 * rng.normal(size=(50, 64)).astype(np.float32):
        exact = set(np.argsort(-(vecs @ q))[:5].tolist())
        found.append(len(exact & {c.ids[r] for r, _ in c.vector_top(q, 5)}) / 5)
    assert np.mean(found) >= 0.95, np.mean(found)


def test_query_vectors_are_cached_unchanged() -> None:
    """The e5 query cache gives the vector the model gives, for a text asked again alone or in a batch."""
    from retento.assist.embed import E5Embedder

    e5 = E5Embedder()
    texts = ["Не приходят письма после оплаты", "How do I reset the operator password?"]
    first = e5.query(texts)
    direct = np.asarray(e5._get().query(texts), dtype=np.float32)
    again = e5.query([texts[1], "webhook returns 500", texts[0]])
    assert np.allclose(first, direct, atol=1e-6)
    assert np.allclose(again[0], direct[1], atol=1e-6) and np.allclose(again[2], direct[0], atol=1e-6)
    assert list(e5._cache)[-1] == texts[0] and len(e5._cache) == 3
