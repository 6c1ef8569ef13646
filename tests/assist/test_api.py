"""The assist through its API and CLI with the real e5-small embedder on a small synthetic RU + EN set: import,
re-import in place, the served index updated incrementally and rebuilt from the stored vectors, every scenario,
the guard over a language model's rewrite, marks and the usage report, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retento.assist import synthetic
from retento.assist.wiring import configure
from retento.cli import app as cli
from retento.core.config import get_settings

DATA = synthetic.generate(per_topic=2, queries_per_topic=1, duplicates=2, seed=3)


def _load(api) -> None:
    r = api.post("/api/v1/assist/sites/shop/docs", json={"base_url": synthetic.DOCS_URL, "files": DATA.docs})
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 20, "updated": 0, "unchanged": 0, "sections": 20}
    r = api.post("/api/v1/assist/sites/shop/tickets", json={"items": DATA.tickets})
    assert r.json() == {"created": len(DATA.tickets), "updated": 0, "unchanged": 0}, r.text
    assert api.post("/api/v1/assist/sites/shop/tasks", json={"items": DATA.tasks}).json()["created"] == 10


def _query(topic: str, lang: str) -> dict:
    return next(q for q in DATA.queries if q["topic"] == topic and q["language"] == lang)


def test_import_scenarios_and_reimport(api, e5) -> None:
    _load(api)
    assert api.get("/api/v1/assist/counts", params={"site": "shop"}).json() == {
        "ticket": len(DATA.tickets), "doc": 20, "task": 10, "ident": 0}
    q = _query("order-return", "ru")
    similar = api.post("/api/v1/assist/sites/shop/similar", json={"text": q["text"], "k": 5}).json()["items"]
    assert similar[0]["external_id"] in q["relevant_tickets"] and similar[0]["answer"] == q["reference_answer"]
    assert similar[0]["score"] > similar[-1]["score"] - 1e-9

    s = api.post("/api/v1/assist/sites/shop/suggest", json={"text": q["text"]}).json()
    assert s["invented"] == 0 and s["language"] == "ru"
    assert s["answer"].startswith(q["reference_answer"])
    assert s["sources"][0]["external_id"] in q["relevant_tickets"]
    assert "ru/guide.md#order-return" in [d["external_id"] for d in s["docs"]]

    q = _query("webhook-events", "en")
    links = api.get("/api/v1/assist/sites/shop/doc-links", params={"q": q["text"], "k": 3}).json()["items"]
    assert links[0]["url"] == f"{synthetic.DOCS_URL}/en/guide#webhook-events"
    assert api.get("/api/v1/assist/sites/shop/doc-links", params={"q": " "}).json() == {"items": []}
    tasks = api.post("/api/v1/assist/sites/shop/tasks/match", json={"text": q["text"], "k": 3}).json()["items"]
    assert tasks[0]["external_id"] == q["relevant_task"] and tasks[0]["url"].endswith(q["relevant_task"])

    groups = api.get("/api/v1/assist/sites/shop/duplicates", params={"threshold": 0.995}).json()["groups"]
    found = [sorted(t["external_id"] for t in g["tickets"]) for g in groups]
    for dup in DATA.duplicates:
        assert any(set(dup) <= set(g) for g in found), (dup, found)

    # re-import: the same rows unchanged; a new answer updates in place (no new vector), a new text re-embeds
    assert api.post("/api/v1/assist/sites/shop/tickets", json={"items": DATA.tickets}).json()["unchanged"] == len(
        DATA.tickets)
    target = next(t for t in DATA.tickets if t["external_id"] == similar[0]["external_id"])
    calls = e5.passages
    changed = {**target, "answer": "Open the order card and press Return (updated)."}
    assert api.post("/api/v1/assist/sites/shop/tickets", json={"items": [changed]}).json()["updated"] == 1
    assert e5.passages == calls
    q = _query("order-return", "ru")
    got = api.post("/api/v1/assist/sites/shop/similar", json={"text": q["text"], "k": 5}).json()["items"]
    assert {g["external_id"]: g["answer"] for g in got}[target["external_id"]] == changed["answer"]
    moved = {**target, "body": "Не приходит письмо для сброса пароля оператора Мила (moved)"}
    api.post("/api/v1/assist/sites/shop/tickets", json={"items": [moved]})
    assert e5.passages == calls + 1
    reset = api.post("/api/v1/assist/sites/shop/similar", json={"text": "не могу сбросить пароль оператора",
                                                                  "k": 3}).json()["items"]
    assert target["external_id"] in [g["external_id"] for g in reset]
    # the other shop sees none of it
    assert api.post("/api/v1/assist/sites/other/similar", json={"text": q["text"]}).json() == {"items": []}


def test_index_is_rebuilt_from_stored_vectors(aapp, api, e5) -> None:
    _load(api)
    configure(aapp, embedder=e5)  # as after a restart: an empty served index
    calls = e5.passages
    q = _query("order-return", "ru")
    got = api.post("/api/v1/assist/sites/shop/similar", json={"text": q["text"]}).json()["items"]
    assert got[0]["external_id"] in q["relevant_tickets"]
    assert e5.passages == calls  # no passage embedded again


class Inventor:
    """A language model that makes things up (the guard's adversary)."""

    def write(self, question: str, draft: str, sources: list[dict]) -> str:
        return (f"{draft}\nAlso listen to the `wsMessageCallback` event. The returns module refunds it. "
                "See [details](https://docs.retento.example/en/returns-v2). Use changeSet.sourceOfChange('manager').")


def test_a_language_models_answer_goes_through_the_guard(aapp, api, e5) -> None:
    _load(api)
    configure(aapp, embedder=e5, writer=Inventor())
    q = _query("order-return", "en")
    s = api.post("/api/v1/assist/sites/shop/suggest", json={"text": q["text"]}).json()
    assert s["invented"] == 4
    assert sorted(r["kind"] for r in s["removed"]) == ["call", "identifier", "link", "module"]
    assert "wsMessageCallback" not in s["answer"] and "returns-v2" not in s["answer"]
    assert s["answer"].startswith(q["reference_answer"])
    r = api.post("/api/v1/assist/sites/shop/identifiers", json={"names": ["wsMessageCallback"]})
    assert r.json()["created"] == 1
    s = api.post("/api/v1/assist/sites/shop/suggest", json={"text": q["text"]}).json()
    assert s["invented"] == 3  # a known name now


def test_guard_check_and_industry(api) -> None:
    _load(api)
    r = api.post("/api/v1/assist/sites/shop/check", json={
        "text": "Check it with `tags.contains('vip')`. Or use `tags.has('vip')` from the exports module."}).json()
    assert r["text"] == "Check it with `tags.contains('vip')`." and r["invented"] == 2
    r = api.post("/api/v1/assist/industry", json={"products": [
        {"name": "Корм для щенков"}, {"name": "Cat litter"}, {"name": "Поводок", "category": "Для собак"},
        {"name": "Smartphone"}]}).json()
    assert r["industry"] == "pets" and r["confidence"] == 0.75
    r = api.post("/api/v1/assist/industry", json={"products": [{"name": "Item"}, {"name": "Thing"}]}).json()
    assert r["industry"] == "unknown"


def test_bad_input_names_the_field(api) -> None:
    r = api.post("/api/v1/assist/sites/shop/tickets", json={"items": [{"external_id": "x", "body": ""}]})
    assert r.status_code in (400, 422) and "items.0.body" in r.text
    r = api.post("/api/v1/assist/sites/nope/similar", json={"text": "x"})
    assert r.status_code == 404 and "site" in r.text
    r = api.post("/api/v1/assist/sites/shop/tickets", json={"items": [{"external_id": "x", "body": "a"},
                                                                      {"external_id": "x", "body": "b"}]})
    assert r.status_code == 400 and "items.external_id" in r.text
    r = api.post("/api/v1/assist/sites/shop/docs", json={"files": [{"path": "a.md", "content": "  "}]})
    assert r.status_code in (400, 422) and "files.0.content" in r.text


def test_marks_and_usage(api) -> None:
    marks = [("used", 60), ("edited", 80), ("dismissed", 100), ("none", 120), ("used", 40)]
    for n, (action, seconds) in enumerate(marks):
        r = api.post("/api/v1/assist/sites/shop/marks", json={
            "ticket": f"T{n}", "action": action, "first_response_seconds": seconds, "idempotency_key": f"k{n}"})
        assert r.status_code == 201, r.text
    again = api.post("/api/v1/assist/sites/shop/marks", json={
        "ticket": "T0", "action": "used", "first_response_seconds": 60, "idempotency_key": "k0"})
    assert again.json()["id"] == 1
    u = api.get("/api/v1/assist/usage", params={"site": "shop"}).json()
    assert u["marks"] == 5 and u["shown"] == 4 and u["usage_share"] == 0.75
    assert u["first_response_with"]["median_seconds"] == 60 and u["first_response_without"]["mean_seconds"] == 110
    assert u["first_response_change"] == pytest.approx(60 / 110 - 1, abs=1e-4)
    assert api.get("/api/v1/assist/usage", params={"site": "other"}).json()["marks"] == 0


def test_cli_generate_import_and_eval(aapp, db_url, monkeypatch, tmp_path: Path) -> None:
    """Each command builds its own app, as `retento` does: the default embedder, the index read from the database."""
    monkeypatch.setenv("RETENTO_DATABASE_URL", db_url)
    get_settings.cache_clear()
    runner = CliRunner()
    folder = tmp_path / "set"
    r = runner.invoke(cli, ["assist", "generate", str(folder), "--per-topic", "2", "--queries", "1", "--seed", "3"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["assist", "import", "docs", str(folder / "docs"), "--site", "shop",
                            "--base-url", synthetic.DOCS_URL])
    assert r.exit_code == 0 and "20 created" in r.output, r.output
    for what in ("tickets", "tasks"):
        r = runner.invoke(cli, ["assist", "import", what, str(folder / f"{what}.jsonl"), "--site", "shop"])
        assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["assist", "eval", str(folder / "queries.jsonl"), "--site", "shop",
                            "--catalogues", str(folder / "catalogues.jsonl"), "--format", "json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert got["queries"] == 20 and got["invented"] == 0
    assert got["recall_at_5"] >= 0.5 and got["mrr"] >= 0.6 and got["doc_recall_at_5"] >= 0.8, got
    assert got["industry_accuracy"] >= 0.8
    r = runner.invoke(cli, ["assist", "import", "tickets", str(tmp_path / "missing.jsonl"), "--site", "shop"])
    assert r.exit_code != 0 and "missing.jsonl" in r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"external_id": "x"}\n')
    r = runner.invoke(cli, ["assist", "import", "tickets", str(bad), "--site", "shop"])
    assert r.exit_code != 0 and "record 1: body" in r.output
